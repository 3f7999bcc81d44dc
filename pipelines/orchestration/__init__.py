"""Running the jobs: papermill runner, ledger, locks, backfills, cron, services, replayed window,
demo."""
