"""Tarmac: a notebook-first big-data pipeline (Kafka -> PySpark -> MongoDB -> Voila)."""

__version__ = "0.1.0"
