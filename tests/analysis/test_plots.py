"""Smoke tests: every plot draws on an Agg canvas from small frames."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.measures.metrics import proportions  # noqa: E402
from analysis.views import plots  # noqa: E402


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
    titles = [ax.get_title() for ax in fig.axes[:3]]
    assert [t.split(" (n=")[0] for t in titles] == [f"image {i}, before NMS" for i in (1, 2, 3)]
    assert all(t.endswith(")") and " (n=" in t for t in titles)  # boxes per panel stated
    assert fig.axes[3].get_title() == "image 1, after NMS (n=20)"  # df.iloc[::3]: every row of image 1
    plt.close(fig)


def test_figure1_grid_draws_the_nms_score_beside_cls() -> None:
    df = _df(60).assign(image_id=[1, 2, 3] * 20)
    df["score"] = df["cls"] ** 0.6
    fig = plots.figure1_grid(df, df.iloc[::3], [1, 2], scores=[("cls", "cls"), ("score", "NMS score")])
    assert len(fig.axes) == 8  # (before, after) x (cls, score) rows, 2 images
    assert [ax.get_ylabel() for ax in fig.axes[::2]] == ["cls", "NMS score", "cls", "NMS score"]
    assert [ax.get_title() for ax in fig.axes[::2]] == ["image 1, before NMS (n=20)"] * 2 + ["image 1, after NMS (n=20)"] * 2
    assert all(ax.get_xlabel() == "IoU with a same-label ground truth" for ax in fig.axes)
    assert fig.axes[1].collections[0].get_offsets()[:, 1].tolist() == df[df["image_id"] == 2]["cls"].tolist()
    assert fig.axes[3].collections[0].get_offsets()[:, 1].tolist() == df[df["image_id"] == 2]["score"].tolist()
    plt.close(fig)


def test_density_of_no_boxes() -> None:
    fig, ax = plt.subplots()
    plots.density_score_iou(_df(0), ax, title="empty")
    assert ax.texts[0].get_text() == "no boxes"
    plt.close(fig)


def test_quality_plots_draw(tmp_path) -> None:
    from analysis.measures.calibration import reliability

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


def test_tidy_shows_counts_as_integers_and_drops_one_seed_spreads() -> None:
    from analysis.views.display import tidy

    df = pd.DataFrame({"n": [1080.0, 12.0], "AP": [0.12345, 0.5], "AP_sd": [float("nan")] * 2,
                       "n_sd": [0.5, float("nan")]}, index=[7, 3])
    out = tidy(df)
    assert list(out.columns) == ["n", "AP", "n_sd"] and list(out.index) == [0, 1]
    assert str(out["n"].dtype) == "Int64" and list(out["n"]) == [1080, 12]
    assert list(out["AP"]) == [0.123, 0.5]


def test_show_figure_embeds_a_png_with_alt_text(monkeypatch) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from IPython import display as ipd

    from analysis.views.display import show_figure

    shown = []
    monkeypatch.setattr(ipd, "display", lambda obj, **kw: shown.append(obj))
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    show_figure(fig, 'AP "against" alpha')
    assert len(shown) == 1
    html = shown[0].data
    assert html.startswith('<img src="data:image/png;base64,') and 'alt="AP &quot;against&quot; alpha"' in html
    assert fig.number not in plt.get_fignums()  # closed


def test_with_spread_joins_mean_and_sd() -> None:
    from analysis.views.display import with_spread

    df = pd.DataFrame({"model": ["a", "b"], "seeds": [3, 1], "AP": [0.3371, 0.5], "AP_sd": [0.0271, float("nan")]})
    out = with_spread(df, ["AP", "AR"])
    assert list(out.columns) == ["model", "seeds", "AP"] and list(out["AP"]) == ["0.337 ± 0.027", "0.500"]


def test_proportion_curves_drawn_twice_keep_every_curve_inside_the_axis() -> None:
    # Figure 2 draws before NMS then after NMS on one axis: the second, lower curves must not
    # shrink the y-limit under the first (the before-NMS IoU > t curve left a 0-0.05 axis once).
    thr = np.linspace(0.1, 0.9, 9)
    high = pd.DataFrame({"thr": thr, "cls_share": 0.02 * (1 - thr), "iou_share": 0.12 * (1 - thr)})
    low = pd.DataFrame({"thr": thr, "cls_share": 0.01 * (1 - thr), "iou_share": 0.03 * (1 - thr)})
    fig, ax = plt.subplots()
    plots.proportion_curves(high, ax, "before NMS")
    plots.proportion_curves(low, ax, "after NMS")
    top = max(float(np.nanmax(line.get_ydata())) for line in ax.lines)
    assert ax.get_ylim()[1] >= top  # no curve leaves the axis
    plt.close(fig)
