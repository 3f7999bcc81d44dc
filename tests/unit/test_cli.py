import importlib
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from pipelines.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]

COMMANDS = [name for name in build_parser()._subparsers._group_actions[0].choices]  # noqa: SLF001


def test_top_level_help_lists_every_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pipelines", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pipelines", name, "--help"], capture_output=True, text=True
    )
    assert res.returncode == 0
    assert "--env" in res.stdout


def test_the_tarmac_console_script_is_declared_and_runs_main() -> None:
    """``tarmac``, the name every document, the crontab and compose use, is pyproject's console
    script for :func:`pipelines.cli.main` (``python -m pipelines`` runs the same function); the
    installed environment has it next to its interpreter, where the crontab's PATH finds it."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"tarmac": "pipelines.cli:main"}
    module, _, function = scripts["tarmac"].partition(":")
    assert getattr(importlib.import_module(module), function) is main
    (installed,) = entry_points(group="console_scripts", name="tarmac")
    assert installed.value == "pipelines.cli:main"  # `make install` is up to date
    assert (Path(sys.executable).parent / "tarmac").is_file()
    assert build_parser().prog == "tarmac"
    assert build_parser().format_usage().startswith("usage: tarmac ")


def test_bad_env_is_a_clear_error_not_a_traceback() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pipelines", "stack", "status", "--env", "nope"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert "error: no parameters file for env 'nope'" in res.stderr
    assert "Traceback" not in res.stderr


def test_the_pipeline_line_says_what_was_sent_per_source() -> None:
    from pipelines.orchestration.loader import sent_line
    from pipelines.sources.replay import ReplayStats

    stats = ReplayStats(sent={"flights": 1234, "weather": 4, "reference": 1})
    assert sent_line(stats) == "sent 1,234 flight events, 4 weather files, 1 reference snapshot"
    stats.dead_lettered = 2
    assert sent_line(stats).endswith("1 reference snapshot, 2 dead-lettered")


def test_documented_commands_are_the_lines_of_shell_blocks() -> None:
    from tests.commands import readme_commands

    markdown = "\n".join([
        "run `make x` (prose, not a block)", "```mermaid", "flowchart LR", "```", "```bash",
        "make demo    # a comment", "# a whole comment", "", "A=1 tarmac \\",
        "  run job -p d=1", "```", "```python", "print(1)", "```",
    ])  # fmt: skip
    assert readme_commands(markdown) == ["make demo", "A=1 tarmac run job -p d=1"]
