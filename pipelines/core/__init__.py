"""The foundations every stage imports: settings, exceptions, logs and the console, the domain's constants, atomic files."""
