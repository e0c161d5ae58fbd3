"""Hand-computed checks of analysis.metrics."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.metrics import (compare_with_paper, count_table, oracle_candidates, proportions,
                              rank_correlation, wrong_survivor_rate)


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
    assert wrong_survivor_rate(pre, kept) == {"kept": 3, "wrong": 1, "rate": pytest.approx(1 / 3)}
    assert math.isnan(wrong_survivor_rate(pre, kept.iloc[[2]])["rate"])


def test_oracle_uses_the_true_iou() -> None:
    c = BEFORE.assign(obj=0.5)
    assert oracle_candidates(c)["obj"].tolist() == pytest.approx(BEFORE["iou_same"].tolist())


def test_compare_with_paper() -> None:
    ours = pd.DataFrame({"model": ["a", "b"], "AP": [0.40, 0.30]})
    paper = pd.DataFrame({"model": ["a", "b"], "AP": [0.35, 0.36]})
    j = compare_with_paper(ours, paper, on=["model"], metrics=["AP"])
    assert j["AP_delta"].tolist() == pytest.approx([0.05, -0.06])
