"""Age a Delta table as days of waiting would, for the housekeeping test and benchmark: a real
``VACUUM`` then finds its replaced files past the retention."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path


def age_table(root: Path, when: datetime) -> dict[str, int]:
    """Date the history of every Delta table under ``root`` (a table or a lake) back to
    ``when``: every file's mtime (the commits' too: a commit's time is its file's, which
    ``VACUUM LITE`` reads) and every ``remove`` action's ``deletionTimestamp``. Returns the
    removed files' sizes by path."""
    removed: dict[str, int] = {}
    stamp = when.timestamp()
    for commit in sorted(root.rglob("_delta_log/*.json")):
        table = commit.parent.parent
        actions = [json.loads(line) for line in commit.read_text().splitlines() if line]
        for action in actions:
            if "remove" in action:
                action["remove"]["deletionTimestamp"] = int(stamp * 1000)
                path = table / action["remove"]["path"]
                if path.exists():
                    removed[str(path)] = path.stat().st_size
        commit.write_text("".join(json.dumps(a) + "\n" for a in actions))
        # Hadoop's local file system checks a file against its `.<name>.crc`: drop the stale one
        commit.with_name(f".{commit.name}.crc").unlink(missing_ok=True)
    for path in [*root.rglob("*.parquet"), *root.rglob("_delta_log/*.json")]:
        os.utime(path, (stamp, stamp))
    return removed
