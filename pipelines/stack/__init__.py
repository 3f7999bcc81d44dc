"""Under the pipeline: embedded Kafka and FerretDB, their clients, jars, Spark, a cluster."""
