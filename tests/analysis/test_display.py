"""Report tables: one precision rule for every page (AP and other fractions to 3 decimals, counts
as integers, a mean over seeds of a count to one decimal), one header row, no leftover index."""
from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.views.display import COUNT_DIGITS, flat, tidy

NAN = float("nan")


def test_mean_counts_over_seeds_keep_one_decimal_and_whole_counts_are_integers() -> None:
    df = pd.DataFrame({"model": ["a", "b"], "seeds": [3, 3], "n": [20973.6667, 1080.0], "n_sd": [308.594, 0.0],
                       "kept": [1080.0, 12.0], "share": [0.93812, 0.5]})
    out = tidy(df, counts=["n", "kept"])
    assert list(out["n"]) == [20973.7, 1080.0] and list(out["n_sd"]) == [308.6, 0.0]
    assert str(out["kept"].dtype) == "Int64" and list(out["kept"]) == [1080, 12]  # one seed: whole counts
    assert list(out["share"]) == [0.938, 0.5]
    html = out.to_html()
    assert "20973.7" in html and "20973.667" not in html and "1080.000" not in html
    assert COUNT_DIGITS == 1


def test_floats_round_to_three_decimals_without_negative_zero() -> None:
    out = tidy(pd.DataFrame({"mean": [-0.00012, 0.01234], "AP": [0.35581, 0.39371]}))
    assert list(out["mean"]) == [0.0, 0.012] and str(out["mean"][0]) == "0.0"  # not -0.0
    assert list(out["AP"]) == [0.356, 0.394]
    assert tidy(pd.DataFrame({"dAP": [19.983, 1.87]}), 1)["dAP"].tolist() == [20.0, 1.9]


def test_one_seed_spreads_are_left_out_but_real_spreads_stay() -> None:
    df = pd.DataFrame({"AP": [0.3, 0.4], "AP_sd": [NAN, NAN], "n": [5.5, 6.0], "n_sd": [0.5, NAN]})
    assert list(tidy(df, counts=["n"]).columns) == ["AP", "n", "n_sd"]


def test_pivots_get_one_header_row_and_keep_their_index_as_columns() -> None:
    long = pd.DataFrame({"model": ["a", "a", "b", "b"], "view": ["p", "q", "p", "q"], "group": ["all"] * 4,
                         "ECE": [0.12345, 0.2, 0.3, 0.4]})
    wide = long.pivot_table(index="model", columns=["view", "group"], values="ECE")
    out = tidy(wide)
    assert list(out.columns) == ["model", "p, all", "q, all"] and out.columns.name is None
    assert list(out["model"]) == ["a", "b"] and out["p, all"][0] == 0.123
    single = tidy(long.pivot_table(index="model", columns="view", values="ECE"))
    assert list(single.columns) == ["model", "p", "q"] and single.columns.name is None


def test_an_unnamed_sort_index_is_dropped() -> None:
    df = pd.DataFrame({"x": [2.0, 1.5]}, index=[7, 3])
    out = flat(df)
    assert list(out.columns) == ["x"] and list(out.index) == [0, 1]


def test_with_spread_reads_coco_undefined_as_not_available() -> None:
    from analysis.views.display import COCO_UNDEFINED, with_spread

    df = pd.DataFrame({"model": ["a"], "AP": [0.3371], "AP_sd": [0.0271], "APl": [-1.0], "APl_sd": [0.0]})
    out = with_spread(df, ["AP", "APl"], undefined=COCO_UNDEFINED)
    assert list(out["AP"]) == ["0.337 ± 0.027"] and list(out["APl"]) == ["n/a"]
    assert list(with_spread(df, ["APl"])["APl"]) == ["-1.000 ± 0.000"]  # without the rule: as it is


def test_numeric_pivot_columns_keep_their_axis_name_as_a_prefix() -> None:
    long = pd.DataFrame({"model": ["a", "a"], "iou_thr": [0.5, 0.75], "AP": [0.5, 0.3]})
    wide = long.pivot_table(index="model", columns="iou_thr", values="AP").rename_axis(columns="AP at IoU")
    assert list(tidy(wide).columns) == ["model", "AP at IoU 0.5", "AP at IoU 0.75"]


def test_frame_html_drops_only_a_leftover_index() -> None:
    import re

    from analysis.views.display import frame_html, leftover_index

    plain = pd.DataFrame({"model": ["a", "b"], "AP": [0.3, 0.4]})
    assert leftover_index(plain)
    head = re.findall(r"<th[^>]*>(.*?)</th>", frame_html(plain))
    assert head == ["model", "AP"]  # no empty index header, no 0 / 1 row labels
    keyed = plain.set_index("model")
    assert not leftover_index(keyed) and "<th>a</th>" in frame_html(keyed)  # a real index stays
    labelled = pd.DataFrame({"AP": [0.3]}, index=["conf − retinanet"])
    assert not leftover_index(labelled) and "conf − retinanet" in frame_html(labelled)
    assert not leftover_index(plain.iloc[[1]])  # a filtered frame keeps its (meaningful) labels


