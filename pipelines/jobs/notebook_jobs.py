"""Notebook-native jobs: a notebook that says in its own metadata that it is a job.

A data scientist's notebook becomes a job of the one registry (:func:`registry.jobs()
<pipelines.jobs.registry.jobs>`) without a Python module when it carries, in its top-level
metadata (JupyterLab: *Property Inspector > Advanced Tools > Notebook metadata*)::

    "tarmac": {"job": {"name": "delay_risk", "description": "...", "schedule": "15 6 * * *",
                       "timeout_s": 900, "retries": 1, "retry_backoff_s": 30,
                       "writes": ["serving/delay_risk"], "date_param": "date", "nice": 10}}

Only ``name`` is required; every other key defaults as :class:`~pipelines.jobs.registry.JobSpec`
does (an unknown key, a wrong type or a schedule that is not 5 cron fields is refused).

- **Parameters** come from the cell tagged ``parameters`` (papermill's convention): each line
  ``name = value`` or ``name: type = value``, optionally ``# type: Optional[int] help`` (what
  papermill reads too), becomes a field of a strict pydantic model derived from
  :class:`~pipelines.jobs.params.JobParams` (``env`` always there, unknown names refused), its
  type from the annotation or else from the default (``str``, ``int``, ``float``, ``bool``; a
  ``None`` default without a type is ``str | None``), the comment its description. The
  ``date_param`` is typed a date (``YYYY-MM-DD``). ``tarmac_metrics_path`` is the runner's.
- **Discovery**: every ``notebooks/*.ipynb`` carrying ``metadata.tarmac.job``, plus those of the
  folders of ``$TARMAC_JOBS_NOTEBOOKS`` (``dir[:dir]``, relative to the repository root or
  absolute; tests add their notebook jobs with it, as ``$TARMAC_JOBS_MODULE`` adds module jobs).
  A notebook is parsed once per change (cached by size and mtime): ``registry.jobs()`` with the
  12 notebooks of notebooks/ and tests/notebooks/ takes 33 ms the first time in a process,
  0.5 ms after (2 cores, load ~8, measured).
- **Promotion** (:func:`export_script`): papermill's parameterization (the same
  ``injected-parameters`` cell a run gets) then nbconvert's ``ScriptExporter``: a plain Python
  file ``spark-submit`` runs (``tarmac submit <job>``) and ``job <job>`` runs in
  the calling process (:func:`run_in_process`). IPython syntax (``%magic``, ``!shell``) is
  refused there: a script has no kernel. An export takes 4.4 s the first time in a process
  (importing nbconvert and papermill), 0.07 s after (load ~8, measured).
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import io
import json
import os
import re
import tempfile
import tokenize
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from pipelines.core.config import REPO_ROOT
from pipelines.core.exceptions import ConfigError
from pipelines.jobs.params import JobParams
from pipelines.jobs.registry import METRICS_PARAM, JobSpec

NOTEBOOKS_ENV = "TARMAC_JOBS_NOTEBOOKS"  # extra folders of notebook-native jobs, dir[:dir]
NOTEBOOKS_DIR = Path("notebooks")  # always searched, relative to the repository root
METADATA_KEY = "tarmac"  # nb.metadata.tarmac.job
PARAMETERS_TAG = "parameters"
_DEFAULTS = {f.name: f.default for f in JobSpec.__dataclass_fields__.values()}
_TYPES: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool}
_OPTIONAL = re.compile(r"^(?:Optional\[(\w+)\]|(\w+)\s*\|\s*None|None\s*\|\s*(\w+))$")
_TYPE_COMMENT = re.compile(r"^type:\s*(Optional\[\w+\]|\w+(?:\s*\|\s*None)?)\s*(.*)$")


class NotebookJobMeta(BaseModel):
    """``metadata.tarmac.job`` of a notebook: what makes it a job (module docstring)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="the job's name in the registry")
    description: str = ""
    schedule: str | None = Field(default=None, description="5 cron fields; None: not scheduled")
    timeout_s: float = Field(default=_DEFAULTS["timeout_s"], gt=0)
    retries: int = Field(default=_DEFAULTS["retries"], ge=0)
    retry_backoff_s: float = Field(default=_DEFAULTS["retry_backoff_s"], ge=0)
    writes: list[str] = Field(default_factory=list, description="what it writes (tables, ...)")
    date_param: str | None = None
    nice: int = Field(default=_DEFAULTS["nice"], ge=0, le=19)

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        from croniter import croniter

        if value is not None and (len(value.split()) != 5 or not croniter.is_valid(value)):
            raise ValueError(f"{value!r} is not 5 cron fields (minute hour day month weekday)")
        return value


