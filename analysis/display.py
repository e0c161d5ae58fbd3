"""How the notebooks show tables: every row and column, never pandas' ``…`` truncation."""
from __future__ import annotations

import pandas as pd


def show_whole_tables(max_rows: int = 500) -> None:
    """pandas display options for reports: all columns, up to ``max_rows`` rows (a longer table
    belongs in a file, not a page), no wrapping of wide frames."""
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_rows", max_rows)
    pd.set_option("display.min_rows", max_rows)
    pd.set_option("display.width", None)
    pd.set_option("display.max_colwidth", None)
