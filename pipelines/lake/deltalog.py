"""What a Delta table's commits changed, read from its log: the values of its partition column
that the commits after a version touched.

A commit is one JSON file, ``_delta_log/<version, 20 digits>.json``, one action a line; an
``add`` or a ``remove`` action names its file's ``partitionValues``. So the partitions whose rows
may differ between two versions are the partition values of the ``add`` and ``remove`` actions
of the commits between them, whoever wrote them (an overwrite, an append, ``OPTIMIZE``, a
deletion vector). ``Lake.read_kept`` keeps a whole table in memory on that basis and reads
again only those partitions.

The answer is None (read the whole table again) whenever the log cannot say it for sure: a
commit file missing (the log was cleaned up past the version), a ``metaData`` or ``protocol``
action (the schema or the table's features changed), a file without a value for the column, or
more than :data:`MAX_COMMITS` commits to read.
"""

from __future__ import annotations

import json

from pipelines.clients.hadoop import HadoopFiles

MAX_COMMITS = 200  # more commits than this since the kept version: read the table whole


def commit_file(table_uri: str, version: int) -> str:
    """Where the commit of ``version`` lives (``Lake.version`` probes them too)."""
    return f"{table_uri}/_delta_log/{version:020d}.json"


def touched_partitions(
    files: HadoopFiles, table_uri: str, column: str, after: int, upto: int
) -> set[str] | None:
    """The values of ``column`` (a partition column) whose files the commits ``after`` + 1 ..
    ``upto`` added or removed; None when the log cannot tell (see the module)."""
    if upto - after > MAX_COMMITS:
        return None
    values: set[str] = set()
    for version in range(after + 1, upto + 1):
        try:
            text = files.read_text(commit_file(table_uri, version))
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            if not line.strip():
                continue
            action = json.loads(line)
            if "metaData" in action or "protocol" in action:
                return None
            for kind in ("add", "remove"):
                if kind in action:
                    value = (action[kind].get("partitionValues") or {}).get(column)
                    if value is None:
                        return None
                    values.add(value)
    return values
