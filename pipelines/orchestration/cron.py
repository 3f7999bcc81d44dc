"""``cron/tarmac.crontab``: rendered for this checkout, installed into the user's crontab, or
run by a foreground scheduler on machines without cron.

- :func:`render` replaces ``{{ROOT}}`` with this checkout's absolute path, and the line
  ``{{NOTEBOOK_JOBS}}`` with one line per notebook-native job that has a ``schedule`` in its
  notebook's metadata (:func:`notebook_lines`, generated from the registry when rendered: a
  new scheduled notebook needs no edit of the template, only ``cron install`` again);
- :func:`merge` / :func:`remove` edit a crontab's text between ``# BEGIN tarmac <root>`` and
  ``# END tarmac <root>`` only, so installing twice never duplicates a line and removing
  leaves every other entry alone (pure functions on strings; :func:`install` /
  :func:`uninstall` read and write the real crontab with ``crontab -l`` / ``crontab -``);
- :func:`parse` + :func:`due` say which lines are due at a minute (5 cron fields, evaluated
  with croniter in local time, like cron); :func:`schedule` runs them, forever or ``once``.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from croniter import croniter

from pipelines.core.config import REPO_ROOT
from pipelines.core.exceptions import ConfigError, TarmacError
from pipelines.jobs import notebook_jobs, registry
from pipelines.jobs.registry import JobSpec

log = structlog.get_logger(__name__)

TEMPLATE = REPO_ROOT / "cron" / "tarmac.crontab"
PLACEHOLDER = "{{ROOT}}"
NOTEBOOK_JOBS = "{{NOTEBOOK_JOBS}}"  # a line of its own: the scheduled notebook-native jobs
_ENV_LINE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
_MAX_CATCH_UP_MIN = 60  # a scheduler that slept longer (suspend) runs at most this many minutes


# --- render and install -------------------------------------------------------------------------
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
            f"{spec.schedule} cd {PLACEHOLDER} && {where}.venv/bin/python -m pipelines run {name} "
            f"--env local >> outputs/logs/cron-{name}.log 2>&1",
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


def render(template: str, root: Path = REPO_ROOT, jobs: Mapping[str, JobSpec] | None = None) -> str:
    """The crontab template with the notebook jobs' lines in place of ``{{NOTEBOOK_JOBS}}``
    (:func:`expand`) and ``{{ROOT}}`` replaced by ``root`` (absolute)."""
    text = expand(template, jobs).replace(PLACEHOLDER, _root_for_cron(Path(root).resolve()))
    return text if text.endswith("\n") else text + "\n"


def schedules(template: Path = TEMPLATE) -> dict[str, str]:
    """``{job: schedule}`` of the rendered crontab's ``run`` lines (``service ensure`` lines:
    ``service``), for ``python -m pipelines jobs``."""
    found: dict[str, str] = {}
    entries, _ = parse(render(template.read_text()))
    for entry in entries:
        if m := re.search(r"pipelines (run|service ensure) (\w+)", entry.command):
            found[m[2]] = "service" if m[1] == "service ensure" else entry.schedule
    return found


def markers(root: Path) -> tuple[str, str]:
    root = Path(root).resolve()
    return f"# BEGIN tarmac {root}", f"# END tarmac {root}"


def block(template: str, root: Path = REPO_ROOT, jobs: Mapping[str, JobSpec] | None = None) -> str:
    """The rendered template between this checkout's markers (``jobs``: as :func:`render`)."""
    begin, end = markers(root)
    return f"{begin}\n{render(template, root, jobs)}{end}\n"


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


def merge(current: str, template: str, root: Path = REPO_ROOT) -> str:
    """``current`` with this checkout's block replaced in place, or appended when absent."""
    before, after = _split(current, root)
    return _join([*before, *block(template, root).splitlines(), *after])


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


def install(root: Path = REPO_ROOT, template: Path = TEMPLATE) -> bool:
    """Install or refresh this checkout's block; False when it was already up to date."""
    (Path(root) / "outputs" / "logs").mkdir(parents=True, exist_ok=True)  # lines log there
    current = read_crontab()
    new = merge(current, template.read_text(), root)
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
    entries, env = parse(render(template.read_text(), root))
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
