"""HTML building blocks of a slide: tables, bullet lists, figures, code, images, notices.

Every cell of ``notebooks/90_presentation.ipynb`` displays one :class:`IPython.display.HTML`
made of these blocks; ``templates/tarmac/static/tarmac.css`` styles them. Nothing here loads
anything: images are relative paths next to the HTML (``img/…``), code is highlighted by
Pygments with inline styles. Numbers are written the French way (``336 776``, ``17,4``) and a
figure read from the data carries its raw value in ``data-value`` (the tests compare it).
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import BashLexer, PythonLexer

NBSP = "\u202f"  # narrow no-break space: the French thousands separator


def esc(value: Any) -> str:
    """``value`` as escaped text (``—`` for None)."""
    return "—" if value is None else html.escape(str(value))


def num(value: float | int | None, digits: int = 0, unit: str = "") -> str:
    """A number the French way: ``1 001 615``, ``17,4``; ``—`` for None."""
    if value is None:
        return "—"
    text = f"{value:,.{digits}f}".replace(",", NBSP).replace(".", ",")
    return f"{text}{NBSP}{unit}" if unit else text


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], cls: str = "") -> str:
    """A table; cells are HTML already (use :func:`esc` / :func:`num` to build them)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return (
        f'<table class="tm-table {cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def bullets(items: Iterable[str], cls: str = "") -> str:
    """A bullet list; items are HTML."""
    return f'<ul class="tm-list {cls}">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>"


def figure(key: str, value: float | int | None, label: str, digits: int = 0, unit: str = "") -> str:
    """A big figure read from the data, with ``data-figure=key`` and its raw ``data-value``."""
    raw = "" if value is None else f"{value}"
    return (
        f'<div class="tm-figure"><span class="tm-value" data-figure="{esc(key)}" '
        f'data-value="{raw}">{num(value, digits, unit)}</span>'
        f'<span class="tm-label">{label}</span></div>'
    )


def figures(*items: str) -> str:
    """A row of :func:`figure` tiles."""
    return '<div class="tm-figures">' + "".join(items) + "</div>"


def code(source: str, caption: str = "", language: str = "python") -> str:
    """Highlighted code (inline styles) with a caption naming where it comes from."""
    lexer = BashLexer() if language == "bash" else PythonLexer()
    body = highlight(source, lexer, HtmlFormatter(noclasses=True, style="friendly", nowrap=True))
    cap = f'<div class="tm-caption">{caption}</div>' if caption else ""
    return f'<div class="tm-code"><pre>{body}</pre>{cap}</div>'


def image(src: str, alt: str, cls: str = "") -> str:
    """An image next to the HTML (``img/…``)."""
    return f'<img class="tm-img {cls}" src="{esc(src)}" alt="{esc(alt)}">'


def missing(what: str, command: str, prefix: str = "Pas encore mesuré") -> str:
    """The notice of a figure that is not there yet, naming the command that produces it."""
    return (
        f'<div class="tm-missing" data-missing="{esc(what)}">{esc(prefix)} : {esc(what)}. '
        f"Lancer <code>{esc(command)}</code> puis <code>make slides</code>.</div>"
    )


def note(text: str) -> str:
    """A small line under the content (source of the figures, date of a measure)."""
    return f'<p class="tm-source">{text}</p>'


def columns(*parts: str, widths: Sequence[int] | None = None) -> str:
    """Side-by-side blocks (``widths`` in fr units)."""
    widths = widths or [1] * len(parts)
    grid = " ".join(f"{w}fr" for w in widths)
    cells = "".join(f'<div class="tm-col">{p}</div>' for p in parts)
    return f'<div class="tm-columns" style="grid-template-columns: {grid}">{cells}</div>'


def lead(text: str) -> str:
    """One sentence that says what the slide shows."""
    return f'<p class="tm-lead">{text}</p>'
