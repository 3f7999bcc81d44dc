"""The MongoDB serving layer: documents for the dashboard, executor writes, refresh from the lake."""