# --- the parameters cell ------------------------------------------------------------------------
def _comments(source: str) -> dict[int, str]:
    """The comment of each line of ``source`` (1-based line -> text after ``#``)."""
    found: dict[int, str] = {}
    with contextlib.suppress(tokenize.TokenError, IndentationError):
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                found[tok.start[0]] = tok.string.lstrip("#").strip()
    return found


def _kind(text: str, where: str) -> tuple[type, bool]:
    """``"int"`` -> (int, False); ``"Optional[int]"`` / ``"int | None"`` -> (int, True)."""
    text = text.strip()
    if m := _OPTIONAL.match(text):
        name = next(g for g in m.groups() if g)
        optional = True
    else:
        name, optional = text, False
    if name not in _TYPES:
        raise ConfigError(f"{where}: type {text!r} is not one of str, int, float, bool "
                          "(or Optional[...] of one)")  # fmt: skip
    return _TYPES[name], optional


def _tagged(nb: Mapping[str, Any], where: str) -> str:
    """The source of the one cell tagged ``parameters``."""
    cells = [c for c in nb.get("cells", [])
             if PARAMETERS_TAG in c.get("metadata", {}).get("tags", [])]  # fmt: skip
    if len(cells) != 1:
        raise ConfigError(f"{where}: a notebook job needs exactly one cell tagged "
                          f"'{PARAMETERS_TAG}' (found {len(cells)})")  # fmt: skip
    return "".join(cells[0].get("source", ""))


def _assigned(stmt: ast.stmt, line: str) -> tuple[str, Any, str | None]:
    """(name, default, annotation) of ``name = value`` / ``name: type = value``."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        target, value, annotation = stmt.targets[0], stmt.value, None
    elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
        target, value, annotation = stmt.target, stmt.value, ast.unparse(stmt.annotation)
    else:
        target = value = annotation = None
    if not isinstance(target, ast.Name) or value is None:
        raise ConfigError(f"{line}: only `name = value` or `name: type = value` lines")
    try:
        return target.id, ast.literal_eval(value), annotation
    except ValueError:
        raise ConfigError(f"{line}: the value of '{target.id}' is not a literal") from None


def _typed(name: str, default: Any, annotation: str | None, line: str) -> tuple[type, bool]:
    """The parameter's type and whether it may be None; its default must be one of it."""
    if annotation is not None:
        kind, optional = _kind(annotation, line)
    elif default is None:
        kind, optional = str, True
    elif type(default) in _TYPES.values():
        kind, optional = type(default), False
    else:
        raise ConfigError(f"{line}: '{name}' = {default!r}: a parameter is a str, int, float, "
                          "bool or None")  # fmt: skip
    if default is None:
        ok = optional
    else:
        ok = isinstance(default, kind) or (kind is float and type(default) is int)
        ok = ok and (kind is bool or not isinstance(default, bool))
    if not ok:
        raise ConfigError(f"{line}: the default of '{name}' ({default!r}) is not a "
                          f"{kind.__name__}{' or None' if optional else ''}")  # fmt: skip
    return kind, optional


