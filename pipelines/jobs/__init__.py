"""spark-submit entry points: ``spark-submit pipelines/jobs/<job>.py --env <env>``."""
