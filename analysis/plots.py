"""Drawing only: each function takes computed data and an ``ax`` and returns the figure.

Nothing here computes a metric (see :mod:`analysis.metrics`); the notebooks pair the two.
"""
from __future__ import annotations

from typing import Any

import pandas as pd


def scatter_score_iou(df: pd.DataFrame, ax: Any, score_col: str = "cls", iou_col: str = "iou_same",
                      title: str = "", max_points: int = 20000) -> Any:
    """Figure 1 panel: score against IoU, one dot per box (a fixed sample above ``max_points``)."""
    data = df.sample(max_points, random_state=0) if len(df) > max_points else df
    ax.scatter(data[iou_col], data[score_col], s=4, alpha=0.4, linewidths=0)
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.axvline(0.5, color="grey", lw=0.8, ls="--")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="IoU with ground truth", ylabel=score_col, title=title)
    return ax.figure


def density_score_iou(df: pd.DataFrame, ax: Any, score_col: str = "cls", iou_col: str = "iou_same",
                      title: str = "", gridsize: int = 40) -> Any:
    """All images at once: hexbin density (log counts) of score against IoU."""
    ax.set(xlabel="IoU with ground truth", ylabel=score_col, title=title, xlim=(0, 1), ylim=(0, 1))
    if df.empty:  # an untrained model may have no box above the score threshold
        ax.text(0.5, 0.5, "no boxes", ha="center", va="center", transform=ax.transAxes)
        return ax.figure
    hb = ax.hexbin(df[iou_col], df[score_col], gridsize=gridsize, extent=(0, 1, 0, 1), bins="log",
                   mincnt=1, cmap="viridis")
    ax.figure.colorbar(hb, ax=ax, label="boxes (log)")
    return ax.figure


def proportion_curves(props: pd.DataFrame, ax: Any, label: str = "") -> Any:
    """Figure 2: share of boxes with cls > t and IoU > t (from :func:`analysis.metrics.proportions`)."""
    ax.plot(props["thr"], props["cls_share"], marker="o", label=f"cls>t {label}".strip())
    ax.plot(props["thr"], props["iou_share"], marker="s", label=f"IoU>t {label}".strip())
    ax.set(xlabel="threshold t", ylabel="proportion of boxes", ylim=(0, 1))
    ax.legend()
    return ax.figure


def alpha_curve(table: pd.DataFrame, ax: Any, label: str = "", metric: str = "AP") -> Any:
    """Table 5 as a curve: ``metric`` against α (from :func:`analysis.rescore.alpha_sweep`)."""
    ax.plot(table["alpha"], table[metric], marker="o", label=label or None)
    ax.set(xlabel="alpha", ylabel=metric)
    if label:
        ax.legend()
    return ax.figure


def figure1_grid(before: pd.DataFrame, after: pd.DataFrame, image_ids: list, score_col: str = "cls",
                 iou_col: str = "iou_same", size: float = 3.2) -> Any:
    """The paper's Figure 1 layout: rows before / after NMS, one column per image."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, len(image_ids), figsize=(size * len(image_ids), size * 2), squeeze=False)
    for j, image_id in enumerate(image_ids):
        for i, (stage, df) in enumerate((("before NMS", before), ("after NMS", after))):
            scatter_score_iou(df[df["image_id"] == image_id], axes[i, j], score_col, iou_col,
                              title=f"image {image_id}, {stage}")
    fig.tight_layout()
    return fig
