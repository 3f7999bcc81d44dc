"""Ports for the services Tarmac starts on a chosen port: outside the kernel's ephemeral range,
where no outgoing connection can take them between the choice and the bind."""

from __future__ import annotations

import socket

from pipelines.stack import ports


def test_the_ephemeral_range_is_read_and_defaults_to_linux_s(tmp_path) -> None:
    source = tmp_path / "range"
    source.write_text("40000\t50000\n")
    assert ports.ephemeral_range(source) == (40000, 50000)
    assert ports.ephemeral_range(tmp_path / "missing") == (32768, 60999)


def test_ports_are_chosen_below_the_ephemeral_range_else_above_else_by_the_kernel() -> None:
    assert ports.candidates((32768, 60999)) == range(ports.LOW, 32768)
    assert ports.candidates((20500, 60000)) == range(60001, 65536)  # no room below
    assert ports.candidates((20500, 65000)) == range(0)  # nor above: bind to 0


def test_the_stacks_fixed_ports_are_never_chosen() -> None:
    """Voila on MongoDB's port would keep the local stack's FerretDB from starting later."""
    from pipelines.core import config

    fixed = {8866, 8888}
    for env in ("local", "ci"):
        settings = config.load(env)
        fixed |= {int(settings.kafka.bootstrap_servers.rsplit(":", 1)[1]),
                  settings.kafka.controller_port, settings.mongo.port}  # fmt: skip
    pool = ports.candidates((32768, 60999))
    assert not fixed & set(pool), sorted(fixed & set(pool))


def test_free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    low, high = ports.ephemeral_range()
    chosen = ports.free_ports(5)
    assert len(set(chosen)) == 5
    for port in chosen:
        assert not low <= port <= high
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # free: nothing holds it after the choice
