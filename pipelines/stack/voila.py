"""How Voila serves the dashboard, in one place for the demo, the deck's screenshots, the browser
test and the benchmark: its command line (127.0.0.1 only, our Jupyter config), its environment
(which env and database the kernels read) and a wait until it answers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipelines.core.config import REPO_ROOT

DASHBOARD = REPO_ROOT / "notebooks" / "dashboard.ipynb"
JUPYTER = REPO_ROOT / "pipelines" / "dashboard" / "jupyter"


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (bound to port 0, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(port: int) -> list[str]:
    """Voila serving ``notebooks/dashboard.ipynb`` on ``127.0.0.1:port``, never a browser."""
    return [
        sys.executable, "-m", "voila", str(DASHBOARD), f"--port={port}",
        "--Voila.ip=127.0.0.1", "--no-browser", f"--Voila.config_file_paths={JUPYTER}",
    ]  # fmt: skip


def environment(env: str, **extra: str) -> dict[str, str]:
    """This process's environment plus what the dashboard's kernels need (``TARMAC_ENV``,
    our ``JUPYTER_PATH``) and ``extra`` (e.g. ``MONGO_DATABASE``, ``TARMAC_REFRESH_S``)."""
    return {**os.environ, "TARMAC_ENV": env, "JUPYTER_PATH": str(JUPYTER), **extra}


def wait_ready(proc: subprocess.Popen, port: int, log: Path, timeout_s: float = 90.0) -> str:
    """Wait until Voila on ``port`` serves its static files; its URL. Raises ``RuntimeError``
    naming ``log`` when it exits or does not answer in time."""
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"voila exited with {proc.returncode}; see {log}")
        try:
            urllib.request.urlopen(url + "voila/static/voila.js", timeout=2)
            return url
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"voila did not answer on {url}; see {log}") from None
            time.sleep(0.3)
