"""JupyterLab on the project's environment, for data scientists: ``tarmac lab``
(``make lab``). One launch, beside Voila's (:mod:`.voila`): its command line, its environment,
a wait until it answers, and :func:`serve` (in the foreground until Ctrl-C, SIGTERM or SIGHUP).

- the server runs on this virtualenv's Python (``jupyterlab`` pinned in ``pyproject.toml``), on
  127.0.0.1 only, a token required, its file browser rooted at ``notebooks/``;
- its kernels are this virtualenv's ``python3`` with this checkout first on ``PYTHONPATH``
  (``import pipelines`` is this checkout, whatever is installed) and ``TARMAC_ENV`` set, so
  ``from pipelines.lake.views import lake_session; spark = lake_session()`` opens the lake of
  the env ``make lab ENV=...`` named;
- a stop (Ctrl-C, SIGTERM) lets JupyterLab shut its kernels down (each kernel's Spark JVM ends
  with it), then whatever is left of the server's process group is killed.

Measured (``bench/lab.py``, 2 cores shared with a test suite, load ~3): the server answers
``/api/status`` 4.3 to 5.3 s after ``make lab``; a new kernel then holds the Spark session and
the 16 tables of a one-day lake 27 to 30 s later (the session's JVM 13 to 18 s, the tables 6 to
10 s), 32 to 35 s in all against the 30 s target of issue 19.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipelines.core import signals
from pipelines.core.config import REPO_ROOT
from pipelines.core.exceptions import ServiceStartError
from pipelines.stack.services import stop_group

NOTEBOOKS = REPO_ROOT / "notebooks"


def new_token() -> str:
    """A random token for one server (it is printed in the URL the user opens)."""
    return secrets.token_urlsafe(24)


def command(port: int, token: str, root: Path = NOTEBOOKS) -> list[str]:
    """JupyterLab on 127.0.0.1:``port`` (that port or an error, never another), requiring
    ``token``, opening ``root``, never a browser."""
    # as root (a container, a CI runner) Jupyter refuses to start unless told it may
    root_ok = ["--allow-root"] if os.geteuid() == 0 else []
    return [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={token}", *root_ok,
    ]  # fmt: skip


def environment(env: str, **extra: str) -> dict[str, str]:
    """This process's environment, plus what the kernels need: ``TARMAC_ENV`` and this
    checkout first on ``PYTHONPATH``; and ``extra``."""
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "TARMAC_ENV": env, "PYTHONPATH": path, **extra}


def status(port: int, token: str) -> dict[str, object]:
    """JupyterLab's ``/api/status`` (started, kernels, connections); raises ``OSError`` when it
    does not answer (``HTTPError`` 403 for a wrong token)."""
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def wait_ready(
    proc: subprocess.Popen, port: int, token: str, log: Path | None = None, timeout_s: float = 90.0
) -> str:
    """Wait until the server on ``port`` answers ``/api/status`` with ``token``; the URL a user
    opens. Raises :class:`ServiceStartError` (naming ``log``, else its output above) when it
    exits or does not answer in time."""
    where = f"see {log}" if log else "its output is above"
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise ServiceStartError(
                f"jupyterlab exited with {proc.returncode} ({where}); if port {port} is "
                f"taken: make lab LAB_PORT=<another>"
            )
        try:
            status(port, token)
            return f"http://127.0.0.1:{port}/lab?token={token}"
        except OSError:
            if time.monotonic() > deadline:
                raise ServiceStartError(
                    f"jupyterlab did not answer on 127.0.0.1:{port} in {timeout_s:.0f} s ({where})"
                ) from None
            time.sleep(0.3)


def serve(env: str, port: int, token: str | None = None) -> int:
    """JupyterLab in the foreground until it exits or this process is interrupted (Ctrl-C, or
    SIGTERM / SIGHUP taken as Ctrl-C by the CLI): prints its URL once it answers; on a stop,
    SIGTERM (it shuts its kernels down), its process group gone after 30 s at most. Its exit
    code, or 0 when interrupted."""
    token = token or new_token()
    proc = subprocess.Popen(
        command(port, token), cwd=NOTEBOOKS, env=environment(env), stdin=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        url = wait_ready(proc, port, token)
        print(f"JupyterLab ({env}): {url}   Ctrl-C to stop", flush=True)
        print("  in a notebook: from pipelines.lake.views import lake_session; "
              "spark = lake_session()", flush=True)  # fmt: skip
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signals.ignore()  # the stop runs whole
        stop_group(proc, grace_s=30)


def _api(port: int, token: str, path: str, method: str = "GET") -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
        data=b"{}" if method == "POST" else None,
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as resp:
        body = resp.read()
    return json.loads(body) if body else {}


def run_in_kernel(
    port: int, token: str, code: str, timeout_s: float = 180.0, keep: bool = False
) -> str:
    """Start a kernel of the server on ``port`` (what JupyterLab starts for a new notebook),
    run ``code`` in it, shut it down (``keep``: leave it running); the text it printed
    (stdout, stderr, results). Raises
    ``RuntimeError`` with the traceback when the code fails. For ``bench/lab.py`` and tests:
    over the server's own REST and websocket API, as the browser does."""
    import uuid

    import websocket  # jupyter_server's dependency

    kernel = str(_api(port, token, "/api/kernels", "POST")["id"])
    ws = websocket.create_connection(
        f"ws://127.0.0.1:{port}/api/kernels/{kernel}/channels?token={token}", timeout=timeout_s
    )
    try:
        msg_id = uuid.uuid4().hex
        ws.send(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "tarmac",
                       "session": uuid.uuid4().hex, "version": "5.3"},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False},
        }))  # fmt: skip
        out: list[str] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = json.loads(ws.recv())
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                out.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                out.append(str(content["data"].get("text/plain", "")) + "\n")
            elif kind == "error":
                raise RuntimeError("\n".join([*out, *content["traceback"]]))
            elif kind == "status" and content["execution_state"] == "idle":
                return "".join(out)
        raise TimeoutError(f"the kernel ran for more than {timeout_s:.0f} s:\n{''.join(out)}")
    finally:
        ws.close()
        if not keep:
            _api(port, token, f"/api/kernels/{kernel}", "DELETE")
