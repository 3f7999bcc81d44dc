"""The jobs and the one registry every caller reads (CLI, runner, cron, demo, dashboard, tests), with the one spark-submit entry point."""
