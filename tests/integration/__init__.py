"""Against the real local stack (Kafka, FerretDB, Spark, Delta): one stage or job at a time."""
