"""Running the jobs: the papermill runner, its ledger and locks, backfills, cron, the replayed window and the demo."""
