"""The jobs, the one registry every caller reads, and the one spark-submit entry point."""
