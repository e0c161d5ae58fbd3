"""Drawing only: each function takes computed data and an ``ax`` and returns the figure.

Nothing here computes a metric (see :mod:`analysis.measures.metrics`); the notebooks pair the two.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd


def scatter_score_iou(df: pd.DataFrame, ax: Any, score_col: str = "cls", iou_col: str = "iou_same",
                      title: str = "", max_points: int = 20000, score_label: str = "",
                      marker_size: float = 9.0, marker_alpha: float = 0.5) -> Any:
    """Figure 1 panel: score against IoU, one dot per box (a fixed sample above ``max_points``),
    the number of boxes in the title, the 0.5 lines dashed. Boxes with IoU exactly 0 (no
    same-label ground truth overlaps them: often hundreds) would hide in one stripe on the
    y-axis: they are drawn grey in a strip left of 0, spread by a fixed jitter, and counted in
    the strip's label."""
    data = df.sample(max_points, random_state=0) if len(df) > max_points else df
    zero = data[iou_col].to_numpy() == 0
    ax.scatter(data[iou_col][~zero], data[score_col][~zero], s=marker_size, alpha=marker_alpha, linewidths=0)
    n_zero = int((df[iou_col] == 0).sum())
    if zero.any():
        jitter = np.random.default_rng(0).uniform(-ZERO_STRIP, -ZERO_STRIP / 6, int(zero.sum()))
        ax.scatter(jitter, data[score_col][zero], s=marker_size / 2, alpha=marker_alpha, color="0.55", linewidths=0)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")
    ax.set(xlim=(-ZERO_STRIP if n_zero else 0, 1), ylim=(0, 1), xlabel="IoU with a same-label ground truth",
           ylabel=score_label or score_col, title=f"{title} (n={len(df)})" if title else f"n={len(df)}")
    if n_zero:
        ax.text(-ZERO_STRIP / 2, 1.0, f"IoU 0:\n{n_zero}", ha="center", va="bottom", fontsize=7, color="0.35",
                transform=ax.get_xaxis_transform())
    return ax.figure


# Width (in IoU units) of the strip left of 0 where :func:`scatter_score_iou` spreads IoU-0 boxes.
ZERO_STRIP = 0.08


def density_score_iou(df: pd.DataFrame, ax: Any, score_col: str = "cls", iou_col: str = "iou_same",
                      title: str = "", gridsize: int = 40) -> Any:
    """All images at once: hexbin density (log counts) of score against IoU."""
    ax.set(xlabel="IoU with a same-label ground truth", ylabel=score_col, title=title, xlim=(0, 1), ylim=(0, 1))
    if df.empty:  # an untrained model may have no box above the score threshold
        ax.text(0.5, 0.5, "no boxes", ha="center", va="center", transform=ax.transAxes)
        return ax.figure
    ax.set_title(f"{title} (n={len(df)})" if title else f"n={len(df)}")
    hb = ax.hexbin(df[iou_col], df[score_col], gridsize=gridsize, extent=(0, 1, 0, 1), bins="log",
                   mincnt=1, cmap="viridis")
    ax.figure.colorbar(hb, ax=ax, label="boxes (log)")
    return ax.figure


def _band(ax: Any, x: Any, mean: Any, sd: Any, line: Any) -> None:
    """Shade mean ± sd in the colour of ``line`` (nothing for a single seed: sd is NaN)."""
    if sd is not None and not np.all(np.isnan(np.asarray(sd, dtype=float))):
        ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.2, linewidth=0)


def proportion_curves(props: pd.DataFrame, ax: Any, label: str = "") -> Any:
    """Figure 2: share of boxes with cls > t and IoU > t (from :func:`analysis.measures.metrics.proportions`,
    or its :func:`analysis.measures.seeds.mean_sd` with ``*_sd`` columns, drawn as a band)."""
    drawn_before = bool(ax.lines)  # a second call on the same axis (e.g. before and after NMS)
    prior_top = float(ax.get_ylim()[1]) if drawn_before else 0.0
    for col, marker, name in (("cls_share", "o", "cls>t"), ("iou_share", "s", "IoU>t")):
        (line,) = ax.plot(props["thr"], props[col], marker=marker, label=f"{name} {label}".strip())
        _band(ax, props["thr"], props[col], props.get(f"{col}_sd"), line)
    top = float(np.nanmax([(props[c] + props.get(f"{c}_sd", 0).fillna(0) if f"{c}_sd" in props else props[c]).max()
                           for c in ("cls_share", "iou_share")] + [0.0]))
    # Fitted to the data (the shares are often far below 1), never cut off: a later call on the
    # same axis only ever raises the limit an earlier call set.
    ax.set(xlabel="threshold t", ylabel="share of the stage's boxes (cls > 0.05)",
           ylim=(0, max(0.01, top * 1.15, prior_top)))
    ax.legend()
    return ax.figure


