"""The MongoDB serving layer: documents shaped for the dashboard, their writes from the executors, the refresh from the lake."""
