"""Foundations every stage imports: settings, exceptions, logs, domain constants, atomic files,
SIGTERM/SIGHUP taken as Ctrl-C."""
