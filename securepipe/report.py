"""Tables for notebooks, the CLI and benchmarks (no pandas needed).

:func:`format_table` returns a :class:`Table`: a plain aligned text table (a ``str``) for the
terminal, which Jupyter renders as an HTML table instead, with long cells cut to a summary
whose full text opens on demand (``<details>``), so no table wraps mid-word or floods a page.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: Cells longer than this are cut in the HTML rendering (the full text stays one click away).
HTML_CELL_CHARS = 120


class Table(str):
    """A text table that Jupyter shows as HTML (``_repr_html_``)."""

    columns: tuple[str, ...]
    cells: tuple[tuple[str, ...], ...]

    def __new__(cls, text: str, columns: Sequence[str], cells: Sequence[Sequence[str]]) -> Table:
        table = super().__new__(cls, text)
        table.columns = tuple(columns)
        table.cells = tuple(tuple(row) for row in cells)
        return table

    def _repr_html_(self) -> str:
        head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in self.columns)
        rows = "".join(
            "<tr>" + "".join(f"<td style='text-align:left'>{_html_cell(c)}</td>" for c in row)
            + "</tr>" for row in self.cells
        )
        return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _html_cell(text: str) -> str:
    if len(text) <= HTML_CELL_CHARS:
        return html.escape(text)
    short = html.escape(text[: HTML_CELL_CHARS - 1].rstrip()) + "\u2026"
    return f"<details><summary>{short}</summary>{html.escape(text)}</details>"


def format_table(
    rows: Iterable[Mapping[str, Any]], columns: Sequence[str] | None = None
) -> Table:
    """Render rows (dicts) as an aligned table; columns default to the first row's keys."""
    rows = list(rows)
    if columns is None:
        columns = list(rows[0]) if rows else []
    cells = [[_cell(row.get(col, "")) for col in columns] for row in rows]
    widths = [max([len(col), *(len(r[i]) for r in cells)]) for i, col in enumerate(columns)]
    line = "  ".join(col.ljust(w) for col, w in zip(columns, widths, strict=True)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    body = [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells
    ]
    return Table("\n".join([line, rule, *body]), columns, cells)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)
