"""``cron/tarmac.crontab``: rendered for this checkout, installed into the user's crontab, or
run by a foreground scheduler on machines without cron.

- :func:`render` replaces ``{{ROOT}}`` with this checkout's absolute path, the line
  ``{{NOTEBOOK_JOBS}}`` with one line per notebook-native job that has a ``schedule`` in its
  notebook's metadata (:func:`notebook_lines`, generated from the registry when rendered: a
  new scheduled notebook needs no edit of the template, only ``cron install`` again), and
  ``{{BIN}}`` / ``{{JAVA_HOME}}`` of the ``PATH=`` / ``JAVA_HOME=`` lines with the
  :class:`Environment` of the rendering process: cron gives a command almost no environment,
  so the lines call ``tarmac`` through that ``PATH``, never a ``.venv`` of the checkout;
- :func:`merge` / :func:`remove` edit a crontab's text between ``# BEGIN tarmac <root>`` and
  ``# END tarmac <root>`` only, so installing twice never duplicates a line and removing
  leaves every other entry alone (pure functions on strings; :func:`install` /
  :func:`uninstall` read and write the real crontab with ``crontab -l`` / ``crontab -``);
- :func:`parse` + :func:`due` say which lines are due at a minute (5 cron fields, evaluated
  with croniter in local time, like cron); :func:`schedule` runs them, forever or ``once``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path

import structlog
from croniter import croniter

from pipelines.clients.jars import java_home  # the JDK the stack runs, named in the lines
from pipelines.core.config import REPO_ROOT
from pipelines.core.exceptions import ConfigError, TarmacError
from pipelines.jobs import notebook_jobs, registry
from pipelines.jobs.registry import JobSpec

log = structlog.get_logger(__name__)

TEMPLATE = REPO_ROOT / "cron" / "tarmac.crontab"
PLACEHOLDER = "{{ROOT}}"
NOTEBOOK_JOBS = "{{NOTEBOOK_JOBS}}"  # a line of its own: the scheduled notebook-native jobs
BIN = "{{BIN}}"  # in the PATH= line: the bin folder of the Python that renders the crontab
JAVA_HOME = "{{JAVA_HOME}}"  # in the JAVA_HOME= line: the JDK Spark runs (or none: a comment)
SCRIPT = "tarmac"  # the console script of pyproject.toml the lines call
_ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_MAX_CATCH_UP_MIN = 60  # a scheduler that slept longer (suspend) runs at most this many minutes


# --- render and install -------------------------------------------------------------------------
def installed_checkout() -> Path | None:
    """The checkout whose code the environment's ``tarmac`` runs when the project is installed
    editable there (``make install``: ``pip install -e .``), from pip's ``direct_url.json``;
    None otherwise."""
    try:
        raw = metadata.distribution("tarmac").read_text("direct_url.json") or "{}"
    except metadata.PackageNotFoundError:
        return None
    about = json.loads(raw)
    url = urllib.parse.urlparse(about.get("url", ""))
    if not about.get("dir_info", {}).get("editable") or url.scheme != "file":
        return None
    return Path(urllib.parse.unquote(url.path)).resolve()


@dataclass(frozen=True)
class Environment:
    """What the rendered lines need from the machine: ``bin``, the folder where ``tarmac`` is
    installed (first on the lines' ``PATH``), and ``java_home`` (None: not set, a comment)."""

    bin: Path
    java_home: Path | None

    @classmethod
    def current(cls) -> Environment:
        """This process's: the bin folder of its interpreter (a virtualenv's own, not the
        Python it links to), the JDK of :func:`java_home`."""
        return cls(Path(sys.executable).absolute().parent, java_home())

    def warn(self) -> None:
        """Log what would make the lines fail or run other code: no ``tarmac`` in :attr:`bin`,
        or one installed from another checkout (it imports the installed package, not the one
        of the folder it runs in)."""
        if not (self.bin / SCRIPT).exists():
            log.warning("cron.no_script", script=SCRIPT, bin=str(self.bin),
                        fix="install the project in this environment: make install, or "
                        "pip install -e .")  # fmt: skip
        elif (source := installed_checkout()) not in (None, REPO_ROOT.resolve()):
            log.warning("cron.other_checkout", script=str(self.bin / SCRIPT), runs=str(source),
                        checkout=str(REPO_ROOT.resolve()))  # fmt: skip

    def fill(self, line: str) -> str:
        """``line`` with ``{{BIN}}`` and ``{{JAVA_HOME}}`` filled in (a ``PATH=`` line without
        repeated folders; a ``JAVA_HOME`` line without a JDK becomes a comment)."""
        for value in (self.bin, self.java_home):
            if value is not None and "\n" in str(value):
                raise ConfigError(f"a crontab cannot hold the path {str(value)!r}")
        if JAVA_HOME in line and self.java_home is None:
            name = line.split("=")[0].strip()
            return (f"# {name}: none found when rendered (no $JAVA_HOME, no java on PATH); "
                    "Spark needs a JDK 17+: install one, then render again")  # fmt: skip
        line = line.replace(BIN, str(self.bin)).replace(JAVA_HOME, str(self.java_home))
        if (match := _ENV_LINE.match(line.strip())) and match[1] == "PATH":
            line = f"PATH={os.pathsep.join(dict.fromkeys(match[2].split(os.pathsep)))}"
        return line


def _root_for_cron(root: Path) -> str:
    # shell-quoted for the command, and `%` escaped: cron turns a bare `%` into a newline.
    return shlex.quote(str(root)).replace("%", r"\%")


def notebook_lines(jobs: Mapping[str, JobSpec] | None = None) -> list[str]:
    """The crontab lines of the notebook-native jobs of ``jobs`` (default: the registry's) that
    have a schedule: ``run <job> --env local`` as every batch line, a comment first. A job of a
    folder of ``$TARMAC_JOBS_NOTEBOOKS`` gets that variable on its line (relative to the root
    when inside it), so that cron's ``run`` finds it too."""
    lines = []
    jobs = registry.jobs() if jobs is None else jobs
    default = (REPO_ROOT / notebook_jobs.NOTEBOOKS_DIR).resolve()
    for name, spec in jobs.items():
        if not spec.native or not spec.schedule:
            continue
        folder = spec.notebook_path.resolve().parent
        where = ""
        if folder != default:
            shown = folder.relative_to(REPO_ROOT) if folder.is_relative_to(REPO_ROOT) else folder
            where = f"{notebook_jobs.NOTEBOOKS_ENV}={shlex.quote(str(shown))} "
        about = f": {spec.description}" if spec.description else ""
        lines += [
            f"# {name} (notebook-native, {spec.notebook}){about}",
            f"{spec.schedule} cd {PLACEHOLDER} && {where}{SCRIPT} run {name} --env local "
            f">> outputs/logs/cron-{name}.log 2>&1",
        ]
    return lines


def expand(template: str, jobs: Mapping[str, JobSpec] | None = None) -> str:
    """The template with its ``{{NOTEBOOK_JOBS}}`` line replaced by :func:`notebook_lines`
    (``jobs``: default the registry's; none scheduled: the line goes), ``{{ROOT}}`` kept."""
    if not any(line.strip() == NOTEBOOK_JOBS for line in template.splitlines()):
        return template
    generated = notebook_lines(jobs)
    lines: list[str] = []
    for line in template.splitlines():
        lines += generated if line.strip() == NOTEBOOK_JOBS else [line]
    return "\n".join(lines) + "\n"


def render(
    template: str,
    root: Path = REPO_ROOT,
    jobs: Mapping[str, JobSpec] | None = None,
    env: Environment | None = None,
) -> str:
    """The crontab template with the notebook jobs' lines in place of ``{{NOTEBOOK_JOBS}}``
    (:func:`expand`), ``{{ROOT}}`` replaced by ``root`` (absolute), ``{{BIN}}`` and
    ``{{JAVA_HOME}}`` by ``env``'s (default: :meth:`Environment.current`)."""
    text = expand(template, jobs).replace(PLACEHOLDER, _root_for_cron(Path(root).resolve()))
    if BIN in text or JAVA_HOME in text:
        env = env or Environment.current()
        text = "\n".join(env.fill(line) for line in text.splitlines())
    return text if text.endswith("\n") else text + "\n"


def schedules(template: Path = TEMPLATE) -> dict[str, str]:
    """``{job: schedule}`` of the rendered crontab's ``run`` lines (``service ensure`` lines:
    ``service``), for ``tarmac jobs``."""
    found: dict[str, str] = {}
    entries, _ = parse(render(template.read_text()))
    for entry in entries:
        if m := re.search(rf"\b{SCRIPT} (run|service ensure) (\w+)", entry.command):
            found[m[2]] = "service" if m[1] == "service ensure" else entry.schedule
    return found


def markers(root: Path) -> tuple[str, str]:
    root = Path(root).resolve()
    return f"# BEGIN tarmac {root}", f"# END tarmac {root}"


def block(
    template: str,
    root: Path = REPO_ROOT,
    jobs: Mapping[str, JobSpec] | None = None,
    env: Environment | None = None,
) -> str:
    """The rendered template between this checkout's markers (``jobs``, ``env``: as
    :func:`render`)."""
    begin, end = markers(root)
    return f"{begin}\n{render(template, root, jobs, env)}{end}\n"


def _split(current: str, root: Path) -> tuple[list[str], list[str]]:
    """Lines before and after this checkout's block (the block itself dropped)."""
    begin, end = markers(root)
    lines = current.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == begin]
    ends = [i for i, line in enumerate(lines) if line.strip() == end]
    if not starts and not ends:
        return lines, []
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ConfigError(
            f"the crontab holds a damaged tarmac block for {Path(root).resolve()} "
            f"({len(starts)} BEGIN / {len(ends)} END markers); fix it with `crontab -e`"
        )
    return lines[: starts[0]], lines[ends[0] + 1 :]


