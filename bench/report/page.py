"""The page writers: a report's sections (headings and items) as self-contained HTML and as Markdown.

Items: :class:`Table`, a paragraph (str), ``("img", name, alt)``, ``("list", id, sentences)``, ``("lead", id,
text)`` (the answer) and ``("details", summary, [items])`` (collapsed). Every string is escaped.
"""
from __future__ import annotations

import base64
import html
import math
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["Table", "to_html", "to_markdown", "frame_table", "read_csv", "num", "pct", "md_text"]


# ------------------------------------------------------------------------------------------- formatting

def num(v, fmt: str = ".3g", missing: str = "n/a") -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return missing
    if math.isinf(f):
        return "never" if f > 0 else "-inf"
    return format(f, fmt)


def pct(v, digits: int = 2) -> str:
    return num(100 * float(v), f".{digits}f") if v is not None and np.isfinite(float(v)) else "n/a"


class Table:
    """A table of strings, rendered to HTML (escaped) and to Markdown (escaped, pipes quoted)."""

    def __init__(self, id: str, title: str, columns: list[str], rows: list[list[str]], note: str = ""):
        self.id, self.title, self.columns, self.rows, self.note = id, title, columns, rows, note

    def html(self) -> str:
        e = html.escape
        head = "".join(f"<th>{e(c)}</th>" for c in self.columns)
        body = "\n".join("<tr>" + "".join(f"<td>{e(str(x))}</td>" for x in r) + "</tr>" for r in self.rows)
        note = f'<p class="note">{e(self.note)}</p>' if self.note else ""
        return (f'<h3>{e(self.title)}</h3>\n<table id="{e(self.id)}">\n<thead><tr>{head}</tr></thead>\n'
                f"<tbody>\n{body}\n</tbody>\n</table>\n{note}")

    def md(self) -> str:
        def cell(x):
            return md_text(str(x)).replace("\n", " ")
        lines = [f"### {md_text(self.title)}", "", "| " + " | ".join(cell(c) for c in self.columns) + " |",
                 "|" + "|".join("---" for _ in self.columns) + "|"]
        lines += ["| " + " | ".join(cell(x) for x in r) + " |" for r in self.rows]
        if self.note:
            lines += ["", md_text(self.note)]
        return "\n".join(lines) + "\n"


def md_text(text: str) -> str:
    """Markdown-safe text: HTML special characters escaped (Markdown renders inline HTML), pipes quoted."""
    return html.escape(str(text), quote=False).replace("|", "\\|")


def frame_table(df: pd.DataFrame, id: str, title: str, note: str = "", fmt: dict | None = None) -> Table:
    fmt = fmt or {}
    rows = []
    for r in df.itertuples(index=False):
        cells = []
        for c, v in zip(df.columns, r):
            if c in fmt:
                cells.append(fmt[c](v))
            elif isinstance(v, (float, np.floating)):
                cells.append(num(v, ".4g"))
            else:
                cells.append(str(v))
        rows.append(cells)
    return Table(id, title, [str(c) for c in df.columns], rows, note)


def read_csv(path: Path) -> pd.DataFrame | None:
    try:
        return pd.read_csv(path) if path.is_file() else None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError):
        return None


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0} tbody tr:nth-child(even){background:#fafafa}
img{max-width:100%;height:auto;display:block;margin:.5em 0 1.5em}
.note{color:#555;font-size:13px;max-width:60em} h1{font-size:1.6em} h2{border-bottom:1px solid #ddd}
#headline li,#schedulefree li{margin-bottom:.4em}
.lead{font-size:1.15em;font-weight:600;max-width:60em}
details{margin:.5em 0 1em} summary{cursor:pointer;font-weight:600;margin:.3em 0}
"""


def to_html(run_id: str, sections, plots: dict[str, bytes]) -> str:
    e = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
             'style-src \'unsafe-inline\'">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>lrbench report: {e(run_id)}</title><style>{_CSS}</style></head><body>",
             f"<h1>lrbench report: {e(run_id)}</h1>"]
    def item(it):
        if isinstance(it, Table):
            parts.append(it.html())
        elif isinstance(it, tuple) and it[0] == "details":  # collapsible: the summary line, then the tables
            parts.append(f"<details>\n<summary>{e(it[1])}</summary>")
            for sub in it[2]:
                item(sub)
            parts.append("</details>")
        elif isinstance(it, tuple) and it[0] == "img":
            data = base64.b64encode(plots[it[1]]).decode("ascii")
            parts.append(f'<img alt="{e(it[2])}" src="data:image/png;base64,{data}">')
        elif isinstance(it, tuple) and it[0] == "list":
            parts.append(f'<ul id="{e(it[1])}">' + "".join(f"<li>{e(s)}</li>" for s in it[2]) + "</ul>")
        elif isinstance(it, tuple) and it[0] == "lead":  # the answer: first line under the title
            parts.append(f'<p id="{e(it[1])}" class="lead">{e(it[2])}</p>')
        else:
            parts.append(f"<p>{e(str(it))}</p>")

    for heading, items in sections:
        parts.append(f"<h2>{e(heading)}</h2>")
        for it in items:
            item(it)
    parts.append("</body></html>\n")
    return "\n".join(parts)


def to_markdown(run_id: str, sections) -> str:
    out = [f"# lrbench report: {md_text(run_id)}", ""]

    def item(it):
        nonlocal out
        if isinstance(it, Table):
            out.append(it.md())
        elif isinstance(it, tuple) and it[0] == "details":  # GitHub renders the tables inside, collapsed
            out += [f"<details><summary>{md_text(it[1])}</summary>", ""]
            for sub in it[2]:
                item(sub)
            out += ["</details>", ""]
        elif isinstance(it, tuple) and it[0] == "img":
            out += [f"![{md_text(it[2])}](plots/{it[1]})", ""]
        elif isinstance(it, tuple) and it[0] == "list":
            out += [f"- {md_text(s)}" for s in it[2]] + [""]
        elif isinstance(it, tuple) and it[0] == "lead":
            out += [f"**{md_text(it[2])}**", ""]
        else:
            out += [md_text(str(it)), ""]

    for heading, items in sections:
        out += [f"## {md_text(heading)}", ""]
        for it in items:
            item(it)
    return "\n".join(out)


