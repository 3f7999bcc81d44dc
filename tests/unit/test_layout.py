"""The package's layout holds: data flows down the stages (no import runs back up), every
subpackage says in one line what it owns, and no module grows past 450 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pipelines"
# the stages in the order the data flows through them (README, "Architecture")
STAGES = (
    "core", "clients", "stack", "sources", "landing", "transform", "lake", "serving", "jobs",
    "orchestration", "dashboard", "presentation", "cli", "__main__",
)  # fmt: skip
MAX_LINES = 450


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "jupyter" not in p.parts)


def _stage(module: str) -> str:
    """``pipelines.serving.sinks`` -> ``serving``."""
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    """The ``pipelines.*`` modules ``path`` imports (relative imports resolved)."""
    # the package the module is in (a package's __init__ is in the package itself)
    here = ["pipelines", *path.relative_to(PACKAGE).with_suffix("").parts][:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                name = ".".join([*base, *([node.module] if node.module else [])])
            else:
                name = node.module or ""
            found.add(name)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {n for n in found if n.startswith("pipelines.")}


def test_the_stages_are_the_subpackages() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages <= set(STAGES), f"a subpackage not in STAGES: {packages - set(STAGES)}"
    top = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert top <= set(STAGES), f"modules outside the stages: {top - set(STAGES)}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_runs_back_up_the_stages(path: Path) -> None:
    module = "pipelines." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    if module == "pipelines.__init__":
        return
    rank = STAGES.index(_stage(module))
    upward = sorted(n for n in _imports(path) if STAGES.index(_stage(n)) > rank)
    assert not upward, f"{module} (stage {STAGES[rank]}) imports later stages: {upward}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_of_one_concern(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines"


def test_every_subpackage_says_what_it_owns() -> None:
    folders = {p.parent for p in _modules()} - {PACKAGE}
    missing = sorted(
        str(f.relative_to(PACKAGE)) for f in folders if not (f / "__init__.py").is_file()
    )
    assert not missing, f"folders of modules without an __init__.py (a docstring): {missing}"
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc, f"{init.parent.name}/ has no docstring"
        assert doc.splitlines()[0].strip(), f"{init.parent.name}/: first line empty"
