"""How Voila serves the dashboard, in one place for ``tarmac dashboard`` (``make
dashboard``, docker-compose), the demo, the deck's screenshots, the browser tests and the
benchmarks: its command line (127.0.0.1 only, our Jupyter config, the culling of kernels whose
page is gone), its environment (which env and database the kernels read), a wait until it
answers, and :func:`serve` (Voila in the foreground until Ctrl-C, SIGTERM or SIGHUP).

Kernels. Each visit to the page starts a kernel (~210 MB) that lives as long as Voila unless
stopped (measured before issue 18: three visits left three kernels). Voila's page asks for its
kernel's shutdown on ``beforeunload`` (``/voila/api/shutdown``), a call the browser may drop
(headless Chromium closing a tab did, measured) and that a crashed browser, a laptop put to
sleep or a lost network never makes. So kernels are culled: jupyter_server's idle culler with
the timeouts of ``Settings.dashboard`` (``kernel_idle_s``, 10 min; checked every
``cull_interval_s``, 60 s), counted from the moment no page is connected
(:mod:`.voila_kernels`), the page's own redraws (widget messages) not counted as activity.
A page still open is never culled (``cull_connected=False``).

Preheated kernels. A kernel started for a visit costs the page ~4 s before its first draw
(the kernel, the imports, the reads: bench/dashboard.py, 4.2 s median over a full year, issue
20). Voila keeps ``dashboard.pool_size`` kernels (1) that already ran the notebook: a visit
takes one (the page drawn at once; the kernel reads the request's query string through Voila,
``pipelines.dashboard.share``) and Voila starts another for the next. Pooled kernels are never
culled (Voila's own rule); a pooled kernel's page refreshes itself as any page does.

Access. Listening on anything but 127.0.0.1 / localhost needs a token (``$TARMAC_DASHBOARD_TOKEN``,
docker-compose's ``.env``): :func:`serve` refuses to start without one. The token is passed to
Voila only (``--Voila.token``), never to its kernels' environment; the first visit gives it
(``?token=...``, or Voila's login form), a cookie keeps it. 127.0.0.1 stays open (a developer's
``make dashboard``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pipelines.core import signals
from pipelines.core.config import REPO_ROOT, DashboardSettings
from pipelines.core.exceptions import ConfigError
from pipelines.stack.services import stop_group

DASHBOARD = REPO_ROOT / "notebooks" / "dashboard.ipynb"
JUPYTER = REPO_ROOT / "pipelines" / "dashboard" / "jupyter"
TOKEN_ENV = "TARMAC_DASHBOARD_TOKEN"
LOCAL_IPS = ("127.0.0.1", "localhost", "::1")


# what the page's kernel sends by itself, page or no page (its refreshes redraw widgets: comm
# messages parented to the cell's execute_request): not activity, else it is never culled
PAGE_MESSAGES = ("comm_open", "comm_msg", "comm_close", "execute_request")
KERNEL_MANAGER = "pipelines.stack.voila_kernels.PageKernelManager"


def untracked_messages() -> list[str]:
    """jupyter_server's untracked message types plus :data:`PAGE_MESSAGES`."""
    from jupyter_server.services.kernels.kernelmanager import MappingKernelManager

    default = MappingKernelManager.class_traits()["untracked_message_types"].default()
    return [*default, *(m for m in PAGE_MESSAGES if m not in default)]


def command(
    port: int,
    dashboard: DashboardSettings | None = None,
    ip: str = "127.0.0.1",
    base_url: str | None = None,
    token: str | None = None,
) -> list[str]:
    """Voila serving ``notebooks/dashboard.ipynb`` on ``ip:port`` (127.0.0.1 unless a
    container publishes it; under ``base_url`` behind a proxy's path prefix), never a
    browser, kernels culled and preheated as ``dashboard`` says, ``token`` asked of every
    visitor (None: none)."""
    dashboard = dashboard or DashboardSettings()
    km = "--MappingKernelManager"
    prefix = [f"--Voila.base_url={base_url}"] if base_url else []
    if token:
        prefix.append(f"--Voila.token={token}")
    if dashboard.pool_size:
        prefix += [
            "--VoilaConfiguration.preheat_kernel=True",
            f"--VoilaConfiguration.default_pool_size={dashboard.pool_size}",
        ]
    return [
        sys.executable, "-m", "voila", str(DASHBOARD), f"--port={port}", *prefix,
        f"--Voila.ip={ip}", "--no-browser", f"--Voila.config_file_paths={JUPYTER}",
        f"--VoilaConfiguration.multi_kernel_manager_class={KERNEL_MANAGER}",
        f"{km}.cull_idle_timeout={dashboard.kernel_idle_s}",
        f"{km}.cull_interval={dashboard.cull_interval_s}",
        f"{km}.cull_connected=False", f"{km}.cull_busy=False",
        *(f"{km}.untracked_message_types={m}" for m in untracked_messages()),
    ]  # fmt: skip


def environment(env: str, **extra: str) -> dict[str, str]:
    """This process's environment plus what the dashboard's kernels need (``TARMAC_ENV``,
    our ``JUPYTER_PATH``) and ``extra`` (e.g. ``MONGO_DATABASE``, ``TARMAC_REFRESH_S``); never
    the token (the kernels run what a visitor makes them run)."""
    base = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    return {**base, "TARMAC_ENV": env, "JUPYTER_PATH": str(JUPYTER), **extra}


def token_for(ip: str) -> str | None:
    """The token Voila asks of visitors when it listens on ``ip``: ``$TARMAC_DASHBOARD_TOKEN``
    (None on 127.0.0.1 / localhost without one). Raises ``ConfigError`` for any other address
    without a token."""
    token = os.environ.get(TOKEN_ENV, "").strip() or None
    if token is None and ip not in LOCAL_IPS:
        raise ConfigError(
            f"the dashboard listens on {ip}, not only on this machine: set {TOKEN_ENV} "
            "(docker compose: in .env, see .env.example) or serve on 127.0.0.1"
        )
    return token


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


def serve(
    env: str,
    port: int,
    dashboard: DashboardSettings | None = None,
    ip: str = "127.0.0.1",
    base_url: str | None = None,
) -> int:
    """Voila in the foreground (its output on this terminal) until it exits or this process is
    interrupted (Ctrl-C, or SIGTERM / SIGHUP taken as Ctrl-C by the CLI): then Voila is sent
    SIGTERM (it shuts its kernels down) and its whole process group is gone. Voila's exit
    code, or 0 when interrupted. Raises ``ConfigError`` when ``ip`` is not local and no token
    is set (:func:`token_for`)."""
    token = token_for(ip)
    proc = subprocess.Popen(
        command(port, dashboard, ip, base_url, token), cwd=REPO_ROOT, env=environment(env),
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signals.ignore()  # the stop runs whole
        stop_group(proc, grace_s=30)
