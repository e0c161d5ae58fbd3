"""How the notebooks show tables and figures: every row and column (never pandas' ``…``
truncation), counts as integers, and figures with alt text."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from ..measures.metrics import COCO_UNDEFINED  # noqa: F401  (the pages import it from here)


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


SPREAD_SUFFIX = "_sd"


def _decimals(s: pd.Series, limit: int) -> int:
    """How many decimals the finite values of ``s`` need (at most ``limit``): 0 for integers,
    else the longest of their shortest representations after rounding to ``limit``."""
    finite = pd.to_numeric(s, errors="coerce").dropna()
    if finite.empty or pd.api.types.is_integer_dtype(s) or (finite == finite.round()).all():
        return 0
    need = 0
    for v in finite.round(limit):
        text = f"{v:.{limit}f}".rstrip("0")
        need = max(need, len(text.split(".")[1]) if "." in text else 0)
    return need


def spread_cell(mean: float, sd: float, digits: int, sd_digits: int) -> str:
    """One "mean ± sd" cell (the mean alone where ``sd`` is NaN: one seed)."""
    return f"{mean:.{digits}f}" + ("" if pd.isna(sd) else f" ± {sd:.{sd_digits}f}")


def merge_spread(df: pd.DataFrame, digits: int | None = None) -> pd.DataFrame:
    """Each numeric column ``m`` with a ``m_sd`` beside it as one text column "mean ± sd" (the
    mean alone where the spread is missing: one seed), so a table over seeds is half as wide.
    The mean keeps the decimals :func:`tidy` left it (at most ``digits``, default pandas'
    ``display.precision``), the spread as many or its own if it needs more (a whole mean count
    with a spread of 0.5); NaN means read "NaN". Other columns
    stay as they are, in their order.

    Args:
        df: any table; ``m_sd`` columns without a numeric ``m`` stay unmerged.
    """
    digits = pd.get_option("display.precision") if digits is None else digits
    out = df.copy()
    for col in [c for c in df.columns if isinstance(c, str) and not c.endswith(SPREAD_SUFFIX)]:
        sd_col = col + SPREAD_SUFFIX
        if sd_col not in df.columns or not pd.api.types.is_numeric_dtype(df[col]):
            continue
        k = _decimals(df[col], digits)
        mean, sd = df[col].astype("Float64"), pd.to_numeric(df[sd_col], errors="coerce")
        k_sd = max(k, _decimals(sd, digits))  # a whole mean count keeps its spread's decimal
        out[col] = ["NaN" if pd.isna(m) else spread_cell(m, e, k, k_sd) for m, e in zip(mean, sd)]
        out = out.drop(columns=sd_col)
    return out


def drop_empty(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """``df`` without its columns that hold no value at all (NaN / empty throughout, e.g. an
    object size the data has none of), and the names of those left out (for a one-line note).
    A table with a single row keeps its columns (there an empty cell is the answer)."""
    if len(df) < 2:
        return df, []
    empty = [c for c in df.columns if df[c].isna().all()]
    return df.drop(columns=empty), [str(c) for c in empty]


def frame_html(df: pd.DataFrame) -> str:
    """A DataFrame as a report shows it: pandas' notebook HTML under the display options, without
    a leftover 0, 1, 2, … index column (:func:`leftover_index`; a meaningful index — named, or
    labels such as the pairs of a comparison — stays), each ``m`` / ``m_sd`` pair in one
    "mean ± sd" cell (:func:`merge_spread`) and the columns that are empty throughout left out
    with a one-line note under the table (:func:`drop_empty`)."""
    shown, empty = drop_empty(df)
    shown = merge_spread(shown)
    table = shown.to_html(notebook=True, index=not leftover_index(shown), max_rows=pd.get_option("display.max_rows"),
                          max_cols=pd.get_option("display.max_columns"))
    if empty:
        import html

        table += (f'<p class="empty-note"><small>Left out, empty throughout (nothing of the kind in this '
                  f'data): {html.escape(", ".join(empty))}.</small></p>')
    return table


KEY_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75")


def key_view(df: pd.DataFrame, keep: Sequence[str], metrics: Sequence[str] = KEY_METRICS) -> pd.DataFrame:
    """The columns of a wide comparison a reader needs first: ``keep`` (e.g. the row's name and
    ``seeds``), then for each of ``metrics`` its mean, spread, the paper's value and the
    difference (``m``, ``m_sd``, ``m_paper``, ``m_delta``: those present). The whole table goes
    below it, collapsed (:func:`show_details`)."""
    cols = [c for c in keep if c in df] + [c for m in metrics for c in (m, f"{m}_sd", f"{m}_paper", f"{m}_delta")
                                           if c in df]
    return df[cols]


def details_html(body: str, summary: str) -> str:
    """``body`` (HTML) in a collapsed ``<details>`` section titled ``summary``: detail a reader
    opens on demand (per-image counts, per-level grids, a comparison with every metric) instead
    of scrolling past it. Its content scrolls sideways inside the page's width when it is wider."""
    import html

    return (f'<details><summary>{html.escape(summary)}</summary>'
            f'<div class="detail" style="overflow-x: auto; max-width: 100%">{body}</div></details>')


