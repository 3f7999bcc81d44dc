"""The processes a test started, read with ``psutil`` while they may end at any moment.

A short-lived child can end, or become a zombie, between the listing and the next read of it
(``psutil.ZombieProcess``, ``NoSuchProcess``): each helper here leaves that one process out,
never the whole list (a wait for "0 left" must not be met by an error)."""

from __future__ import annotations

import contextlib
import os

import psutil


def ours(marker: str) -> list[psutil.Process]:
    """Live processes started (directly or not) with ``TARMAC_PARAMETERS_DIR=marker``."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            mine = proc.environ().get("TARMAC_PARAMETERS_DIR") == marker
            if mine and proc.pid != os.getpid() and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def running(procs: list[psutil.Process], holding: str = "") -> list[tuple[psutil.Process, str]]:
    """Each of ``procs`` still running whose command line holds ``holding``, with that line."""
    out = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            line = " ".join(proc.cmdline())
            if holding in line:
                out.append((proc, line))
    return out


def described(procs: list[psutil.Process]) -> list[str]:
    """``pid command line`` (cut at 120 characters) of each of ``procs`` still running."""
    return [f"{proc.pid} {line[:120]}" for proc, line in running(procs)]


def kernels(procs: list[psutil.Process]) -> list[psutil.Process]:
    """The ``ipykernel`` processes among ``procs`` still running."""
    return [proc for proc, _ in running(procs, "ipykernel")]
