"""Running the commands a user is told about, the way the user types them
(``tests/e2e/test_commands.py``).

- :func:`documented`: every command the project names, with where: each line of README.md's
  shell code blocks (comments removed, continuations joined), each target ``make help`` lists
  and each command ``tarmac --help`` lists;
- :class:`Sandbox`: where such a line runs byte for byte, through ``bash -c`` in the checkout.
  ``python`` and ``tarmac`` are this virtualenv's, importing this checkout's ``pipelines`` (on
  ``PYTHONPATH``: a virtualenv installed from another checkout, as git worktrees sharing one
  are, would run that checkout's code under ``tarmac``); the parameters folder
  (``TARMAC_PARAMETERS_DIR``) maps every env name a line may use (``local``: the default of
  the README, the Makefile and the CLI; ``ci``) to the sandbox's own settings (topics,
  folders, database); runs, logs and locks go to its ``TARMAC_OUTPUTS_DIR``. A line that
  stops a stack runs only in a sandbox that owns its stack
  (:func:`tests.conftest.dedicated_stack`), never on the session's;
- :func:`scratch_crontab`: the real ``crontab`` command on a scratch crontab.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.config import Settings
from pipelines.stack.services import stop_group
from tests.conftest import write_parameters

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
SHELL_FENCES = {"bash", "sh", "shell", "console"}
ENV_NAMES = ("local", "ci")  # what a documented line may pass as --env / ENV=
# variables a user may have set that would change what a line does: a sandbox sets its own
_CLEARED = ("ENV", "TARMAC_ENV", "FROM", "TO", "DASHBOARD_PORT", "DEMO_CYCLES", "DEMO_SPEED",
            "TARMAC_FAULT",
            "KAFKA_BOOTSTRAP_SERVERS", "MONGO_URI", "MONGO_READER_URI", "MONGO_DATABASE",
            "TARMAC_JOBS_MODULE", "TARMAC_JOBS_NOTEBOOKS",
            # a make above pytest (`make test`) makes every make below print "Entering/Leaving
            # directory" lines: a user typing the command has no make above it
            "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")  # fmt: skip
_STOPS_A_STACK = re.compile(r"\bstack[- ]down\b|\bmake clean\b|\bcluster down\b")


# --------------------------------------------------------------------------- what is documented
def readme_commands(markdown: str) -> list[str]:
    """The command lines of the shell code blocks of ``markdown``: one per line, ``\\``
    continuations joined, comments and blank lines dropped, runs of spaces made one."""
    commands: list[str] = []
    fence: str | None = None  # the language of the open code block
    pending = ""
    for raw in markdown.splitlines():
        if raw.lstrip().startswith("```"):
            fence = raw.strip()[3:].strip() if fence is None else None
            continue
        if fence not in SHELL_FENCES:
            continue
        line = pending + raw
        if line.rstrip().endswith("\\"):
            pending = line.rstrip()[:-1] + " "
            continue
        pending = ""
        command = " ".join(re.split(r"(?:^|\s)#", line, maxsplit=1)[0].split())
        if command:
            commands.append(command)
    return commands


def documented(make_help: str, cli_help: str) -> dict[str, str]:
    """Every documented command -> where it is named: README.md's lines as written, ``make
    <target>`` of the ``make help`` output, ``tarmac <command>`` of ``--help``."""
    found: dict[str, str] = {}
    for line in readme_commands(README.read_text()):
        found.setdefault(line, "a shell block of README.md")
    for target in re.findall(r"^\s+make (\S+)\s", make_help, flags=re.MULTILINE):
        found.setdefault(f"make {target}", "`make help`")
    for command in re.findall(r"^ {4}([a-z][a-z-]*)\s", cli_help, flags=re.MULTILINE):
        found.setdefault(f"tarmac {command}", "`tarmac --help`")
    return found


# ------------------------------------------------------------------------------ where they run
@dataclass(frozen=True)
class Sandbox:
    """A parameters folder, an outputs folder and the environment of the lines run in them."""

    settings: Settings
    folder: Path
    owns_stack: bool = False  # its settings name a stack of its own (lines may stop it)

    @classmethod
    def create(cls, settings: Settings, folder: Path, owns_stack: bool = False) -> Sandbox:
        for name in ENV_NAMES:
            write_parameters(settings.model_copy(update={"env": name}), folder / "parameters")
        return cls(settings, folder, owns_stack)

    @property
    def outputs(self) -> Path:
        return self.folder / "outputs"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
        env.update(
            PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
            PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
            TARMAC_PARAMETERS_DIR=str(self.folder / "parameters"),
            TARMAC_OUTPUTS_DIR=str(self.outputs),
            TARMAC_LOG_FORMAT="kv",
        )
        return {**env, **extra}

    def _allowed(self, line: str) -> None:
        if _STOPS_A_STACK.search(line) and not self.owns_stack:
            raise AssertionError(
                f"`{line}` stops a stack: run it in a Sandbox of a dedicated_stack (owns_stack="
                "True), never on the stack the session shares with other tests and sessions"
            )

    def spawn(self, line: str, log: Path, **extra: str) -> subprocess.Popen[bytes]:
        """Start ``line`` in its own process group, its output into ``log``; stop it with
        :func:`~pipelines.stack.services.stop_group`."""
        self._allowed(line)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            return subprocess.Popen(["bash", "-c", line], cwd=REPO, env=self.env(**extra),
                                    stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)  # fmt: skip

    def sh(self, line: str, timeout: float = 600, **extra: str) -> subprocess.CompletedProcess:
        """Run ``line`` to its end (its process group is stopped after ``timeout`` seconds)."""
        self._allowed(line)
        proc = subprocess.Popen(["bash", "-c", line], cwd=REPO, env=self.env(**extra), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        finally:
            stop_group(proc, grace_s=10)
        return subprocess.CompletedProcess(line, proc.returncode, out, err)


def ok(res: subprocess.CompletedProcess) -> str:
    """The standard output of a line that must have exited 0 (else its output tails)."""
    assert res.returncode == 0, (
        f"`{res.args}` exited with {res.returncode}\n--- stdout\n{res.stdout[-2500:]}"
        f"\n--- stderr\n{res.stderr[-4000:]}"
    )
    return res.stdout


# ---------------------------------------------------------------------------- a scratch crontab
SPOOL = Path("/var/spool/cron/crontabs")  # Debian's crontab folder


@contextlib.contextmanager
def scratch_crontab(folder: Path) -> Iterator[Callable[[str], str]]:
    """A function that makes a command line use a scratch crontab. As root: the real ``crontab``
    in a mount namespace where Debian's crontab folder is ``folder`` (nothing outside changes;
    no cron daemon reads it). Otherwise the user's own crontab, saved first, put back after."""
    folder.mkdir(parents=True, exist_ok=True)
    private = ["unshare", "--mount", "--propagation", "private"]
    if (
        SPOOL.is_dir()
        and shutil.which("unshare")
        and subprocess.run([*private, "true"], capture_output=True).returncode == 0
    ):
        script = 'mount --bind "$1" "$2" && exec bash -c "$0"'
        yield lambda line: shlex.join(
            [*private, "bash", "-c", script, line, str(folder), str(SPOOL)]
        )
        return
    saved = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    try:
        yield lambda line: line
    finally:
        if saved.returncode == 0:
            subprocess.run(["crontab", "-"], input=saved.stdout, text=True, check=True)
        else:
            subprocess.run(["crontab", "-r"], capture_output=True)
