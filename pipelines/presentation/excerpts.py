"""Real code on the slides: a function or class pulled from the source by its dotted name.

The deck never pastes code. A slide names a symbol (``"pipelines.lake.tables.Lake.append"``,
``"pipelines.landing.zone.LandingZone.claim"``) and :func:`excerpt` finds it at build time:

1. import the longest importable module prefix of the name and walk the attributes, then take
   ``inspect.getsource`` of the object (the normal case);
2. if the import fails or the attribute is gone (the module moved, e.g. into a stage
   subpackage), search every ``.py`` file under ``pipelines/`` with :mod:`ast` for a ``def`` or
   ``class`` of that name (nested in the classes the name gives, when it gives some), files of
   the module the name gives first (``lake`` → ``lake.py`` or a ``lake/`` folder).

Line numbers are never used, so excerpts survive moves and edits. The excerpt keeps the
signature and the body, shortens the docstring to its first line and cuts long bodies with
``# …`` so it fits on a slide.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap
from dataclasses import dataclass
from pathlib import Path

from pipelines.core import config

PACKAGE_DIR = config.REPO_ROOT / "pipelines"


@dataclass(frozen=True)
class Excerpt:
    """Source of one symbol: ``code`` (shortened), the file relative to the repository, the
    first line of the symbol in that file, and how it was found (``import`` or ``ast``)."""

    name: str
    code: str
    file: str
    line: int
    found_by: str


class SymbolNotFound(LookupError):
    """No ``def``/``class`` of that name anywhere under ``pipelines/``."""


def _by_import(dotted: str) -> tuple[str, Path, int] | None:
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            obj = inspect.unwrap(obj)
            lines, start = inspect.getsourcelines(obj)
            return "".join(lines), Path(inspect.getsourcefile(obj) or ""), start
        except (AttributeError, TypeError, OSError):
            return None
    return None


def _find(tree: ast.AST, chain: list[str]) -> ast.AST | None:
    """The node for ``chain`` (``["LandingZone", "claim"]``) anywhere in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            if node.name != chain[0]:
                continue
            if len(chain) == 1:
                return node
            found = _find(node, chain[1:])
            if found is not None:
                return found
    return None


def _by_ast(dotted: str, root: Path = PACKAGE_DIR) -> tuple[str, Path, int] | None:
    parts = dotted.split(".")
    # the trailing names that look like symbols: classes (Capitalised) and the final name
    chain = [parts[-1]]
    for part in reversed(parts[:-1]):
        if part[:1].isupper():
            chain.insert(0, part)
        else:
            break
    # files of the module the name gives first (``lake`` -> ``lake.py`` or ``lake/``)
    hint = parts[-len(chain) - 1] if len(parts) > len(chain) else ""

    def rank(path: Path) -> tuple[int, str]:
        near = path.stem == hint or hint in path.relative_to(root).parts[:-1]
        return (0 if near else 1, path.as_posix())

    for path in sorted(root.rglob("*.py"), key=rank):
        text = path.read_text()
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        node = _find(tree, chain)
        if node is not None:
            start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            lines = text.splitlines(keepends=True)[start - 1 : node.end_lineno]
            return "".join(lines), path, start
    return None


def _shorten(code: str, max_lines: int) -> str:
    """Dedent, docstring to its first line, at most ``max_lines`` lines (``# …`` marks a cut)."""
    code = textwrap.dedent(code)
    try:
        node = ast.parse(code).body[0]
    except (SyntaxError, IndexError):
        node = None
    lines = code.splitlines()
    body = getattr(node, "body", None)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        doc = body[0].value
        if isinstance(doc.value, str):
            first = doc.value.strip().splitlines()[0] if doc.value.strip() else ""
            indent = lines[doc.lineno - 1][
                : len(lines[doc.lineno - 1]) - len(lines[doc.lineno - 1].lstrip())
            ]
            short = f'{indent}"""{first}"""' if first.endswith(".") else f'{indent}"""{first} …"""'
            lines[doc.lineno - 1 : doc.end_lineno] = [short]
    if len(lines) > max_lines:
        kept = lines[: max_lines - 1]
        last = next((ln for ln in reversed(kept) if ln.strip()), "")
        lines = [*kept, " " * (len(last) - len(last.lstrip())) + "# …"]
    return "\n".join(lines)


def locate(dotted: str) -> tuple[str, Path, int, str]:
    """Raw source, file and first line of ``dotted``; :class:`SymbolNotFound` if nowhere."""
    found = _by_import(dotted)
    how = "import"
    if found is None:
        found, how = _by_ast(dotted), "ast"
    if found is None:
        raise SymbolNotFound(f"no def or class {dotted!r} under {PACKAGE_DIR}")
    code, path, line = found
    return code, path, line, how


def excerpt(dotted: str, max_lines: int = 16) -> Excerpt:
    """The shortened source of ``dotted`` and where it lives (see the module docstring)."""
    code, path, line, how = locate(dotted)
    try:
        rel = path.resolve().relative_to(config.REPO_ROOT).as_posix()
    except ValueError:
        rel = path.name
    return Excerpt(dotted, _shorten(code, max_lines), rel, line, how)
