"""How the notebooks show tables and figures: every row and column (never pandas' ``…``
truncation), counts as integers, and figures with alt text."""
from __future__ import annotations

from typing import Optional, Sequence

import pandas as pd


def show_whole_tables(max_rows: int = 500, digits: int = 3) -> None:
    """pandas display options for reports: all columns, up to ``max_rows`` rows (a longer table
    belongs in a file, not a page), no wrapping of wide frames, and floats a table did not pass
    through :func:`tidy` shown with ``digits`` decimals at most."""
    pd.set_option("display.max_columns", None)
    pd.set_option("display.max_rows", max_rows)
    pd.set_option("display.min_rows", max_rows)
    pd.set_option("display.width", None)
    pd.set_option("display.max_colwidth", None)
    pd.set_option("display.precision", digits)
    try:
        from IPython import get_ipython
    except ImportError:  # plain Python: nothing renders HTML
        return
    shell = get_ipython()
    if shell is not None:
        shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, frame_html)


def leftover_index(df: pd.DataFrame) -> bool:
    """Whether ``df``'s row index says nothing: an unnamed 0, 1, 2, … (what :func:`tidy` and
    ``reset_index`` leave), which a report does not show."""
    return (df.index.name is None and isinstance(df.index, pd.RangeIndex) and df.index.start == 0
            and df.index.step == 1)


def frame_html(df: pd.DataFrame) -> str:
    """A DataFrame as a report shows it: pandas' notebook HTML under the display options, without
    a leftover 0, 1, 2, … index column (:func:`leftover_index`); a meaningful index (named, or
    labels such as the pairs of a comparison) stays."""
    return df.to_html(notebook=True, index=not leftover_index(df), max_rows=pd.get_option("display.max_rows"),
                      max_cols=pd.get_option("display.max_columns"))


# A mean over seeds of a count (boxes, anchors, detections) keeps one decimal; a count of one
# seed (or a mean that is whole) is an integer. Everything else (AP, shares, correlations,
# calibration errors) is rounded to ``digits`` (3: the paper's precision).
COUNT_DIGITS = 1
# AP points (AP × 100, e.g. TIDE's dAP): one decimal is the same precision as AP to 3 decimals.
POINTS_DIGITS = 1


def flat(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with one header row: MultiIndex columns joined by ", ", no column-axis name (the
    stray first header a pivot leaves; numeric column labels keep it as a prefix, e.g.
    ``AP at IoU 0.5``), named index levels as columns and an unnamed index (a leftover sort or
    group order) dropped."""
    out = df.copy()
    if isinstance(out.columns, pd.MultiIndex):
        out.columns = [", ".join(str(x) for x in c if str(x) != "") for c in out.columns]
    elif out.columns.name is not None and pd.api.types.is_numeric_dtype(out.columns):
        out.columns = [f"{out.columns.name} {c:g}" for c in out.columns]  # a bare "0.5" says nothing
    out = out.rename_axis(columns=None)
    named = any(n is not None for n in out.index.names)
    return out.reset_index(drop=not named)


def _rounded(s: pd.Series, digits: int) -> pd.Series:
    """Whole numbers as ``Int64``, else rounded to ``digits`` (no ``-0.000``)."""
    finite = s.dropna()
    if len(finite) and (finite == finite.round()).all() and finite.abs().max() < 2**53:
        return s.round().astype("Int64")
    return s.round(digits) + 0.0  # + 0.0 turns -0.0 into 0.0


def tidy(df: pd.DataFrame, digits: int = 3, counts: Sequence[str] = ()) -> pd.DataFrame:
    """A table for a report: one header row and no leftover index (:func:`flat`); float
    columns whose values are all whole numbers as integers (no ``1080.000``); the columns named
    in ``counts`` (means over seeds of a count) and their ``*_sd`` to :data:`COUNT_DIGITS`
    decimals; other floats to ``digits``; ``*_sd`` columns that are NaN throughout (one seed)
    left out."""
    out = flat(df)
    count_cols = {str(c) for c in counts} | {f"{c}_sd" for c in counts}
    for col in list(out.columns):
        s = out[col]
        if str(col).endswith("_sd") and s.isna().all():
            out = out.drop(columns=col)
        elif pd.api.types.is_float_dtype(s):
            out[col] = _rounded(s, COUNT_DIGITS if str(col) in count_cols else digits)
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


# COCO's value of a metric it cannot compute (APl with no large object in the val set).
COCO_UNDEFINED = -1.0


def with_spread(df: pd.DataFrame, metrics: list[str], digits: int = 3,
                undefined: Optional[float] = None) -> pd.DataFrame:
    """A compact mean ± sd table: each metric ``m`` with an ``m_sd`` column becomes one text
    column "mean ± sd" (the mean alone when the spread is NaN: one seed); a mean equal to
    ``undefined`` (e.g. :data:`COCO_UNDEFINED`) reads "n/a"; other columns stay."""
    out = df.reset_index(drop=True).copy()
    for m in metrics:
        if m not in out:
            continue
        sd = out.pop(f"{m}_sd") if f"{m}_sd" in out else pd.Series(float("nan"), index=out.index)
        out[m] = ["n/a" if undefined is not None and v == undefined else
                  f"{v:.{digits}f}" + ("" if pd.isna(e) else f" ± {e:.{digits}f}") for v, e in zip(out[m], sd)]
    return out
