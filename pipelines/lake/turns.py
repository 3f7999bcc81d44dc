"""Fair turns between the refreshes of one lake: a refresh that lost goes next.

Delta's optimistic concurrency lets the writer that commits most often win. The stream's lake
path refreshes the dates of its batches back to back (a commit every few seconds under load);
a weather run refreshing the same dates (late weather re-enriches their flights) needs ~30 s
for one attempt on a loaded machine, so its commit always came second, conflicted and ran
again: seen in a clean clone's ``make demo`` beside the suite, a weather run lost all 8
attempts of ``publish.refresh`` and failed. A lock is no cure: tried (an ``flock`` around each
attempt, reverted in 9ae16d5), the stream took it again as soon as it let go, since nothing
in a lock says who waited first, and the weather run waited 796 s.

So the refresh that lost says so and the others let it go first. :meth:`Turns.take` writes a
*ticket*, an empty file ``<lake>/_turns/<time in ns>-<pid>-<random>-<host>``, after a lost attempt;
before each attempt every refresh calls :meth:`Turns.wait`, which returns once no live ticket
is older than its own (than any, for a refresh holding none): the refreshes that lost go
first, one at a time, in the order they lost. :meth:`Turns.give_back` removes the ticket once
the refresh is done, won or failed. A ticket is dead when its process was killed mid-refresh:
nobody waits for it, and :meth:`Turns.ahead` removes it. A ticket of this host is dead as soon
as its pid is gone (or was taken again by a process started after the ticket): a weather run
killed while holding its turn (it takes it before its first attempt) held the stream's lake
path for up to :data:`LIFE_S` before, and the board's day figures with it. Any other ticket (of
another host or container, or of the old ``<ns>-<pid>-<random>`` form) is dead once older than
:data:`LIFE_S`. Waiting is bounded by that life; a refresh that waited says how long
(``turn_wait`` in its steps). Two containers sharing a hostname but not their pids would see
each other's tickets as dead: fairness is lost then, never correctness (Delta's commits still
decide), hence the host names of ``docker-compose.yml``.

The files go through the session's Hadoop file systems (``clients/hadoop``), so the turns hold
wherever the lake lives (a local folder, HDFS, S3) and between processes and machines; Delta
ignores ``_turns``: it is no table's folder. The cost: one listing of ``_turns`` per attempt
(about 1 ms locally) and, while waiting, one every :data:`POLL_S`.
"""

from __future__ import annotations

import os
import re
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
import structlog

from pipelines.clients.hadoop import HadoopFiles

log = structlog.get_logger(__name__)

FOLDER = "_turns"
LIFE_S = 600.0  # a ticket older than this is a killed refresh's: not waited for
POLL_S = 0.5  # while waiting, how often the tickets are listed again
REUSED_SLACK_S = 2.0  # a process started this long after a ticket of its pid did not take it


def host() -> str:
    """This machine's (or container's) name as a ticket carries it: ``[A-Za-z0-9.]``, 63 at
    most (a ``-`` would be read as the ticket's separator)."""
    return re.sub(r"[^A-Za-z0-9.]", ".", socket.gethostname())[:63] or "unknown"


def ticket_name(born_ns: int, pid: int, machine: str) -> str:
    """``<born_ns>-<pid>-<random>-<machine>``: sorted by the time it was taken."""
    return f"{born_ns:020d}-{pid}-{uuid.uuid4().hex[:8]}-{machine}"


def _born_ns(name: str) -> int | None:
    """When the ticket ``name`` was taken (ns since the epoch); None for another file."""
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() else None


def _gone(name: str, born_ns: int, machine: str) -> bool:
    """Whether the process that took ticket ``name`` has ended, as far as this host can tell:
    only a ticket of ``machine`` (this host) says, by its pid; False for any other."""
    parts = name.split("-", 3)
    if len(parts) != 4 or parts[3] != machine or not parts[1].isdigit():
        return False
    try:
        started = psutil.Process(int(parts[1])).create_time()
    except psutil.NoSuchProcess:
        return True
    return started > born_ns / 1e9 + REUSED_SLACK_S  # the pid taken again since


@dataclass
class Turns:
    """The turns of the refreshes of the lake at ``root`` (see the module)."""

    files: HadoopFiles
    root: str
    life_s: float = LIFE_S
    poll_s: float = POLL_S
    clock: Callable[[], float] = field(default=time.time)
    machine: str = field(default_factory=host)

    @property
    def folder(self) -> str:
        return f"{self.root.rstrip('/')}/{FOLDER}"

    def take(self) -> str:
        """A ticket for this refresh, which lost an attempt: the refreshes that have none,
        or a younger one, wait for it."""
        name = ticket_name(int(self.clock() * 1e9), os.getpid(), self.machine)
        self.files.write_text(f"{self.folder}/{name}", "")
        log.info("turns.taken", ticket=name)
        return name

    def give_back(self, ticket: str) -> None:
        """This refresh is done: the next one goes."""
        self.files.delete(f"{self.folder}/{ticket}")

    def ahead(self, ticket: str | None = None) -> list[str]:
        """The live tickets that go before ``ticket`` (before a refresh holding none: all),
        oldest first; dead ones found on the way are removed."""
        now_ns = int(self.clock() * 1e9)
        mine = _born_ns(ticket) if ticket else None
        live: list[tuple[int, str]] = []
        for name in self.files.names(self.folder):
            born = _born_ns(name)
            if born is None or name == ticket:
                continue
            old = now_ns - born > self.life_s * 1e9
            if old or _gone(name, born, self.machine):
                self.files.delete(f"{self.folder}/{name}")
                log.warning("turns.dead_ticket_removed", ticket=name,
                            why="older than its life" if old else "its process ended")  # fmt: skip
            elif mine is None or (born, name) < (mine, ticket or ""):
                live.append((born, name))
        return [name for _, name in sorted(live)]

    def wait(self, ticket: str | None = None) -> float:
        """Until no live ticket goes before ``ticket``; the seconds waited."""
        first = self.ahead(ticket)
        if not first:
            return 0.0
        started = time.monotonic()
        log.info("turns.waiting", ahead=len(first), ticket=ticket)
        while self.ahead(ticket):
            time.sleep(self.poll_s)
        waited = time.monotonic() - started
        log.info("turns.go", waited_s=round(waited, 1), ticket=ticket)
        return waited
