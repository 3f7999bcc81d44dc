"""Running the jobs: papermill runner, ledger, locks, backfills, cron, replayed window, demo."""
