"""How the notebooks show tables and figures: every row and column (never pandas' ``…``
truncation), counts as integers, and figures with alt text."""
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


def tidy(df: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """A table for a report: default index (no leftover sort index), float columns whose values
    are all whole numbers as integers (counts: no ``1080.000``), other floats rounded to
    ``digits``, and ``*_sd`` columns that are NaN throughout (one seed) left out."""
    out = df.reset_index(drop=True).copy()
    for col in list(out.columns):
        s = out[col]
        if str(col).endswith("_sd") and s.isna().all():
            out = out.drop(columns=col)
        elif pd.api.types.is_float_dtype(s):
            finite = s.dropna()
            if len(finite) and (finite == finite.round()).all() and finite.abs().max() < 2**53:
                out[col] = s.round().astype("Int64")
            else:
                out[col] = s.round(digits)
    return out


def show_figure(fig, alt: str, width: int | None = None) -> None:
    """Show ``fig`` as an inline PNG ``<img>`` with ``alt`` text (what the figure shows, for
    screen readers and for a reader of the raw HTML), then close it."""
    import base64
    import html
    import io

    import matplotlib.pyplot as plt
    from IPython.display import HTML, display

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    size = f' width="{width}"' if width else ""
    display(HTML(f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}"{size}>'))


def with_spread(df: pd.DataFrame, metrics: list[str], digits: int = 3) -> pd.DataFrame:
    """A compact mean ± sd table: each metric ``m`` with an ``m_sd`` column becomes one text
    column "mean ± sd" (the mean alone when the spread is NaN: one seed); other columns stay."""
    out = df.reset_index(drop=True).copy()
    for m in metrics:
        if m not in out:
            continue
        sd = out.pop(f"{m}_sd") if f"{m}_sd" in out else pd.Series(float("nan"), index=out.index)
        out[m] = [f"{v:.{digits}f}" + ("" if pd.isna(e) else f" ± {e:.{digits}f}") for v, e in zip(out[m], sd)]
    return out
