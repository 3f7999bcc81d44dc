"""Foundations every stage imports: settings, exceptions, logs, domain constants, atomic files."""