def parameters(nb: Mapping[str, Any], where: str) -> dict[str, tuple[type, bool, Any, str]]:
    """``{name: (type, optional, default, help)}`` of the cell tagged ``parameters``."""
    source = _tagged(nb, where)
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ConfigError(f"{where}: its parameters cell does not parse: {exc}") from None
    comments = _comments(source)
    found: dict[str, tuple[type, bool, Any, str]] = {}
    for stmt in tree.body:
        line = f"{where}, parameters cell line {stmt.lineno}"
        name, default, annotation = _assigned(stmt, line)
        comment = comments.get(stmt.lineno, "")
        if annotation is None and (m := _TYPE_COMMENT.match(comment)):
            annotation, comment = m[1], m[2]
        kind, optional = _typed(name, default, annotation, line)
        found[name] = (kind, optional, default, comment)
    return found


def _as_date(value: str | None, where: str) -> dt.date | None:
    try:
        return None if value is None else dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"{where}: the date parameter's default {value!r} is not "
                          "YYYY-MM-DD") from None  # fmt: skip


def params_model(name: str, declared: Mapping[str, tuple[type, bool, Any, str]],
                 date_param: str | None, where: str) -> type[JobParams]:  # fmt: skip
    """The strict parameters model of a notebook job (``env`` from :class:`JobParams`)."""
    fields: dict[str, Any] = {}
    for pname, (kind, optional, default, help_) in declared.items():
        if pname in ("env", METRICS_PARAM):
            continue  # env: JobParams' own (required; the runner sets it); the metrics: runner's
        annotation: Any = kind
        if pname == date_param:
            if kind is not str:
                raise ConfigError(f"{where}: date_param '{pname}' must be a str parameter")
            annotation, default = dt.date, _as_date(default, where)
        fields[pname] = (annotation | None if optional else annotation,
                         Field(default=default, description=help_))  # fmt: skip
    if date_param is not None and date_param not in fields:
        raise ConfigError(f"{where}: date_param '{date_param}' is not in its parameters cell")
    camel = "".join(part.title() for part in name.split("_"))
    try:
        return create_model(f"{camel}NotebookParams", __base__=JobParams, **fields)
    except (TypeError, ValueError, NameError) as exc:
        raise ConfigError(f"{where}: its parameters do not make a model: {exc}") from None


# --- discovery ----------------------------------------------------------------------------------
def _shown(path: Path) -> Path:
    """``path`` relative to the repository root when it is inside it (as JobSpec.notebook)."""
    with contextlib.suppress(ValueError):
        return path.resolve().relative_to(REPO_ROOT)
    return path.resolve()


def spec_of(path: Path) -> JobSpec | None:
    """The :class:`JobSpec` a notebook declares, or None when it declares no job."""
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"notebook {path} cannot be read as JSON: {exc}") from None
    declared = (nb.get("metadata") or {}).get(METADATA_KEY, {}) or {}
    if not isinstance(declared, dict) or "job" not in declared:
        return None
    where = f"notebook {_shown(path)}"
    try:
        meta = NotebookJobMeta.model_validate(declared["job"])
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'job'}: {e['msg']}" for e in exc.errors()
        )
        raise ConfigError(f"{where}: metadata {METADATA_KEY}.job is refused: {problems}") from None
    model = params_model(meta.name, parameters(nb, where), meta.date_param, where)
    return JobSpec(
        meta.name, _shown(path), model, timeout_s=meta.timeout_s, retries=meta.retries,
        retry_backoff_s=meta.retry_backoff_s, date_param=meta.date_param,
        description=meta.description, nice=meta.nice, schedule=meta.schedule,
        writes=tuple(meta.writes), native=True,
    )  # fmt: skip


def folders() -> list[Path]:
    """``notebooks/`` and the folders of ``$TARMAC_JOBS_NOTEBOOKS`` (absolute)."""
    found = [REPO_ROOT / NOTEBOOKS_DIR]
    for entry in filter(None, os.environ.get(NOTEBOOKS_ENV, "").split(os.pathsep)):
        folder = Path(entry.strip())
        folder = folder if folder.is_absolute() else REPO_ROOT / folder
        if not folder.is_dir():
            raise ConfigError(f"{NOTEBOOKS_ENV} names {entry!r}, which is not a folder")
        if folder.resolve() not in {f.resolve() for f in found}:
            found.append(folder)
    return found


_CACHE: dict[Path, tuple[tuple[int, int], JobSpec | None]] = {}


