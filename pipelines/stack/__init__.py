"""The machinery under the pipeline: embedded Kafka and FerretDB, their clients, jars, the Spark session and a standalone cluster."""
