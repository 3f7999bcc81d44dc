"""The MongoDB serving layer: dashboard documents, executor writes, refresh from the lake."""
