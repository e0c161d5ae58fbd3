"""Hand-computed checks of analysis.measures.metrics."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.measures.metrics import (
    alignment_table,
    compare_with_paper,
    correlation,
    count_table,
    obj_above,
    oracle_candidates,
    per_anchor,
    proportions,
    rank_correlation,
    wrong_survivor_rate,
)


def _boxes(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["image_id", "level", "anchor", "label", "cls", "iou_same", "gt_same"])


BEFORE = _boxes([
    (1, 0, 0, 0, 0.04, 0.95, 0),   # below the 0.05 output threshold: not counted for IoU rows
    (1, 0, 1, 0, 0.30, 0.85, 0),
    (1, 0, 2, 0, 0.55, 0.55, 0),
    (1, 1, 0, 1, 0.92, 0.20, -1),
    (2, 0, 0, 0, 0.10, 0.65, 0),
])
AFTER = BEFORE.iloc[[2, 3, 4]].reset_index(drop=True)
IMAGES = pd.DataFrame({"image_id": [1, 2], "positive_anchors": [7, 3]})


def test_count_table_by_hand() -> None:
    t = count_table(BEFORE, AFTER, IMAGES, cls_thrs=(0.05, 0.5, 0.9), iou_thrs=(0.5, 0.8))
    rows = {(r.stage, r.condition): (r.image1, r.image2) for r in t.itertuples()}
    assert rows[("positive_anchors", "iou>0.5")] == (7, 3)
    assert rows[("before_nms", "cls>0.05")] == (3, 1)
    assert rows[("before_nms", "cls>0.5")] == (2, 0)
    assert rows[("before_nms", "cls>0.9")] == (1, 0)
    assert rows[("before_nms", "iou>0.5")] == (2, 1)   # 0.85 and 0.55; the 0.95 box has cls 0.04
    assert rows[("before_nms", "iou>0.8")] == (1, 0)
    assert rows[("after_nms", "cls>0.05")] == (2, 1)
    assert rows[("after_nms", "iou>0.8")] == (0, 0)
    assert list(t.columns) == ["stage", "condition", "image1", "image2"]


def test_proportions_by_hand() -> None:
    p = proportions(BEFORE, thrs=(0.5, 0.8))
    assert p["cls_share"].tolist() == pytest.approx([2 / 4, 1 / 4])
    assert p["iou_share"].tolist() == pytest.approx([3 / 4, 1 / 4])


def test_rank_correlation() -> None:
    df = pd.DataFrame({"cls": [0.1, 0.2, 0.3, 0.4], "iou_same": [0.5, 0.6, 0.7, 0.9]})
    assert rank_correlation(df) == pytest.approx(1.0)
    assert rank_correlation(df.assign(iou_same=df["iou_same"][::-1].to_numpy())) == pytest.approx(-1.0)
    # ranks (1,2,3,4) vs (2,1,4,3): pearson of ranks = 0.6
    assert rank_correlation(df.assign(iou_same=[0.6, 0.5, 0.9, 0.7])) == pytest.approx(0.6)
    assert math.isnan(rank_correlation(df.iloc[:1]))


def test_wrong_survivor_rate_by_hand() -> None:
    pre = _boxes([
        (1, 0, 0, 0, 0.9, 0.60, 0),  # kept, but a suppressed box on gt 0 had IoU 0.80: wrong
        (1, 0, 1, 0, 0.5, 0.80, 0),
        (1, 0, 2, 0, 0.8, 0.90, 1),  # kept and best on gt 1: right
        (1, 0, 3, 0, 0.4, 0.70, 1),
        (1, 0, 4, 1, 0.7, 0.30, -1),  # kept, no ground truth: not counted
        (2, 0, 0, 0, 0.6, 0.95, 0),  # kept; the suppressed box of image 1 is on another image
    ])
    kept = pre.iloc[[0, 2, 4, 5]]
    out = wrong_survivor_rate(pre, kept)
    assert (out["kept"], out["wrong"], out["rate"], out["gap"]) == (3, 1, pytest.approx(1 / 3), pytest.approx(0.2))
    assert math.isnan(wrong_survivor_rate(pre, kept.iloc[[2]])["rate"])
    # a rival must beat the survivor by the margin (0.80 vs 0.60 passes 0.05, not 0.25)
    assert wrong_survivor_rate(pre, kept, margin=0.25)["wrong"] == 0
    # the box on gt 0 was kept by NMS and dropped by the per-image cap: not a suppression
    assert wrong_survivor_rate(pre, kept, nms_kept=pd.concat([kept, pre.iloc[[1]]]))["wrong"] == 0
    with pytest.raises(ValueError, match="margin must be >= 0"):
        wrong_survivor_rate(pre, kept, margin=-0.1)


def test_wrong_survivor_rate_separates_ranking_rules() -> None:
    """Candidate clusters around ground truths, NMS'd by a score unrelated to the IoU and by the
    true IoU itself: the IoU ranking leaves (almost) no wrong survivor, the random one many."""
    from analysis.scoring.rescore import nms_per_image

    rng = np.random.default_rng(0)
    rows = []
    for img in range(40):
        for g in range(3):
            gx, gy = 100.0 * g, 0.0
            for a in range(30):
                d = rng.normal(0, 6, 4)
                rows.append((img, 0, g * 30 + a, 0, gx + d[0], gy + d[1], gx + 50 + d[2], gy + 50 + d[3], g))
    c = pd.DataFrame(rows, columns=["image_id", "level", "anchor", "label", "x1", "y1", "x2", "y2", "gt_same"])
    g = c["gt_same"].to_numpy() * 100.0
    iw = np.clip(np.minimum(c["x2"], g + 50) - np.maximum(c["x1"], g), 0, None)
    ih = np.clip(np.minimum(c["y2"], 50) - np.maximum(c["y1"], 0), 0, None)
    inter = iw * ih
    c["iou_same"] = inter / ((c["x2"] - c["x1"]) * (c["y2"] - c["y1"]) + 2500 - inter)
    rates = {}
    for name, score in (("random", rng.random(len(c))), ("IoU", c["iou_same"].to_numpy())):
        pre = c.assign(score=score.astype(np.float32))
        kept = nms_per_image(pre, 0.5, None)
        rates[name] = wrong_survivor_rate(pre, kept, nms_iou=0.5)["rate"]
        rates[name + ", any margin"] = wrong_survivor_rate(pre, kept, margin=0.0, nms_iou=0.5)["rate"]
    assert rates["IoU"] == rates["IoU, any margin"] == 0.0, rates  # NMS by the IoU keeps each suppressed box's better
    assert rates["random"] > 0.3, rates


def test_suppressor_among_some_candidates_finds_theirs_as_among_all() -> None:
    """Each candidate's suppressor is its own: looking at some candidates (wrong_survivors looks
    at those on a ground truth) gives theirs unchanged and -1 for the rest."""
    from analysis.measures.metrics import suppressor
    from analysis.scoring.rescore import nms_per_image

    rng = np.random.default_rng(1)
    n = 400
    xy = rng.uniform(0, 60, (n, 2))
    c = pd.DataFrame({"image_id": rng.integers(0, 4, n), "level": 0, "anchor": np.arange(n), "label": rng.integers(0, 3, n),
                      "x1": xy[:, 0], "y1": xy[:, 1], "x2": xy[:, 0] + rng.uniform(10, 30, n),
                      "y2": xy[:, 1] + rng.uniform(10, 30, n), "score": rng.random(n).astype(np.float32)})
    c = c.sort_values("image_id", kind="stable").reset_index(drop=True)
    kept = nms_per_image(c, 0.5, None)
    every = suppressor(c, kept, 0.5)
    some = rng.random(n) < 0.3
    assert (every >= 0).sum() > 50
    assert np.array_equal(suppressor(c, kept, 0.5, among=some), np.where(some, every, -1))


def test_oracles_are_named_for_what_they_know() -> None:
    """Two anchors on one object; anchor 1's top label is wrong. The IoU oracle gives both
    pairs of anchor 1 its box quality (a class-agnostic branch cannot know the label); only the
    IoU + label oracle zeroes the wrong-label pair."""
    c = PAIRS.assign(obj=0.5)
    assert oracle_candidates(c, "IoU oracle")["obj"].tolist() == pytest.approx(PAIRS["iou_any"].tolist())
    assert oracle_candidates(c, "IoU + label oracle")["obj"].tolist() == pytest.approx(PAIRS["iou_same"].tolist())
    assert oracle_candidates(c)["obj"].tolist() == pytest.approx(PAIRS["iou_any"].tolist())  # default: no label leak
    with pytest.raises(ValueError, match="oracle 'perfect'"):
        oracle_candidates(c, "perfect")


# One object (label 0, area 40×40) seen by anchors 0 and 1 of image 1; anchor 1 also scores the
# wrong label 3 higher than the right one. obj is the branch's per-anchor prediction.
PAIRS = pd.DataFrame({
    "image_id": [1, 1, 1, 1], "level": [0, 0, 0, 1], "anchor": [0, 1, 1, 5], "label": [0, 0, 3, 2],
    "cls": [0.6, 0.2, 0.7, 0.3], "obj": [0.55, 0.85, 0.85, 0.1],
    "iou_same": [0.6, 0.9, 0.0, 0.0], "iou_any": [0.6, 0.9, 0.9, 0.1],
    "gt_area": [1600.0, 1600.0, 1600.0, 10000.0]})


def test_per_anchor_keeps_the_top_scoring_label() -> None:
    rows = per_anchor(PAIRS)
    assert list(zip(rows["anchor"], rows["label"])) == [(0, 0), (1, 3), (5, 2)]


def test_obj_is_measured_against_the_class_agnostic_iou_per_anchor() -> None:
    """obj predicts the box quality perfectly (same order as iou_any): Spearman 1 per anchor.
    Measured per (anchor, label) pair against iou_same, as before, the wrong-label pair of the
    well-localized anchor 1 would count against it."""
    table = alignment_table(PAIRS, PAIRS.iloc[:0].assign(score=[]), base_cls=0.05)
    row = table[(table.stage == "before NMS") & (table.score == "obj") & (table.subset == "all")
                & (table.group == "all")].iloc[0]
    assert (row.view, row.iou, row.n) == ("per anchor", "iou_any", 3)
    assert row.spearman == pytest.approx(1.0)
    assert rank_correlation(PAIRS, "obj", "iou_same") < 0.5  # the old, unfair measurement
    cls_pair = table[(table.score == "cls") & (table.view == "per pair") & (table.group == "all")
                     & (table.subset == "all")].iloc[0]
    assert (cls_pair.iou, cls_pair.n) == ("iou_same", 4)
    pos = table[(table.score == "obj") & (table.subset == "positives (IoU≥0.5)") & (table.group == "all")].iloc[0]
    assert pos.n == 2  # anchors 0 and 1 (iou_any 0.6, 0.9)
    groups = set(table[(table.score == "obj") & (table.subset == "all")]["group"])
    assert {"P3", "P4", "small (<32²)", "medium (32²–96²)", "large (≥96²)"} <= groups
    sizes = table[(table.score == "obj") & (table.subset == "all") & (table.group_by == "size")]
    assert sizes.set_index("group")["n"].to_dict() == {"small (<32²)": 0, "medium (32²–96²)": 2, "large (≥96²)": 1}


def test_correlation_pearson_and_degenerate_cases() -> None:
    df = pd.DataFrame({"s": [0.1, 0.2, 0.9], "i": [0.1, 0.3, 0.5]})
    c = correlation(df, "s", "i")
    assert c["spearman"] == pytest.approx(1.0) and c["pearson"] == pytest.approx(df["s"].corr(df["i"]))
    assert math.isnan(correlation(df.iloc[:1], "s", "i")["spearman"])
    assert math.isnan(correlation(df.assign(s=0.5), "s", "i")["pearson"])


def test_obj_above_counts_anchors_not_pairs() -> None:
    got = obj_above(PAIRS, 0.5)
    assert got == {"anchors": 3, "obj>0.5": 2, "share": pytest.approx(2 / 3)}


def test_compare_with_paper() -> None:
    ours = pd.DataFrame({"model": ["a", "b"], "AP": [0.40, 0.30]})
    paper = pd.DataFrame({"model": ["a", "b"], "AP": [0.35, 0.36]})
    j = compare_with_paper(ours, paper, on=["model"], metrics=["AP"])
    assert j["AP_delta"].tolist() == pytest.approx([0.05, -0.06])


def test_low_cls_share_counts_well_localized_pairs_only() -> None:
    from analysis.measures.metrics import low_cls_share

    cands = pd.DataFrame({"cls": [0.9, 0.3, 0.2, 0.04, 0.6], "iou_same": [0.8, 0.7, 0.4, 0.9, 0.5]})
    # cls > 0.05 and IoU >= 0.5: rows 0, 1, 4; of them cls < 0.5: row 1
    assert low_cls_share(cands) == {"well-localized": 3, "cls<0.5": 1, "share": pytest.approx(1 / 3)}


def test_nms_shift_is_the_iou_share_change_minus_the_cls_share_change() -> None:
    from analysis.measures.metrics import nms_shift

    props = pd.DataFrame({"seed": [0] * 4, "model": ["m"] * 4, "stage": ["before NMS", "after NMS"] * 2,
                          "thr": [0.5, 0.5, 0.6, 0.6], "cls_share": [0.1, 0.4, 0.0, 0.0],
                          "iou_share": [0.3, 0.2, 0.0, 0.0]})
    out = nms_shift(props)
    assert len(out) == 1
    row = out.iloc[0]
    assert row["d_iou_share"] == pytest.approx(-0.1) and row["d_cls_share"] == pytest.approx(0.3)
    assert row["shift"] == pytest.approx(-0.4)


def test_gaps_to_pairs_per_seed_and_sets_the_paper_gap_beside() -> None:
    from analysis.measures.metrics import gaps_to

    ours = pd.DataFrame({"seed": [0, 0, 1, 1], "model": ["retinanet", "conf"] * 2, "AP": [0.30, 0.33, 0.40, 0.41]})
    paper = pd.DataFrame({"model": ["retinanet", "conf"], "AP": [0.353, 0.357]})
    out = gaps_to(ours, paper, ["AP", "AR"])
    assert list(out["comparison"]) == ["conf − retinanet"]  # AR: in neither table, left out
    row = out.iloc[0]
    assert row["ours"] == pytest.approx(0.02) and row["ours_sd"] == pytest.approx(math.sqrt(2) * 0.01)
    assert row["paper"] == pytest.approx(0.004) and row["same sign"] and row["seeds"] == 2


def test_gap_grid_puts_ours_and_the_paper_in_rows_and_metrics_in_columns() -> None:
    from analysis.measures.metrics import gap_grid, gaps_to

    ours = pd.DataFrame({"seed": [0, 0, 1, 1], "model": ["retinanet", "conf"] * 2, "AP": [0.30, 0.33, 0.40, 0.41],
                         "AR": [0.5, 0.5, 0.6, 0.6]})
    paper = pd.DataFrame({"model": ["retinanet", "conf"], "AP": [0.353, 0.357], "AR": [0.522, 0.526]})
    grid = gap_grid(gaps_to(ours, paper, ["AP", "AR"]))
    assert list(grid.columns) == ["comparison", "source", "AP", "AR"]
    assert grid.to_dict("records") == [
        {"comparison": "conf − retinanet", "source": "ours (2 seeds)", "AP": "+0.020 ± 0.014", "AR": "+0.000 ± 0.000"},
        {"comparison": "conf − retinanet", "source": "paper", "AP": "+0.004", "AR": "+0.004"}]


def test_gaps_to_leaves_out_metrics_coco_left_undefined() -> None:
    from analysis.measures.metrics import gaps_to

    ours = pd.DataFrame({"seed": [0, 0], "model": ["retinanet", "conf"], "AP": [0.3, 0.33], "APl": [-1.0, -1.0]})
    paper = pd.DataFrame({"model": ["retinanet", "conf"], "AP": [0.353, 0.357], "APl": [0.48, 0.485]})
    assert list(gaps_to(ours, paper, ["AP", "APl"])["metric"]) == ["AP"]


def test_with_deployed_score_is_the_fused_score_nms_ranks_by() -> None:
    from analysis.measures.metrics import with_deployed_score

    cands = pd.DataFrame({"cls": [0.25, 0.64, 0.09], "obj": [1.0, 0.25, 0.36]})
    pow_ = with_deployed_score(cands, {"mode": "pow", "alpha": 0.5, "thr": 0.5})["score"]
    assert list(pow_) == pytest.approx([0.5, 0.4, 0.18])  # sqrt(cls · obj)
    assert list(with_deployed_score(cands, {"mode": "mul_thr", "alpha": 0.0, "thr": 0.3})["score"]) == \
        pytest.approx([0.25, 0.0, 0.0324])
    plain = cands.assign(obj=float("nan"))
    assert list(with_deployed_score(plain, {"mode": "cls", "alpha": 0.0, "thr": 0.5})["score"]) == \
        pytest.approx([0.25, 0.64, 0.09])
    assert "score" not in cands  # a new frame


def test_fusion_formula_and_figure1_scores() -> None:
    from analysis.measures.metrics import figure1_scores, fusion_formula

    conf = {"mode": "pow", "alpha": 0.4, "thr": 0.5}
    assert fusion_formula(conf) == "obj^0.4·cls^0.6"
    assert fusion_formula({"mode": "mul_thr", "alpha": 0.0, "thr": 0.5}) == "cls·obj where obj > 0.5"
    assert fusion_formula({"mode": "cls", "alpha": 0.0, "thr": 0.5}) == "cls"
    with pytest.raises(ValueError, match="'sum'"):
        fusion_formula({"mode": "sum", "alpha": 0.0, "thr": 0.5})
    assert [c for c, _ in figure1_scores(conf)] == ["cls", "score"]
    assert "obj^0.4·cls^0.6" in figure1_scores(conf)[1][1]
    assert [c for c, _ in figure1_scores({"mode": "cls", "alpha": 0.0, "thr": 0.5})] == ["cls"]


def test_count_shift_of_the_papers_intro_table_is_its_stated_drop() -> None:
    """The paper: the IoU > 0.5 share drops by 19.52 % and the cls > 0.5 share by 1.09 % on average
    over its ten images."""
    from analysis.measures.metrics import count_shift
    from analysis.paper import load_table

    s = count_shift(load_table("intro_table1_box_counts"))
    assert s["images"] == 10
    assert s["d_iou_share"] == pytest.approx(-0.1952, abs=5e-5) and s["d_cls_share"] == pytest.approx(-0.0109, abs=5e-5)
    assert s["shift"] == pytest.approx(-0.1952 + 0.0109, abs=1e-4)
