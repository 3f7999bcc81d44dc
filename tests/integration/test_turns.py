"""Fair turns between the refreshes of one lake (``lake/turns``): a refresh that lost an attempt
takes a ticket, the others wait for it before their next attempt, losers go in the order they
lost, a killed refresh's ticket is not waited for; ``publish.refresh`` takes one after a lost
attempt and gives it back however it ends. Real files through the session's Hadoop file
systems, at a ``file:`` URI like any lake."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from pipelines.lake.tables import Lake
from pipelines.lake.turns import FOLDER, Turns, ticket_name
from pipelines.serving import publish

CONFLICT = "io.delta.exceptions.ConcurrentAppendException: Files were added to partition"


def _lake(spark, tmp_path: Path) -> Lake:
    lake = Lake(spark, f"file://{tmp_path}/lake")
    lake.turns.poll_s = 0.05
    return lake


def test_the_refreshes_that_lost_go_first_in_the_order_they_lost(spark, tmp_path: Path) -> None:
    turns = _lake(spark, tmp_path).turns
    assert turns.ahead() == [] and turns.wait() == 0.0  # nobody lost: nobody waits
    first = turns.take()
    second = turns.take()
    tickets = [p.name for p in (tmp_path / "lake" / FOLDER).iterdir() if p.name[0] != "."]
    assert sorted(tickets) == sorted([first, second])  # beside them Hadoop's .crc files
    assert turns.ahead() == [first, second]  # a refresh holding none waits for both
    assert turns.ahead(second) == [first] and turns.ahead(first) == []

    went: list[str] = []

    def refresh(name: str, ticket: str | None) -> None:
        turns.wait(ticket)
        went.append(name)

    waiters = [
        threading.Thread(target=refresh, args=("the second loser", second)),
        threading.Thread(target=refresh, args=("a refresh that never lost", None)),
    ]
    for thread in waiters:
        thread.start()
    time.sleep(0.5)
    assert went == []  # both wait for the first loser
    turns.give_back(first)
    waiters[0].join(5)
    assert went == ["the second loser"]
    time.sleep(0.3)
    assert went == ["the second loser"]  # the second loser still holds its turn
    turns.give_back(second)
    waiters[1].join(5)
    assert went == ["the second loser", "a refresh that never lost"]
    assert turns.ahead() == []


def test_a_killed_refresh_s_ticket_is_not_waited_for(spark, tmp_path: Path) -> None:
    lake = _lake(spark, tmp_path)
    killed = Turns(lake.files, lake.root, clock=lambda: time.time() - lake.turns.life_s - 1)
    dead = killed.take()  # taken longer ago than a ticket lives: its refresh was killed
    alive = lake.turns.take()
    assert lake.turns.ahead() == [alive]
    assert not (tmp_path / "lake" / FOLDER / dead).exists()  # removed on the way
    lake.turns.give_back(alive)
    assert lake.turns.wait() == 0.0


def test_a_ticket_whose_process_ended_on_this_host_is_not_waited_for(spark, tmp_path: Path) -> None:
    """A weather run killed while holding its turn: on its host its ticket is dead at once, not
    after the ticket's life (10 min of the stream's lake path waiting). Another host's ticket
    cannot be judged by its pid: it lives its life. A pid taken again by a process started
    after the ticket is not the ticket's process."""
    lake = _lake(spark, tmp_path)
    turns = lake.turns
    holder = subprocess.Popen(["sleep", "600"])  # a real process that holds a turn
    now_ns = time.time_ns()
    held = ticket_name(now_ns, holder.pid, turns.machine)
    elsewhere = ticket_name(now_ns + 1, holder.pid, "another.host")
    reused = ticket_name(now_ns + 2 - 3_600 * 10**9, os.getpid(), turns.machine)  # an hour ago
    for name in (held, elsewhere, reused):
        lake.files.write_text(f"{turns.folder}/{name}", "")
    try:
        # this process started after the hour-old ticket of its pid: not its taker
        assert turns.ahead() == [held, elsewhere]
        assert not (tmp_path / "lake" / FOLDER / reused).exists()
    finally:
        holder.kill()
        holder.wait()
    assert turns.ahead() == [elsewhere]  # the killed holder's ticket removed on the way
    assert not (tmp_path / "lake" / FOLDER / held).exists()
    turns.give_back(elsewhere)
    assert turns.wait() == 0.0


def _refresh_with(lake: Lake, monkeypatch, attempt_does, **options) -> list[list[str]]:
    """Run ``publish.refresh`` with each attempt replaced by ``attempt_does(n)``; the live
    tickets each attempt saw."""
    seen: list[list[str]] = []

    def attempt(*_args, **_kwargs) -> None:
        seen.append(lake.turns.ahead())
        attempt_does(len(seen))

    monkeypatch.setattr(publish, "_refresh", attempt)
    monkeypatch.setattr(lake, "exists", lambda _table: True)
    publish.refresh(lake, None, ["2013-01-01"], horizon=None, **options)  # type: ignore[arg-type]
    return seen


def test_a_refresh_takes_a_turn_after_a_lost_attempt_and_gives_it_back(
    spark, tmp_path: Path, monkeypatch
) -> None:
    lake = _lake(spark, tmp_path)

    def lose_once(n: int) -> None:
        if n == 1:
            raise RuntimeError(CONFLICT)

    seen = _refresh_with(lake, monkeypatch, lose_once)
    assert len(seen) == 2 and seen[0] == [] and len(seen[1]) == 1  # its ticket, while it went
    assert lake.turns.ahead() == []  # given back

    def always_lose(n: int) -> None:
        raise RuntimeError(CONFLICT)

    with pytest.raises(RuntimeError, match="ConcurrentAppendException"):
        _refresh_with(lake, monkeypatch, always_lose)
    assert lake.turns.ahead() == []  # given back when it failed too


def test_holding_a_turn_a_refresh_is_not_run_again_for_inputs_that_moved(
    spark, tmp_path: Path, monkeypatch
) -> None:
    """Without a turn, inputs that moved during an attempt run it again; holding one, the jobs
    that moved them refresh after it (they waited): one more attempt at most."""
    lake = _lake(spark, tmp_path)
    versions = iter(range(1000))
    monkeypatch.setattr(lake, "versions", lambda _tables: (next(versions),))  # always moving
    seen = _refresh_with(lake, monkeypatch, lambda n: None)
    assert len(seen) == 2 and seen[0] == [] and len(seen[1]) == 1
    assert lake.turns.ahead() == []


def test_a_refresh_that_goes_first_holds_its_turn_from_its_first_attempt(
    spark, tmp_path: Path, monkeypatch
) -> None:
    """A weather run's refresh (``first``): its turn taken before the first attempt, so inputs
    that moved meanwhile (a live stream's events) do not run it again; a lost commit does,
    under the same turn; the turn given back either way."""
    lake = _lake(spark, tmp_path)
    versions = iter(range(1000))
    monkeypatch.setattr(lake, "versions", lambda _tables: (next(versions),))  # always moving
    seen = _refresh_with(lake, monkeypatch, lambda n: None, first=True)
    assert len(seen) == 1 and len(seen[0]) == 1  # one attempt, holding its ticket
    assert lake.turns.ahead() == []

    def lose_once(n: int) -> None:
        if n == 1:
            raise RuntimeError(CONFLICT)

    seen = _refresh_with(lake, monkeypatch, lose_once, first=True)
    assert len(seen) == 2 and len(seen[0]) == 1 and seen[1] == seen[0]  # the same ticket
    assert lake.turns.ahead() == []
