"""Free TCP ports for what Tarmac starts on a chosen port (Voila, Lab, the standalone
cluster's master and workers, a test's own stack), taken outside the kernel's ephemeral range.

A port bound to 0 comes from the ephemeral range (``/proc/sys/net/ipv4/ip_local_port_range``,
32768-60999 on Linux), the range every outgoing connection also takes its local port from.
Between choosing such a port and the service's JVM binding it (seconds: a master starts
before its workers), a Kafka or MongoDB client of any process may take it: the suite saw a
worker refuse to start ("port 43901 is already used by a process Tarmac did not start"). Ports
below the ephemeral range are never handed out that way, so one found free there stays free
unless another service is told to listen on it.
"""

from __future__ import annotations

import contextlib
import random
import socket
from pathlib import Path

# the lowest port chosen: above the fixed ports of the stacks (Kafka 9092/19092, MongoDB and
# FerretDB 27017/27018, Voila 8866, Jupyter 8888), which must stay free for them to start
LOW = 28000
EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def ephemeral_range(source: Path = EPHEMERAL) -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default where it cannot be read)."""
    try:
        low, high = (int(v) for v in source.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def candidates(ephemeral: tuple[int, int], low: int = LOW) -> range:
    """The ports to choose from: below the ephemeral range when there is room (at least 1,000
    ports), else above it, else nothing (bind to 0 then)."""
    start, end = ephemeral
    if start - low >= 1000:
        return range(low, start)
    if 65535 - end >= 1000:
        return range(end + 1, 65536)
    return range(0)


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports free on ``host`` now, outside the ephemeral range (each held
    open while the others are chosen)."""
    pool = candidates(ephemeral_range())
    with contextlib.ExitStack() as stack:
        chosen: list[int] = []
        for port in random.sample(pool, min(len(pool), 200 + count)):
            if len(chosen) == count:
                break
            sock = stack.enter_context(socket.socket())
            try:
                sock.bind((host, port))
            except OSError:
                continue
            chosen.append(port)
        while len(chosen) < count:  # no room outside the ephemeral range: let the kernel pick
            sock = stack.enter_context(socket.socket())
            sock.bind((host, 0))
            chosen.append(sock.getsockname()[1])
        return chosen


def free_port(host: str = "127.0.0.1") -> int:
    """One free port (:func:`free_ports`)."""
    return free_ports(1, host)[0]
