"""Pure logic: no service, no Spark, no network (make test-unit)."""
