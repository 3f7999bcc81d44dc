import subprocess
import sys

import pytest

from pipelines.cli import build_parser

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


def test_bad_env_is_a_clear_error_not_a_traceback() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "pipelines", "stack", "status", "--env", "nope"],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 2
    assert "error: no parameters file for env 'nope'" in res.stderr
    assert "Traceback" not in res.stderr