def test_merge_spread_puts_mean_and_sd_in_one_cell() -> None:
    from analysis.views.display import merge_spread

    df = tidy(pd.DataFrame({"model": ["a", "b"], "seeds": [3, 3], "AP": [0.30712, 0.31], "AP_sd": [0.0061, NAN],
                            "n": [12.0, 13.0], "n_sd": [0.5, 1.0], "note_sd": ["x", "y"]}), counts=["n"])
    out = merge_spread(df)
    assert list(out.columns) == ["model", "seeds", "AP", "n", "note_sd"]  # a spread without its mean stays
    assert list(out["AP"]) == ["0.307 ± 0.006", "0.310"]  # no spread (one seed): the mean alone
    assert list(out["n"]) == ["12 ± 0.5", "13 ± 1.0"]  # a whole mean count keeps its spread's decimal


def test_frame_html_merges_spreads_and_names_the_empty_columns_it_leaves_out() -> None:
    from analysis.views.display import frame_html

    df = pd.DataFrame({"size": ["small", "medium"], "AP": [0.5, 0.25], "AP_sd": [0.01, 0.02], "APl": [NAN, NAN]})
    text = frame_html(df)
    assert "0.50 ± 0.01" in text and "AP_sd" not in text and "<th>APl</th>" not in text
    assert "Left out, empty throughout (nothing of the kind in this data): APl." in text
    # one row: an empty cell is the answer there, nothing is left out
    assert "<th>APl</th>" in frame_html(df.iloc[:1]) and "Left out" not in frame_html(df.iloc[:1])


def test_data_outside_axes_sees_a_clipped_curve_and_accepts_a_fitted_one() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.views.display import data_outside_axes, figure_html

    fig, (a, b) = plt.subplots(1, 2)
    a.plot([0, 1], [0.0, 0.12], label="IoU > t")
    a.set_ylim(0, 0.05)  # what a second call's y-limit did to Figure 2
    a.set_title("clipped")
    b.scatter([0.2, 0.4], [0.5, 0.7])
    b.bar([0.1], [0.9], width=0.1)
    assert data_outside_axes(fig) == ["clipped: 1 data point(s) outside the axes"]
    assert 'data-outside="clipped: 1 data point(s) outside the axes"' in figure_html(fig, "alt")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0.0, 0.12])
    assert data_outside_axes(fig) == [] and "data-outside" not in figure_html(fig, "alt")


def test_figure1_panel_spreads_iou_zero_boxes_in_a_counted_strip() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analysis.views.display import data_outside_axes
    from analysis.views.plots import ZERO_STRIP, scatter_score_iou

    df = pd.DataFrame({"iou_same": [0.0] * 300 + [0.6, 0.8], "cls": [0.1] * 300 + [0.3, 0.9]})
    fig, ax = plt.subplots()
    scatter_score_iou(df, ax, title="image 1")
    zero_x = ax.collections[1].get_offsets()[:, 0]
    assert len(zero_x) == 300 and np.ptp(zero_x) > ZERO_STRIP / 2  # spread, not one stripe
    assert (zero_x < 0).all() and (zero_x >= -ZERO_STRIP).all() and ax.get_xlim()[0] == -ZERO_STRIP
    assert any(t.get_text() == "IoU 0:\n300" for t in ax.texts)
    assert data_outside_axes(fig) == []


def test_show_details_collapses_a_table_under_its_title() -> None:
    from analysis.views.display import details_html, frame_html

    df = pd.DataFrame({"image": [1, 2], "n": [3, 4]})
    text = details_html(frame_html(df), "per-image counts (open)")
    assert text.startswith("<details><summary>per-image counts (open)</summary><div class=\"detail\"") and text.endswith("</div></details>")


def test_key_view_keeps_the_named_columns_and_each_key_metric_with_its_paper_value() -> None:
    from analysis.views.display import key_view

    wide = pd.DataFrame({"fusion": ["cls"], "seeds": [3], "AP": [0.3], "AP_sd": [0.01], "APs": [0.2], "AP_paper": [0.35],
                         "AP_delta": [-0.05], "AP50": [0.5], "AP50_paper": [0.55], "APs_paper": [0.1]})
    assert list(key_view(wide, ["fusion", "seeds", "missing"]).columns) == [
        "fusion", "seeds", "AP", "AP_sd", "AP_paper", "AP_delta", "AP50", "AP50_paper"]
