"""Report tables: one precision rule for every page (AP and other fractions to 3 decimals, counts
as integers, a mean over seeds of a count to one decimal), one header row, no leftover index."""
from __future__ import annotations

import pandas as pd

from analysis.display import COUNT_DIGITS, flat, tidy

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
    from analysis.display import COCO_UNDEFINED, with_spread

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

    from analysis.display import frame_html, leftover_index

    plain = pd.DataFrame({"model": ["a", "b"], "AP": [0.3, 0.4]})
    assert leftover_index(plain)
    head = re.findall(r"<th[^>]*>(.*?)</th>", frame_html(plain))
    assert head == ["model", "AP"]  # no empty index header, no 0 / 1 row labels
    keyed = plain.set_index("model")
    assert not leftover_index(keyed) and "<th>a</th>" in frame_html(keyed)  # a real index stays
    labelled = pd.DataFrame({"AP": [0.3]}, index=["conf − retinanet"])
    assert not leftover_index(labelled) and "conf − retinanet" in frame_html(labelled)
    assert not leftover_index(plain.iloc[[1]])  # a filtered frame keeps its (meaningful) labels
