"""Hand-computed checks of the quantities that single registry claims are tested on
(analysis.measures.metrics, the 'quantities of single paper claims' block)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from analysis.measures.metrics import (
    alpha_gains,
    band_correlations,
    credible_share,
    figure1_bands,
    gain_summary,
    low_obj_share,
    matched_mean_iou,
    mid_iou_obj_gap,
    negative_obj_share,
    per_image_share_gap,
    positive_obj_share,
    positives_comparison,
    product_lift_share,
    size_correlation_gap,
)

# pre-NMS (anchor, label) pairs: image, level, anchor, label, cls, obj, iou_same, iou_any, gt_same, gt_area
PAIRS = pd.DataFrame([
    (1, 0, 0, 0, 0.04, 0.9, 0.80, 0.80, 0, 100.0),   # cls ≤ 0.05: not a box of the paper's counting
    (1, 0, 1, 0, 0.10, 0.6, 0.30, 0.30, 0, 100.0),   # low band, 0.05 < cls ≤ 0.2
    (1, 0, 2, 0, 0.20, 0.3, 0.60, 0.60, 0, 100.0),   # low band, 0.05 < cls ≤ 0.2 (0.2 inclusive)
    (1, 0, 3, 0, 0.30, 0.7, 0.65, 0.65, 0, 100.0),   # low band, 0.2 < cls ≤ 0.4
    (1, 0, 3, 1, 0.06, 0.7, 0.00, 0.65, -1, 100.0),  # same anchor, another label: low band, cls ≤ 0.2
    (2, 0, 0, 2, 0.45, 0.2, 0.10, 0.35, 0, 2000.0),  # low band, cls > 0.4
    (2, 0, 1, 2, 0.40, 0.8, 0.70, 0.70, 0, 2000.0),  # IoU exactly 0.7: neither band of the shares, 'not high' for the median
    (2, 0, 2, 2, 0.60, 0.9, 0.75, 0.75, 0, 2000.0),  # high band, cls ≥ 0.5
    (2, 0, 3, 2, 0.30, 0.9, 0.90, 0.90, 0, 2000.0),  # high band, cls < 0.5
], columns=["image_id", "level", "anchor", "label", "cls", "obj", "iou_same", "iou_any", "gt_same", "gt_area"])


def test_figure1_bands_by_hand() -> None:
    b = figure1_bands(PAIRS)
    # IoU < 0.7 among cls > 0.05: anchors 1, 2, 3 (label 0), 3 (label 1) of image 1, anchor 0 of image 2 → 5
    assert b["low n"] == 5
    assert b["low 0.05<cls≤0.2"] == pytest.approx(3 / 5)  # 0.10, 0.20, 0.06
    assert b["low 0.2<cls≤0.4"] == pytest.approx(1 / 5)   # 0.30
    assert b["low cls>0.4"] == pytest.approx(1 / 5)       # 0.45
    assert b["high n"] == 2                                # 0.75 and 0.90
    assert b["high cls<0.5"] == pytest.approx(1 / 2)      # 0.30
    assert b["median cls high"] == pytest.approx(0.45)    # median of 0.60, 0.30
    # IoU ≤ 0.7: 0.10, 0.20, 0.30, 0.06, 0.45, 0.40 → median (0.20 + 0.30) / 2
    assert b["median cls not high"] == pytest.approx(0.25)


def test_figure1_bands_empty_band_is_nan() -> None:
    b = figure1_bands(PAIRS[PAIRS["iou_same"] < 0.7])
    assert b["high n"] == 0 and math.isnan(b["high cls<0.5"]) and math.isnan(b["median cls high"])


def test_band_correlations_by_hand() -> None:
    pop = pd.DataFrame({"cls": [0.1, 0.2, 0.3, 0.9, 0.8, 0.7], "iou_same": [0.3, 0.4, 0.5, 0.7, 0.8, 0.9]})
    c = band_correlations(pop)
    assert (c["low n"], c["high n"]) == (3, 3)
    assert c["low ρ"] == pytest.approx(1.0)    # cls rises with IoU below 0.7
    assert c["high ρ"] == pytest.approx(-1.0)  # and falls from 0.7 on (0.7 is in the high band)
    assert c["larger ρ"] == pytest.approx(1.0)
    one_high = band_correlations(pop.iloc[:4])  # a single row at IoU ≥ 0.7: no correlation there
    assert one_high["high n"] == 1 and math.isnan(one_high["larger ρ"])


def test_per_image_share_gap_by_hand() -> None:
    g = per_image_share_gap(PAIRS)
    # image 1 (cls > 0.05: 0.10, 0.20, 0.30, 0.06): cls > 0.5 share 0, IoU > 0.5 share 2/4 (0.60, 0.65)
    # image 2 (0.45, 0.40, 0.60, 0.30): cls > 0.5 share 1/4; IoU > 0.5 share 3/4 (0.70, 0.75, 0.90)
    assert g["images"] == 2
    assert g["cls share"] == pytest.approx((0 + 0.25) / 2)
    assert g["iou share"] == pytest.approx((0.5 + 0.75) / 2)
    assert g["gap"] == pytest.approx(((0 - 0.5) + (0.25 - 0.75)) / 2)


def test_credible_share_by_hand() -> None:
    dets = pd.DataFrame({"cls": [0.9, 0.8, 0.7, 0.6, 0.4], "iou_same": [0.8, 0.5, 0.49, 0.9, 0.9],
                         "gt_same": [0, 1, 2, -1, 3]})
    c = credible_share(dets)
    # cls > 0.5: four; matched at IoU ≥ 0.5 with a ground truth: 0.8 and 0.5 (0.9 has none, 0.49 too low)
    assert (c["confident"], c["matched"]) == (4, 2) and c["share"] == pytest.approx(0.5)
    assert math.isnan(credible_share(dets[dets["cls"] < 0.5])["share"])


def test_positives_comparison_by_hand() -> None:
    images = pd.DataFrame({"image_id": [1, 2, 3, 4], "num_gt": [1, 2, 1, 0], "positive_anchors": [3, 1, 0, 0]})
    c = positives_comparison(PAIRS, images)
    # cls > 0.5: image 1 none, image 2 one (0.60). Images with positives: 1 (0 < 3 fewer), 2 (1 < 1 not)
    assert (c["images with positives"], c["cls boxes fewer"]) == (2, 1) and c["share cls fewer"] == pytest.approx(0.5)
    # IoU > 0.5 among cls > 0.05: image 1 two (0.60, 0.65; the 0.80 box has cls 0.04), image 2 three, image 3 none.
    # Images with ground truth 1, 2, 3: 2 ≤ 3 not more; 3 > 1 more; 0 ≤ 0 not more
    assert (c["images with ground truth"], c["iou boxes not more"]) == (3, 2)
    assert c["share iou not more"] == pytest.approx(2 / 3)


POP = pd.DataFrame({  # one row per anchor, chosen by IoU ≥ 0.3
    "cls": [0.10, 0.40, 0.30, 0.60, 0.20, 0.05],
    "obj": [0.70, 0.30, 0.55, 0.90, 0.80, 0.40],
    "iou_same": [0.60, 0.55, 0.80, 0.90, 0.35, 0.52],
    "iou_any": [0.60, 0.55, 0.80, 0.90, 0.45, 0.52],
    "gt_area": [500.0, 600.0, 700.0, 2000.0, 3000.0, 4000.0],
})


def test_positive_obj_share_by_hand() -> None:
    s = positive_obj_share(POP)
    # IoU any ≥ 0.5: rows 0, 1, 2, 3, 5 → obj 0.70, 0.30, 0.55, 0.90, 0.40 → three above 0.5
    assert (s["positives"], s["obj>0.5"]) == (5, 3) and s["share"] == pytest.approx(3 / 5)


def test_product_lift_share_by_hand() -> None:
    s = product_lift_share(POP, alpha=0.4)
    # cls < 0.5 and IoU same > 0.5: rows 0 (obj 0.70 > cls 0.10: lifted), 1 (0.30 < 0.40: not),
    # 2 (0.55 > 0.30: lifted), 5 (0.40 > 0.05: lifted)
    assert (s["anchors"], s["lifted"]) == (4, 3) and s["share"] == pytest.approx(3 / 4)
    assert 0.7 ** 0.4 * 0.1 ** 0.6 > 0.1 and 0.3 ** 0.4 * 0.4 ** 0.6 < 0.4  # the product against cls, rows 0 and 1


def test_mid_iou_obj_gap_by_hand() -> None:
    g = mid_iou_obj_gap(POP)
    # IoU any in [0.5, 0.75): rows 0, 1, 5 → obj (0.70 + 0.30 + 0.40) / 3; ≥ 0.75: rows 2, 3 → (0.55 + 0.90) / 2
    assert (g["mid n"], g["high n"]) == (3, 2)
    assert g["gap"] == pytest.approx(1.4 / 3 - 1.45 / 2)


def test_size_correlation_gap_by_hand() -> None:
    g = size_correlation_gap(POP)
    # small (area < 1024): rows 0, 1, 2 — IoU 0.60, 0.55, 0.80 ranks 2, 1, 3; obj 0.70, 0.30, 0.55 ranks 3, 1, 2
    # Spearman = 1 − 6·Σd²/(n(n²−1)) = 1 − 6·(1 + 0 + 1)/24 = 0.5
    # medium [1024, 9216): rows 3, 4, 5 — IoU 0.90, 0.45, 0.52 ranks 3, 1, 2; obj 0.90, 0.80, 0.40 ranks 3, 2, 1 → 0.5
    assert (g["small n"], g["medium n"]) == (3, 3)
    assert g["small ρ"] == pytest.approx(0.5) and g["medium ρ"] == pytest.approx(0.5)
    assert g["gap"] == pytest.approx(0.0)


def test_negative_obj_share_by_hand() -> None:
    # per anchor (its top-cls pair, cls > 0.05): image 1 anchors 1, 2, 3 (label 0, cls 0.30 beats 0.06), image 2 anchors 0–3
    # IoU any < 0.4: image 1 anchor 1 (0.30, obj 0.6), image 2 anchor 0 (0.35, obj 0.2) → one of two above 0.5
    s = negative_obj_share(PAIRS)
    assert (s["negatives"], s["obj>0.5"]) == (2, 1) and s["share"] == pytest.approx(0.5)


def test_low_obj_share_by_hand() -> None:
    s = low_obj_share(pd.DataFrame({"obj": [0.9, 0.5, 0.51, 0.2]}))
    assert (s["detections"], s["obj≤0.5"]) == (4, 2) and s["share"] == pytest.approx(0.5)  # 0.5 itself counts as ≤ 0.5
    assert math.isnan(low_obj_share(pd.DataFrame({"obj": []}))["share"])


def test_matched_mean_iou_by_hand() -> None:
    dets = pd.DataFrame({"iou_same": [0.9, 0.6, 0.49, 0.8], "gt_same": [0, 1, 2, -1]})
    m = matched_mean_iou(dets)
    assert m["matched"] == 2 and m["mean IoU"] == pytest.approx(0.75)  # 0.9 and 0.6


def test_alpha_gains_and_summary_by_hand() -> None:
    sweep = pd.DataFrame([
        # seed, alpha, AP75, APl (undefined: no large object), AR, ARs
        (0, 0.0, 0.10, -1.0, 0.30, 0.20),
        (0, 0.2, 0.20, -1.0, 0.40, 0.10),
        (0, 0.4, 0.25, -1.0, 0.42, 0.20),
        (1, 0.2, 0.30, -1.0, 0.50, 0.30),
        (1, 0.4, 0.28, -1.0, 0.53, 0.31),
    ], columns=["seed", "alpha", "AP75", "APl", "AR", "ARs"])
    gains = alpha_gains(sweep, ("AP75", "APl", "AR", "ARs"))
    assert set(gains["metric"]) == {"AP75", "AR", "ARs"}  # APl left out: COCO's −1
    by = {(r.seed, r.metric): r.gain for r in gains.itertuples()}
    assert by[(0, "AP75")] == pytest.approx(0.05) and by[(0, "AR")] == pytest.approx(0.02) and by[(0, "ARs")] == pytest.approx(0.10)
    assert by[(1, "AP75")] == pytest.approx(-0.02) and by[(1, "AR")] == pytest.approx(0.03) and by[(1, "ARs")] == pytest.approx(0.01)
    s = gain_summary(gains, "ARs").set_index("seed")
    assert s.loc[0, "min gain"] == pytest.approx(0.02) and s.loc[1, "min gain"] == pytest.approx(-0.02)
    assert s.loc[0, "focus margin"] == pytest.approx(0.10 - 0.05)   # ARs gain − the largest other (AP75)
    assert s.loc[1, "focus margin"] == pytest.approx(0.01 - 0.03)   # − AR's
    assert np.isnan(gain_summary(gains[gains["metric"] != "ARs"], "ARs")["focus margin"]).all()


def _fake_dump(population: pd.DataFrame | None = None):
    """One image, one ground truth (index 0): A fits it at IoU 0.6 with a high cls, B overlaps A
    (IoU 90/110 > 0.5) and fits it at 0.8 with a high obj, C lies elsewhere."""
    from pathlib import Path

    from analysis.inputs.io import Dump

    boxes = [(0, 0, 10, 10), (1, 0, 11, 10), (50, 50, 60, 60)]
    cands = pd.DataFrame({"image_id": 1, "level": 0, "anchor": [0, 1, 2], "label": 0,
                          "cls": np.float32([0.9, 0.6, 0.3]), "obj": np.float32([0.1, 0.9, 0.5]),
                          "x1": [b[0] for b in boxes], "y1": [b[1] for b in boxes], "x2": [b[2] for b in boxes],
                          "y2": [b[3] for b in boxes], "iou_same": [0.6, 0.8, 0.0], "iou_any": [0.6, 0.8, 0.0],
                          "gt_same": [0, 0, -1], "gt_any": [0, 0, -1], "gt_area": [100.0, 100.0, np.nan]})
    meta = {"test_cfg": {"score_thr": 0.05, "nms_pre": 1000, "nms": {"iou_threshold": 0.5}, "max_per_img": 100}}
    images = pd.DataFrame({"image_id": [1], "num_gt": [1], "positive_anchors": [2]})
    return Dump(Path("fake"), meta, cands, cands.iloc[:0], images, population)


def test_ranking_wrong_survivors_on_one_checkpoint_by_hand() -> None:
    from analysis.studies.tables import dump_ranking_wrong_survivors

    r = dump_ranking_wrong_survivors("m", _fake_dump(), alpha=0.4)
    # by cls, A (0.9) suppresses B, which fits 0.2 better: A is a wrong survivor (1 of 1)
    assert r["kept cls"] == 1 and r["rate cls"] == pytest.approx(1.0)
    # by obj^0.4·cls^0.6, B (0.9^0.4·0.6^0.6 ≈ 0.706) beats A (0.1^0.4·0.9^0.6 ≈ 0.374) and suppresses it: none wrong
    assert r["kept product"] == 1 and r["rate product"] == pytest.approx(0.0)


def test_cls_only_matched_iou_and_product_low_obj_share_by_hand() -> None:
    from analysis.studies.tables import cls_only_matched_iou, dump_product_low_obj_share

    # cls NMS keeps A (matched, IoU 0.6) and C (no ground truth)
    assert cls_only_matched_iou("m", _fake_dump()) == {"matched": 1, "mean IoU": pytest.approx(0.6)}
    # product NMS keeps B (obj 0.9) and C (0.5^0.4·0.3^0.6 ≈ 0.37 > 0.05; obj 0.5 ≤ 0.5): one of two
    s = dump_product_low_obj_share("m", _fake_dump())
    assert (s["detections"], s["obj≤0.5"]) == (2, 1)


def test_population_claims_nan_without_a_quality_score() -> None:
    from analysis.studies.tables import dump_population_claims

    pop = POP.assign(obj=np.nan, image_id=1, level=0, anchor=range(len(POP)), label=0)
    r = dump_population_claims("retinanet", _fake_dump(pop))
    assert r["n"] == len(POP) and math.isnan(r["ρ(cls, obj)"]) and math.isnan(r["positive obj>0.5"])
    with_obj = dump_population_claims("conf", _fake_dump(POP))
    assert with_obj["positive obj>0.5"] == pytest.approx(3 / 5)  # as test_positive_obj_share_by_hand
    assert math.isnan(dump_population_claims("old", _fake_dump())["cls band ρ"])  # no population recorded