def discover() -> dict[str, JobSpec]:
    """Every notebook-native job of :func:`folders`, by name; two notebooks declaring one name
    are a :class:`ConfigError` naming both."""
    jobs: dict[str, JobSpec] = {}
    for folder in folders():
        for path in sorted(folder.glob("*.ipynb")):
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
            cached = _CACHE.get(path)
            if cached is None or cached[0] != key:
                cached = _CACHE[path] = (key, spec_of(path))
            spec = cached[1]
            if spec is None:
                continue
            if spec.name in jobs:
                raise ConfigError(f"notebooks {jobs[spec.name].notebook} and {spec.notebook} both "
                                  f"declare job '{spec.name}' ({METADATA_KEY}.job.name); rename "
                                  "one")  # fmt: skip
            jobs[spec.name] = spec
    return jobs


# --- promotion: a script for spark-submit, or this process --------------------------------------
_PRELUDE = """\
# Generated from {notebook} for job {job} (papermill's parameters, then nbconvert's
# ScriptExporter: pipelines.jobs.notebook_jobs). Do not edit: edit the notebook.
from IPython.display import display  # noqa: F401  (a kernel's builtin; prints outside one)
"""


def _refuse_magics(spec: JobSpec, cells: list[Any]) -> None:
    """A cell with IPython syntax (``%magic``, ``!shell``, ``x?``) cannot run as a script."""
    from IPython.core.inputtransformer2 import TransformerManager

    transform = TransformerManager().transform_cell
    found = []
    for index, cell in enumerate(cells):
        if cell.cell_type != "code":
            continue
        plain = transform(cell.source)
        if "get_ipython()" in plain and "get_ipython()" not in cell.source:
            lines = [ln for ln in cell.source.splitlines() if ln.lstrip()[:1] in ("%", "!")]
            found.append(f"cell {index}: {(lines or [cell.source])[0].strip()[:60]!r}")
    if found:
        raise ConfigError(f"job {spec.name}: {spec.notebook} uses IPython syntax, which a script "
                          f"run by spark-submit cannot: {'; '.join(found[:3])}; write plain "
                          "Python (subprocess for !, no %matplotlib: its default backend "
                          "draws inline)")  # fmt: skip


def export_script(spec: JobSpec, params: Mapping[str, Any], target: Path) -> Path:
    """Write ``spec``'s notebook as a Python script at ``target``, ``params`` (validated, JSON
    values, :data:`METRICS_PARAM` included) injected after its parameters cell exactly as
    papermill injects them for ``run``. Refuses IPython magics (a script has no kernel)."""
    from nbconvert.exporters import ScriptExporter
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = load_notebook_node(str(spec.notebook_path))  # as papermill reads it for `run`
    _refuse_magics(spec, nb.cells)
    nb = parameterize_notebook(nb, dict(params), kernel_name="python3", language="python")
    body, _ = ScriptExporter().from_notebook_node(nb)
    body = "\n".join(ln for ln in body.splitlines() if not ln.startswith("#!"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(_PRELUDE.format(notebook=spec.notebook, job=spec.name) + body + "\n")
    return target


def read_metrics(path: Path) -> dict[str, Any]:
    """What the notebook reported (``report(..., path=tarmac_metrics_path)``), or ``{}``."""
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def run_in_process(spec: JobSpec, params: JobParams) -> dict[str, Any]:
    """``tarmac job <notebook job>``: its script executed in this process (cwd
    the repository root, as papermill runs it), no kernel; returns what it reported."""
    with tempfile.TemporaryDirectory(prefix=f"tarmac-{spec.name}-") as tmp:
        metrics = Path(tmp) / "metrics.json"
        values = {**params.model_dump(mode="json"), METRICS_PARAM: str(metrics)}
        script = export_script(spec, values, Path(tmp) / f"{spec.name}.py")
        code = compile(script.read_text(), str(script), "exec")
        with contextlib.chdir(REPO_ROOT):
            exec(code, {"__name__": "__main__", "__file__": str(script)})  # noqa: S102
        return read_metrics(metrics)
