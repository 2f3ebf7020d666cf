"""A self-contained HTML page of figures and tables: one file that can be mailed or archived.

PNG images are embedded (base64 data URIs), each linked to its SVG beside the page. Every table
cell that shows a number carries the exact value in ``data-value``, so a script can read the
numbers back without parsing the rounded text.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1400px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; } h3 { font-size: 1em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; }
th { background: #f2f2f2; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0; } img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.85em; color: #555; } p.note { font-size: 0.9em; color: #555; }
"""


@dataclass
class Cell:
    """A table cell: ``text`` shown; ``value`` the exact number behind it (None for text)."""

    text: str
    value: float | int | None = None


def number(value, spec: str = ".2f") -> Cell:
    """A numeric cell shown with ``spec``; None or NaN shows as "-"."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return Cell("-")
    return Cell(format(value, spec), value)


@dataclass
class Table:
    caption: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Cell | str]]
    css_id: str | None = None


@dataclass
class Image:
    """A figure saved as ``png`` (embedded) with an optional ``svg`` beside the page (linked)."""

    png: Path
    caption: str
    svg: Path | None = None


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # Table, Image or str (a paragraph of plain text)


def _cell(cell) -> str:
    if not isinstance(cell, Cell):
        cell = Cell(str(cell))
    if cell.value is None:
        return f"<td>{html.escape(cell.text)}</td>"
    return f'<td class="num" data-value="{cell.value!r}">{html.escape(cell.text)}</td>'


def _table(table: Table) -> str:
    ident = f' id="{html.escape(table.css_id)}"' if table.css_id else ""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "\n".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in table.rows)
    return (f"<table{ident}>\n<caption>{html.escape(table.caption)}</caption>\n"
            f"<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>")


def _image(image: Image, page_dir: Path) -> str:
    data = base64.b64encode(Path(image.png).read_bytes()).decode("ascii")
    img = f'<img src="data:image/png;base64,{data}" alt="{html.escape(image.caption)}">'
    if image.svg is not None:
        href = html.escape(Path(image.svg).relative_to(page_dir).as_posix())
        img = f'<a href="{href}">{img}</a>'
        caption = f'{html.escape(image.caption)} (<a href="{href}">SVG</a>)'
    else:
        caption = html.escape(image.caption)
    return f"<figure>{img}<figcaption>{caption}</figcaption></figure>"


def render(title: str, sections: Sequence[Section], page_dir: Path, intro: str = "") -> str:
    """The page as a string; ``page_dir``: where it will be written (SVG links are relative to it)."""
    parts = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>{STYLE}</style>", "</head>", "<body>",
             f"<h1>{html.escape(title)}</h1>"]
    if intro:
        parts.append(f'<p class="note">{html.escape(intro)}</p>')
    for section in sections:
        parts.append(f"<section>\n<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, Table):
                parts.append(_table(block))
            elif isinstance(block, Image):
                parts.append(_image(block, page_dir))
            else:
                parts.append(f'<p class="note">{html.escape(str(block))}</p>')
        parts.append("</section>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def write(path: Path, title: str, sections: Sequence[Section], intro: str = "") -> Path:
    """Writes the page to ``path`` (UTF-8) and returns it."""
    path = Path(path)
    path.write_text(render(title, sections, path.parent, intro), encoding="utf-8")
    return path