def alpha_curve(table: pd.DataFrame, ax: Any, label: str = "", metric: str = "AP") -> Any:
    """Table 5 as a curve: ``metric`` against α (from :func:`analysis.studies.tables.alpha_sweep`);
    a ``{metric}_sd`` column (over seeds) is drawn as a band."""
    (line,) = ax.plot(table["alpha"], table[metric], marker="o", label=label or None)
    _band(ax, table["alpha"], table[metric], table.get(f"{metric}_sd"), line)
    ax.set(xlabel="α (weight of obj in obj^α·cls^(1−α))", ylabel=metric)
    if label:
        ax.legend()
    return ax.figure


def figure1_grid(before: pd.DataFrame, after: pd.DataFrame, image_ids: list,
                 scores: Sequence[tuple[str, str]] = (("cls", "cls"),), iou_col: str = "iou_same",
                 size: float = 3.2) -> Any:
    """The paper's Figure 1 layout: one column per image; one row per (stage, score): before NMS
    then after NMS, each with every ``(column, axis label)`` of ``scores`` (e.g. ``cls`` and
    the fused score NMS ranks by, :func:`analysis.measures.metrics.figure1_scores`)."""
    import matplotlib.pyplot as plt

    rows = [(stage, df, col, label) for stage, df in (("before NMS", before), ("after NMS", after))
            for col, label in scores]
    fig, axes = plt.subplots(len(rows), len(image_ids), figsize=(size * len(image_ids), size * len(rows)),
                             squeeze=False)
    for i, (stage, df, col, label) in enumerate(rows):
        for j, image_id in enumerate(image_ids):
            scatter_score_iou(df[df["image_id"] == image_id], axes[i, j], col, iou_col,
                              title=f"image {image_id}, {stage}", score_label=label)
    fig.tight_layout()
    return fig


def seed_points(per_seed: pd.DataFrame, ax: Any, metric: str = "AP", by: str = "model") -> Any:
    """One column per ``by`` group: each seed's ``metric`` as a dot, the mean ± sd as a bar
    (rows with ``seed``, ``by`` and ``metric``; e.g. :func:`analysis.measures.seeds.summary_metrics`)."""
    groups = list(dict.fromkeys(per_seed[by]))
    for i, g in enumerate(groups):
        vals = per_seed.loc[per_seed[by] == g, metric].to_numpy(dtype=float)
        ax.scatter(np.full(len(vals), i), vals, color="0.4", s=18, zorder=3)
        sd = vals.std(ddof=1) if len(vals) > 1 else 0.0
        ax.errorbar(i + 0.15, vals.mean(), yerr=sd, fmt="o", color="C0", capsize=4)
    ax.set_xticks(range(len(groups)), groups)
    n = per_seed["seed"].nunique()
    ax.set(ylabel=metric, title=f"{metric} per seed (dots) and mean ± sd ({n} seed{'s' * (n > 1)})")
    return ax.figure


def reliability_diagram(table: pd.DataFrame, ax: Any, title: str = "", target_label: str = "precision",
                        error: float | None = None, error_name: str = "ECE", legend: bool = True) -> Any:
    """Reliability diagram of one score: per bin the mean target (precision, or precision × IoU)
    as bars over the bin, the share of rows in the bin as hatched bars, the diagonal, and the
    bin's mean score as a dot over the bin centre (its gap to the bar is the bin's error; from
    :func:`analysis.measures.calibration.reliability`; a
    ``mean_target_sd`` column, over seeds, is drawn as error bars). ``error`` is printed;
    ``legend``: False for all but one panel of a grid (the same legend in each says nothing new)."""
    width = table["hi"] - table["lo"]
    ax.bar(table["lo"], table["mean_target"].fillna(0.0), width=width, align="edge", color="C0",
           edgecolor="k", linewidth=0.5, label=target_label,
           yerr=table["mean_target_sd"].fillna(0.0) if "mean_target_sd" in table else None, ecolor="0.3")
    ax.bar(table["lo"], table["share"], width=width, align="edge", color="mistyrose", alpha=0.6,
           edgecolor="r", hatch="/", linewidth=0.5, label="share of boxes")
    ax.plot((table["lo"] + table["hi"]) / 2, table["mean_score"], "o", color="C1", ms=3, label="bin mean score")
    ax.plot([0, 1], [0, 1], "--", color="grey", lw=0.8)
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel=target_label, title=title)
    if error is not None and np.isfinite(error):
        ax.text(0.04, 0.9, f"{error_name} = {error:.3f}", transform=ax.transAxes)
    if legend:
        ax.legend(loc="upper left", fontsize=7, bbox_to_anchor=(0.0, 0.86))
    return ax.figure


