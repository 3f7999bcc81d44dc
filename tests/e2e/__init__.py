"""The whole path as a user meets it: replay, Kafka, Spark, lake, MongoDB, the browser."""