def _join(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


def merge(
    current: str, template: str, root: Path = REPO_ROOT, env: Environment | None = None
) -> str:
    """``current`` with this checkout's block replaced in place, or appended when absent."""
    before, after = _split(current, root)
    return _join([*before, *block(template, root, env=env).splitlines(), *after])


def remove(current: str, root: Path = REPO_ROOT) -> str:
    """``current`` without this checkout's block (and nothing else changed)."""
    before, after = _split(current, root)
    return _join([*before, *after])


def read_crontab() -> str:
    res = subprocess.run(["crontab", "-l"], capture_output=True, text=True)
    if res.returncode == 0:
        return res.stdout
    if "no crontab" in res.stderr.lower():
        return ""
    raise TarmacError(f"`crontab -l` failed: {res.stderr.strip()}")


def write_crontab(text: str) -> None:
    res = subprocess.run(["crontab", "-"], input=text, capture_output=True, text=True)
    if res.returncode != 0:
        raise TarmacError(f"`crontab -` refused the new crontab: {res.stderr.strip()}")


def install(
    root: Path = REPO_ROOT, template: Path = TEMPLATE, env: Environment | None = None
) -> bool:
    """Install or refresh this checkout's block; False when it was already up to date."""
    (Path(root) / "outputs" / "logs").mkdir(parents=True, exist_ok=True)  # lines log there
    current = read_crontab()
    new = merge(current, template.read_text(), root, env)
    if new == current:
        return False
    write_crontab(new)
    return True


def uninstall(root: Path = REPO_ROOT) -> bool:
    """Remove this checkout's block; False when there was none."""
    current = read_crontab()
    if markers(root)[0] not in current:
        return False
    new = remove(current, root)
    if new.strip():
        write_crontab(new)
    else:  # our block was all there was: leave no (empty) crontab behind, as before install
        res = subprocess.run(["crontab", "-r"], capture_output=True, text=True)
        if res.returncode != 0:
            raise TarmacError(f"`crontab -r` failed: {res.stderr.strip()}")
    return True


# --- parse and schedule -------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    schedule: str  # the 5 cron fields (or @hourly, @daily, ...)
    command: str
    line: int


def parse(text: str) -> tuple[list[Entry], dict[str, str]]:
    """Entries and ``NAME=value`` settings of a crontab text; a bad line is a ConfigError."""
    entries: list[Entry] = []
    env: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if match := _ENV_LINE.match(line):
            env[match.group(1)] = match.group(2).strip().strip("'\"")
            continue
        parts = line.split(None, 1 if line.startswith("@") else 5)
        n_fields = 1 if line.startswith("@") else 5
        if len(parts) <= n_fields:
            raise ConfigError(f"crontab line {number} has no command: {raw!r}")
        spec, command = " ".join(parts[:n_fields]), parts[n_fields]
        if spec == "@reboot" or not croniter.is_valid(spec):
            raise ConfigError(f"crontab line {number}: {spec!r} is not a schedule we can run")
        entries.append(Entry(spec, command, number))
    return entries, env


def due(entries: list[Entry], when: datetime) -> list[Entry]:
    """The entries whose schedule matches the minute of ``when`` (local time, like cron)."""
    minute = when.replace(second=0, microsecond=0)
    return [e for e in entries if croniter.match(e.schedule, minute)]


def _launch(entry: Entry, env: dict[str, str], root: Path) -> subprocess.Popen:
    # cron semantics: `%` ends the command, the rest is its stdin; `\%` is a literal `%`.
    command = re.split(r"(?<!\\)%", entry.command, maxsplit=1)[0].replace(r"\%", "%")
    shell = env.get("SHELL", "/bin/sh")
    log.info("schedule.start", line=entry.line, schedule=entry.schedule, command=command)
    return subprocess.Popen(
        [shell, "-c", command],
        cwd=root,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # like cron: a job outlives a Ctrl-C of the scheduler
    )


def schedule(
    template: Path = TEMPLATE,
    root: Path = REPO_ROOT,
    once: bool = False,
    now: datetime | None = None,
) -> int:
    """Run the crontab's lines at their minutes. ``once``: what is due now, wait, exit code 0
    when every command succeeded, else 1. Otherwise loop until interrupted (exit 0)."""
    machine = Environment.current()
    machine.warn()
    entries, env = parse(render(template.read_text(), root, env=machine))
    if once:
        when = now or datetime.now()
        procs = [(e, _launch(e, env, root)) for e in due(entries, when)]
        if not procs:
            log.info("schedule.nothing_due", minute=when.strftime("%Y-%m-%d %H:%M"))
        failed = 0
        for entry, proc in procs:
            code = proc.wait()
            log.info("schedule.exit", line=entry.line, code=code)
            failed += code != 0
        return 1 if failed else 0

    running: list[tuple[Entry, subprocess.Popen]] = []
    last = (now or datetime.now()).replace(second=0, microsecond=0)
    log.info("schedule.loop", entries=len(entries), crontab=str(template))
    try:
        while True:
            nxt = last + timedelta(minutes=1)
            time.sleep(max(0.0, (nxt - datetime.now()).total_seconds()) + 0.05)
            current = datetime.now().replace(second=0, microsecond=0)
            minutes = []
            while last < current and len(minutes) < _MAX_CATCH_UP_MIN:
                last += timedelta(minutes=1)
                minutes.append(last)
            last = current
            for minute in minutes:
                running += [(e, _launch(e, env, root)) for e in due(entries, minute)]
            still = []
            for entry, proc in running:
                if proc.poll() is None:
                    still.append((entry, proc))
                else:
                    log.info("schedule.exit", line=entry.line, code=proc.returncode)
            running = still
    except KeyboardInterrupt:
        log.info("schedule.stopped", still_running=[p.pid for _, p in running])
        return 0
