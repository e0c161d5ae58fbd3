"""Smoke tests: every plot draws on an Agg canvas from small frames."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis import plots  # noqa: E402
from analysis.metrics import proportions  # noqa: E402


def _df(n: int = 300) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"cls": rng.random(n), "iou_same": rng.random(n)})


def test_each_plot_draws(tmp_path) -> None:
    df = _df()
    fig, axes = plt.subplots(1, 4, figsize=(12, 3))
    assert plots.scatter_score_iou(df, axes[0], title="before NMS") is fig
    assert plots.density_score_iou(df, axes[1]) is fig
    assert plots.proportion_curves(proportions(df), axes[2]) is fig
    assert plots.alpha_curve(pd.DataFrame({"alpha": [0.0, 0.4], "AP": [0.3, 0.32]}), axes[3], "conf") is fig
    assert len(axes[0].collections) == 1 and len(axes[2].lines) == 2
    fig.savefig(tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 1000
    plt.close(fig)


def test_figure1_grid_layout() -> None:
    df = _df(60).assign(image_id=[1, 2, 3] * 20)
    fig = plots.figure1_grid(df, df.iloc[::3], [1, 2, 3])
    assert len(fig.axes) == 6
    assert [ax.get_title() for ax in fig.axes[:3]] == [f"image {i}, before NMS" for i in (1, 2, 3)]
    assert fig.axes[3].get_title() == "image 1, after NMS"
    plt.close(fig)


def test_density_of_no_boxes() -> None:
    fig, ax = plt.subplots()
    plots.density_score_iou(_df(0), ax, title="empty")
    assert ax.texts[0].get_text() == "no boxes"
    plt.close(fig)


def test_quality_plots_draw(tmp_path) -> None:
    from analysis.calibration import reliability

    rng = np.random.default_rng(0)
    table = reliability(rng.random(200), (rng.random(200) > 0.5).astype(float), 10)
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    assert plots.reliability_diagram(table.assign(mean_target_sd=0.02), axes[0], "cls", error=0.1) is fig
    curves = pd.DataFrame({"iou_thr": [0.5, 0.55] * 2, "AP": [0.4, 0.3, 0.5, 0.35], "AP_sd": 0.01,
                           "model": ["a", "a", "b", "b"]})
    assert plots.curve_by(curves, axes[1], "iou_thr", "AP", "model") is fig
    bars = pd.DataFrame({"model": ["a", "a", "b", "b"], "error": ["Cls", "Loc"] * 2, "dAP": [1.0, 2.0, 1.5, 0.5]})
    assert plots.error_bars(bars, axes[2]) is fig
    assert len(axes[1].lines) == 2 and len(axes[2].patches) == 4
    fig.savefig(tmp_path / "q.png")
    plt.close(fig)
