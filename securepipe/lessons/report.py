"""Plain-text tables for notebooks and benchmarks: :func:`securepipe.tables.format_table`, which
lives below every step so that production code (the scorecard, the CLI) never loads the lessons."""

from __future__ import annotations

from securepipe.tables import format_table

__all__ = ["format_table"]
