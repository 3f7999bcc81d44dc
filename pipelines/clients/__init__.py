"""The clients the jobs use, wherever the services run (the embedded stack, compose, a cluster):
the Spark session, its Kafka source and its jars (``spark``, ``jars``), MongoDB (``mongo``),
Kafka (``kafka_io``)."""