def show_details(content, summary: str) -> None:
    """Show a DataFrame (as :func:`frame_html`) or HTML text collapsed under ``summary``
    (:func:`details_html`); a figure goes through :func:`show_figure` with ``collapsed``."""
    from IPython.display import HTML, display

    if isinstance(content, pd.DataFrame):
        body = frame_html(content)
    elif isinstance(content, str):
        body = content
    else:
        raise TypeError(f"show_details takes a DataFrame or HTML text, not {type(content).__name__}")
    display(HTML(details_html(body, summary)))


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


def data_outside_axes(fig) -> list[str]:
    """Where a figure's data leaves its axes: for each axes, the lines, scatter points and bars
    whose finite data lie outside its x or y limits (a y-limit set by one call and not widened by
    the next hides data). Empty when every point is on its axes.

    Returns:
        one "axes title: what" string per axes with data outside its limits.
    """
    import numpy as np

    problems = []
    for ax in fig.axes:
        if not ax.has_data() or ax.get_label() == "<colorbar>":
            continue
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        pts = [line.get_xydata() for line in ax.get_lines() if len(line.get_xydata())
               and line.get_transform() == ax.transData]
        pts += [c.get_offsets() for c in ax.collections if hasattr(c, "get_offsets") and len(c.get_offsets())
                and c.get_offset_transform() == ax.transData and type(c).__name__ == "PathCollection"]
        pts += [np.array([[p.get_x() + p.get_width() / 2, p.get_y() + p.get_height()]]) for p in ax.patches
                if type(p).__name__ == "Rectangle" and p.get_transform() == ax.transData]
        outside = 0
        for xy in pts:
            xy = np.asarray(xy, dtype=float).reshape(-1, 2)
            xy = xy[np.isfinite(xy).all(axis=1)]
            tol_x, tol_y = 1e-9 * max(1.0, abs(x1 - x0)), 1e-9 * max(1.0, abs(y1 - y0))
            outside += int(((xy[:, 0] < x0 - tol_x) | (xy[:, 0] > x1 + tol_x)
                            | (xy[:, 1] < y0 - tol_y) | (xy[:, 1] > y1 + tol_y)).sum())
        if outside:
            problems.append(f"{ax.get_title() or 'axes'}: {outside} data point(s) outside the axes")
    return problems


def figure_html(fig, alt: str, width: int | None = None) -> str:
    """``fig`` as an inline PNG ``<img>`` with ``alt`` text, then closed. Data drawn outside
    its axes (:func:`data_outside_axes`) is named in the image's ``data-outside`` attribute,
    which the report tests look for."""
    import base64
    import html
    import io

    import matplotlib.pyplot as plt

    outside = data_outside_axes(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode()
    size = f' width="{width}"' if width else ""
    flag = f' data-outside="{html.escape("; ".join(outside), quote=True)}"' if outside else ""
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt, quote=True)}"{size}{flag}>'


def show_figure(fig, alt: str, width: int | None = None, collapsed: str | None = None) -> None:
    """Show ``fig`` as an inline PNG ``<img>`` with ``alt`` text (what the figure shows, for
    screen readers and for a reader of the raw HTML; :func:`figure_html`), then close it;
    ``collapsed``: the title of a closed ``<details>`` section to show it in."""
    from IPython.display import HTML, display

    img = figure_html(fig, alt, width)
    display(HTML(details_html(img, collapsed) if collapsed else img))




def with_spread(df: pd.DataFrame, metrics: list[str], digits: int = 3,
                undefined: float | None = None) -> pd.DataFrame:
    """A compact mean ± sd table: each metric ``m`` with an ``m_sd`` column becomes one text
    column "mean ± sd" (the mean alone when the spread is NaN: one seed); a mean equal to
    ``undefined`` (e.g. :data:`COCO_UNDEFINED`) reads "n/a"; other columns stay."""
    out = df.reset_index(drop=True).copy()
    for m in metrics:
        if m not in out:
            continue
        sd = out.pop(f"{m}_sd") if f"{m}_sd" in out else pd.Series(float("nan"), index=out.index)
        out[m] = ["n/a" if undefined is not None and v == undefined else spread_cell(v, e, digits, digits)
                  for v, e in zip(out[m], sd)]
    return out
