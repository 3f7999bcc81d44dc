"""cron/tarmac.crontab: render (the lines call ``tarmac`` through the PATH and JAVA_HOME the
block sets), idempotent merge/remove (pure, on strings: the real crontab is never touched), due
computation with croniter at fixed times, ``schedule --once``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from pipelines.core.exceptions import ConfigError
from pipelines.jobs import registry
from pipelines.orchestration import cron

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = (REPO / "cron" / "tarmac.crontab").read_text()
ROOT = Path("/srv/tarmac")
OTHER = "MAILTO=ops@example.org\n# backups\n30 2 * * * /usr/local/bin/backup\n"
ENV = cron.Environment(Path("/opt/venv/bin"), Path("/usr/lib/jvm/jdk-17"))  # rendered with
LINE = re.compile(
    r"^(?P<sched>(\S+ ){5})cd \{\{ROOT\}\} && tarmac "
    r"(?P<how>run|service ensure) (?P<job>\w+) "
    r"--env local( -p \w+=\S+)* >> outputs/logs/cron-(?P=job)\.log 2>&1$"
)


def test_template_lines_run_registry_jobs_and_log_per_job() -> None:
    """Every line runs a job of the registry (`run`) or is the watchdog of one of its services
    (`service ensure`, every minute); the stream is only watched, never run as a pass."""
    lines = [ln for ln in TEMPLATE.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines.pop() == cron.NOTEBOOK_JOBS  # the notebook jobs' lines, generated: below
    # first the environment of every line (cron gives a command almost none): rendered below
    assert lines[:2] == ["PATH={{BIN}}:/usr/local/bin:/usr/bin:/bin", "JAVA_HOME={{JAVA_HOME}}"]
    lines = lines[2:]
    jobs = {}
    for line in lines:
        match = LINE.match(line)
        assert match, line
        jobs[match["job"]] = (match["how"], match["sched"].strip())
    assert jobs == {
        "reference_daily": ("run", "0 5 * * *"),
        "weather_hourly": ("run", "5 * * * *"),
        "flights_stream": ("service ensure", "* * * * *"),
        "housekeeping": ("run", "30 3 * * *"),
        "alerts": ("service ensure", "* * * * *"),
    }
    assert set(jobs) <= set(registry.JOBS)
    for job, (how, schedule) in jobs.items():
        is_service = registry.JOBS[job].service is not None
        assert (how == "service ensure") == is_service, job
        assert not is_service or schedule == "* * * * *", job  # back within a minute
    assert "availableNow" not in TEMPLATE.split("# m  h")[1]


def test_render_puts_the_absolute_root_in_and_quotes_it() -> None:
    text = cron.render(TEMPLATE, ROOT)
    assert "{{ROOT}}" not in text
    assert "cd /srv/tarmac && tarmac run weather_hourly --env local " in text
    odd = cron.render("* * * * * cd {{ROOT}} && true\n", Path("/srv/my tar%mac"))
    assert odd == "* * * * * cd '/srv/my tar\\%mac' && true\n"


def test_render_sets_path_and_java_home_before_the_first_line() -> None:
    """The rendered block gives its lines a PATH whose first folder holds ``tarmac`` (the
    renderer's bin folder), then the system's, and the JDK's JAVA_HOME: cron assignments, ahead
    of every command, and what ``schedule`` passes its commands too."""
    text = cron.render(TEMPLATE, ROOT, registry.JOBS, ENV)
    assert "{{" not in text
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    assert lines[:2] == ["PATH=/opt/venv/bin:/usr/local/bin:/usr/bin:/bin",
                         "JAVA_HOME=/usr/lib/jvm/jdk-17"]  # fmt: skip
    assert all(" && tarmac " in ln for ln in lines[2:])
    entries, env = cron.parse(text)
    assert env == {"PATH": "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin",
                   "JAVA_HOME": "/usr/lib/jvm/jdk-17"}  # fmt: skip
    assert min(e.line for e in entries) > text.splitlines().index("JAVA_HOME=/usr/lib/jvm/jdk-17")
    # an interpreter of /usr/local/bin (the image's): the folder once
    image = cron.Environment(Path("/usr/local/bin"), Path("/usr/lib/jvm/jdk-17"))
    assert "PATH=/usr/local/bin:/usr/bin:/bin\n" in cron.render(TEMPLATE, ROOT, env=image)
    # no JDK found when rendered: no JAVA_HOME assignment, a comment that says so
    bare = cron.render(TEMPLATE, ROOT, env=cron.Environment(Path("/opt/venv/bin"), None))
    assert "JAVA_HOME=" not in bare and "\n# JAVA_HOME: none found when rendered" in bare
    assert set(cron.parse(bare)[1]) == {"PATH"}
    # the block installed carries them
    assert "\nPATH=/opt/venv/bin:" in cron.merge(OTHER, TEMPLATE, ROOT, ENV)


def test_the_rendering_environment_is_this_interpreter_s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """By default the lines' PATH starts with the bin folder of the Python that renders them
    (a virtualenv's own, not where its python links to), which holds ``tarmac``; JAVA_HOME is
    $JAVA_HOME, else the home of the ``java`` on PATH (links resolved), else none."""
    here = cron.Environment.current()
    assert here.bin == Path(sys.executable).absolute().parent
    assert (here.bin / "tarmac").is_file()
    assert f"\nPATH={here.bin}:" in cron.render(TEMPLATE, ROOT)
    jdk = tmp_path / "jvm" / "jdk-17"
    (jdk / "bin").mkdir(parents=True)
    (jdk / "bin" / "java").write_text("#!/bin/sh\n")
    (jdk / "bin" / "java").chmod(0o755)
    (tmp_path / "usr-bin").mkdir()
    (tmp_path / "usr-bin" / "java").symlink_to(jdk / "bin" / "java")  # as /usr/bin/java
    assert cron.java_home({"JAVA_HOME": "/opt/jdk", "PATH": ""}) == Path("/opt/jdk")
    assert cron.java_home({"PATH": str(tmp_path / "usr-bin")}) == jdk.resolve()
    assert cron.java_home({"PATH": str(tmp_path)}) is None  # no java there
    monkeypatch.setenv("JAVA_HOME", str(jdk))
    assert cron.Environment.current().java_home == jdk


def test_install_into_an_empty_crontab_then_again_changes_nothing() -> None:
    once = cron.merge("", TEMPLATE, ROOT)
    assert once.splitlines()[0] == "# BEGIN tarmac /srv/tarmac"
    assert once.splitlines()[-1] == "# END tarmac /srv/tarmac"
    assert cron.merge(once, TEMPLATE, ROOT) == once
    assert once.count("tarmac service ensure flights_stream") == 1


def test_install_keeps_other_entries_and_remove_restores_them() -> None:
    installed = cron.merge(OTHER, TEMPLATE, ROOT)
    assert installed.startswith(OTHER)
    assert cron.merge(installed, TEMPLATE, ROOT) == installed
    assert cron.remove(installed, ROOT) == OTHER
    assert cron.remove(cron.remove(installed, ROOT), ROOT) == OTHER  # removing twice: harmless
    assert cron.remove("", ROOT) == ""


def test_a_changed_template_replaces_the_block_in_place() -> None:
    installed = cron.merge(OTHER, TEMPLATE, ROOT) + "0 0 * * * /usr/bin/after\n"
    updated = cron.merge(installed, "15 3 * * * cd {{ROOT}} && echo new\n", ROOT)
    assert "tarmac run" not in updated
    assert "15 3 * * * cd /srv/tarmac && echo new" in updated
    assert updated.startswith(OTHER) and updated.endswith("0 0 * * * /usr/bin/after\n")
    assert updated.count("# BEGIN tarmac /srv/tarmac\n") == 1


def test_two_checkouts_have_their_own_blocks() -> None:
    both = cron.merge(cron.merge("", TEMPLATE, ROOT), TEMPLATE, Path("/home/me/tarmac"))
    assert [ln for ln in both.splitlines() if ln.startswith("# BEGIN tarmac ")] == [
        "# BEGIN tarmac /srv/tarmac",
        "# BEGIN tarmac /home/me/tarmac",
    ]
    only_other = cron.remove(both, ROOT)
    assert "/srv/tarmac" not in only_other and "cd /home/me/tarmac" in only_other


def test_a_damaged_block_is_not_touched() -> None:
    damaged = "# BEGIN tarmac /srv/tarmac\n* * * * * true\n"
    with pytest.raises(ConfigError, match="damaged tarmac block"):
        cron.merge(damaged, TEMPLATE, ROOT)
    with pytest.raises(ConfigError, match="damaged"):
        cron.remove(damaged, ROOT)


def test_parse_the_template() -> None:
    entries, env = cron.parse(cron.render(TEMPLATE, ROOT, registry.JOBS, ENV))  # no notebook job
    assert env == {"PATH": "/opt/venv/bin:/usr/local/bin:/usr/bin:/bin",
                   "JAVA_HOME": "/usr/lib/jvm/jdk-17"}  # fmt: skip
    assert [e.schedule for e in entries] == [
        "0 5 * * *",
        "5 * * * *",
        "* * * * *",
        "* * * * *",
        "30 3 * * *",
    ]
    assert all(e.command.startswith("cd /srv/tarmac && ") for e in entries)
    entries, env = cron.parse("SHELL=/bin/bash\n@hourly echo hi\n")
    assert env == {"SHELL": "/bin/bash"} and entries[0].schedule == "@hourly"
    for bad in ("61 * * * * echo", "* * * * *", "@reboot echo hi"):
        with pytest.raises(ConfigError, match="line 1"):
            cron.parse(bad)


@pytest.mark.parametrize(
    ("when", "jobs"),
    [
        (datetime(2024, 3, 1, 5, 0, 42), ["reference_daily", "flights_stream", "alerts"]),
        (datetime(2024, 3, 1, 10, 5, 0), ["weather_hourly", "flights_stream", "alerts"]),
        (datetime(2024, 3, 1, 5, 5, 59), ["weather_hourly", "flights_stream", "alerts"]),
        (datetime(2024, 3, 1, 10, 6, 0), ["flights_stream", "alerts"]),
        (datetime(2024, 3, 1, 3, 30, 0), ["flights_stream", "alerts", "housekeeping"]),
    ],
)
def test_due_at_fixed_times(when: datetime, jobs: list[str]) -> None:
    entries, _ = cron.parse(cron.render(TEMPLATE, ROOT, registry.JOBS))
    due = cron.due(entries, when)
    assert [re.search(r"(?:run|ensure) (\w+)", e.command)[1] for e in due] == jobs


def test_a_scheduled_notebook_job_gets_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """A notebook-native job with a schedule in its metadata gets a `run` line in place of
    {{NOTEBOOK_JOBS}}, generated when the crontab is rendered; one from a folder of
    $TARMAC_JOBS_NOTEBOOKS carries that variable, so cron's `run` finds it; one without a
    schedule gets none."""
    monkeypatch.setenv("TARMAC_JOBS_NOTEBOOKS", "tests/notebooks")
    jobs = registry.jobs()
    assert jobs["nb_job_sum"].schedule == "17 4 * * *" and jobs["nb_job_hold"].schedule is None
    text = cron.render(TEMPLATE, ROOT)
    assert "{{" not in text
    line = (
        "17 4 * * * cd /srv/tarmac && TARMAC_JOBS_NOTEBOOKS=tests/notebooks tarmac run "
        "nb_job_sum --env local >> outputs/logs/cron-nb_job_sum.log 2>&1"
    )
    assert line in text.splitlines()
    assert "nb_job_hold" not in text
    entries, _ = cron.parse(text)
    assert entries[-1].command == line.split(None, 5)[5]
    due = cron.due(entries, datetime(2024, 3, 1, 4, 17))
    assert [re.search(r"(?:run|ensure) (\w+)", e.command)[1] for e in due] == [
        "flights_stream", "alerts", "nb_job_sum",
    ]  # fmt: skip
    # installed like the rest: once, between this checkout's markers
    once = cron.merge("", TEMPLATE, ROOT)
    assert cron.merge(once, TEMPLATE, ROOT) == once and once.count("run nb_job_sum") == 1
    # without a scheduled notebook job the placeholder leaves nothing behind
    assert cron.render(TEMPLATE, ROOT, registry.JOBS) == cron.render(
        TEMPLATE.replace("{{NOTEBOOK_JOBS}}\n", ""), ROOT
    )
    assert cron.schedules()["nb_job_sum"] == "17 4 * * *"


def test_schedule_once_runs_what_is_due_and_only_that(tmp_path: Path) -> None:
    (tmp_path / "crontab").write_text(
        "# test\n"
        "GREETING=hello\n"
        "0 5 * * * cd {{ROOT}} && echo $GREETING > due.txt\n"
        "5 * * * * cd {{ROOT}} && echo no > not-due.txt\n"
    )
    code = cron.schedule(
        tmp_path / "crontab", root=tmp_path, once=True, now=datetime(2024, 3, 1, 5)
    )
    assert code == 0
    assert (tmp_path / "due.txt").read_text() == "hello\n"
    assert not (tmp_path / "not-due.txt").exists()


def test_schedule_once_gives_its_commands_the_rendered_path(tmp_path: Path) -> None:
    """``schedule`` (no cron) runs the lines with the environment cron would give them: the
    rendered PATH, whose first folder holds ``tarmac``."""
    (tmp_path / "crontab").write_text(
        "PATH={{BIN}}:/usr/local/bin:/usr/bin:/bin\n"
        "* * * * * cd {{ROOT}} && echo $PATH > path.txt && command -v tarmac > which.txt\n"
    )
    assert cron.schedule(tmp_path / "crontab", root=tmp_path, once=True) == 0
    bin_dir = Path(sys.executable).absolute().parent
    assert (tmp_path / "path.txt").read_text().split(os.pathsep)[0] == str(bin_dir)
    assert (tmp_path / "which.txt").read_text() == f"{bin_dir / 'tarmac'}\n"


def test_schedule_once_fails_when_a_command_fails(tmp_path: Path) -> None:
    (tmp_path / "crontab").write_text("* * * * * exit 3\n* * * * * true\n")
    assert cron.schedule(tmp_path / "crontab", root=tmp_path, once=True) == 1


def test_schedule_once_cli(tmp_path: Path) -> None:
    (tmp_path / "crontab").write_text(f"* * * * * echo ran > {tmp_path}/ran.txt\n")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipelines",
            "schedule",
            "--once",
            "--crontab",
            str(tmp_path / "crontab"),
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "ran.txt").read_text() == "ran\n"