def curve_by(table: pd.DataFrame, ax: Any, x: str, y: str, by: str, title: str = "") -> Any:
    """One line per ``by`` group of ``y`` against ``x`` (a ``{y}_sd`` column is drawn as a
    band), e.g. AP against the IoU threshold per detector."""
    for name, g in table.groupby(by, sort=False):
        (line,) = ax.plot(g[x], g[y], marker="o", ms=3, label=str(name))
        _band(ax, g[x].to_numpy(), g[y].to_numpy(), g[f"{y}_sd"].to_numpy() if f"{y}_sd" in g else None, line)
    ax.set(xlabel=x, ylabel=y, title=title)
    ax.legend(fontsize=8)
    return ax.figure


def error_bars(table: pd.DataFrame, ax: Any, value: str = "dAP", by: str = "model", error: str = "error",
               title: str = "") -> Any:
    """Grouped bars: one group per ``error`` type, one bar per ``by`` value (a ``{value}_sd``
    column gives error bars), e.g. TIDE's dAP per error type per detector."""
    groups = list(dict.fromkeys(table[by]))
    errors = list(dict.fromkeys(table[error]))
    w = 0.8 / max(len(groups), 1)
    for i, g in enumerate(groups):
        sub = table[table[by] == g].set_index(error).reindex(errors)
        sd = sub[f"{value}_sd"].fillna(0.0) if f"{value}_sd" in sub else None
        ax.bar(np.arange(len(errors)) + i * w, sub[value], width=w, yerr=sd, label=str(g), capsize=2)
    ax.set_xticks(np.arange(len(errors)) + 0.4 - w / 2, errors)
    ax.set(ylabel=value, title=title)
    ax.legend(fontsize=8)
    return ax.figure


def paired_effects(deltas: pd.DataFrame, intervals: pd.DataFrame, ax: Any, key: str, ylabel: str,
                   title: str = "") -> Any:
    """Paired per-seed differences to a baseline (:func:`analysis.measures.effects.deltas_to_baseline`,
    :func:`analysis.measures.effects.delta_intervals`): one line with dots per seed, the mean with its
    95 % paired interval as black squares with error bars, and the zero line (no effect).
    ``key`` values that are numbers (α) are drawn at their value, others (fusion modes) in
    order at 0, 1, …"""
    values = list(dict.fromkeys(intervals[key]))
    numeric = all(isinstance(v, (int, float, np.integer, np.floating)) for v in values)
    where = {v: (float(v) if numeric else i) for i, v in enumerate(values)}
    for seed, g in deltas.groupby("seed", sort=True):
        ax.plot([where[v] for v in g[key]], g["delta"], marker="o", ms=4, lw=1, alpha=0.7, label=f"seed {seed}")
    x = [where[v] for v in intervals[key]]
    err = np.nan_to_num(np.vstack([intervals["mean"] - intervals["lo"], intervals["hi"] - intervals["mean"]]))
    ax.errorbar(x, intervals["mean"], yerr=err, fmt="s", color="k", ms=5, capsize=4, zorder=3,
                label="mean, 95 % paired interval")
    ax.axhline(0.0, color="grey", lw=0.8, ls="--")
    if not numeric:
        ax.set_xticks(range(len(values)), [str(v) for v in values], rotation=20, ha="right")
    ax.set(xlabel=key, ylabel=ylabel, title=title)
    ax.legend(fontsize=7)
    return ax.figure


def bars(table: pd.DataFrame, ax: Any, value: str, by: str = "model", title: str = "") -> Any:
    """One bar per row of ``table`` (labelled by ``by``, in table order) of ``value``, with a
    ``{value}_sd`` column as error bars (absent or NaN: none)."""
    sd = table[f"{value}_sd"].fillna(0.0) if f"{value}_sd" in table else None
    ax.bar(np.arange(len(table)), table[value], yerr=sd, capsize=3, color="tab:blue")
    ax.set_xticks(np.arange(len(table)), [str(v) for v in table[by]], rotation=30, ha="right")
    ax.set(ylabel=value, title=title)
    return ax.figure
