"""The development stack: embedded Kafka and FerretDB built and started here (``provision``,
``services``, ``control``), a standalone Spark cluster, Voila and JupyterLab launched for an env.
The clients the jobs import are in ``pipelines.clients``."""
