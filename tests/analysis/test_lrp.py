"""COCO matching and LRP: hand-computed cases, the reference implementation's numbers, bad input."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from analysis.geometry.matching import SIZES, coco_match, ground_truth
from analysis.measures.lrp import class_olrp, lrp_curve, olrp, olrp_per_class
from tests.analysis.quality_cases import dets_frame, load_fixture, write_gt

A, B = (0, 0, 10, 10), (50, 50, 60, 60)


@pytest.fixture
def two_gt(tmp_path: Path):
    return ground_truth(write_gt(tmp_path / "gt.json", [(0, 0, *A), (0, 0, *B)]))


def test_one_tp_one_fp_one_missed(two_gt) -> None:
    dets = dets_frame([(0, 0, 0.9, *A), (0, 0, 0.8, 100, 100, 110, 110)])
    m = coco_match(dets, two_gt)
    assert m["tp"].tolist() == [True, False] and m["iou"].tolist() == [1.0, 0.0]
    # after the TP: (0 + 0 FP + 1 FN) / 2 = 0.5; after the FP: (0 + 1 + 1) / 3
    assert np.allclose(lrp_curve(m["tp"].to_numpy(), m["iou"].to_numpy(), 2), [0.5, 2 / 3])
    r = olrp(dets, two_gt)
    assert r["oLRP"] == pytest.approx(0.5) and r["oLRP_loc"] == 0.0 and r["oLRP_FP"] == 0.0
    assert r["oLRP_FN"] == 0.5 and r["thr_mean"] == pytest.approx(0.9)


def test_localisation_component(two_gt) -> None:
    # IoU 0.8: loc error (1 - 0.8) / (1 - 0.5) = 0.4 -> LRP = (0.4 + 0 + 1) / 2
    r = olrp(dets_frame([(0, 0, 0.9, 0, 0, 10, 8)]), two_gt)
    assert r["oLRP"] == pytest.approx(0.7) and r["oLRP_loc"] == pytest.approx(0.2)


def test_duplicate_is_a_false_positive(two_gt) -> None:
    dets = dets_frame([(0, 0, 0.85, 0, 0, 10, 9), (0, 0, 0.9, *A)])
    m = coco_match(dets, two_gt)
    assert m["row"].tolist() == [1, 0] and m["tp"].tolist() == [True, False]
    # the optimum stops before the duplicate
    assert olrp(dets, two_gt)["oLRP_FP"] == 0.0


def test_class_without_tp_and_without_gt(two_gt) -> None:
    # class 1 has detections but no ground truth: left out; class 0 has no TP: oLRP 1
    dets = dets_frame([(0, 1, 0.9, *A), (0, 0, 0.5, 100, 100, 110, 110)])
    pc = olrp_per_class(coco_match(dets, two_gt))
    assert pc["label"].tolist() == [0]
    assert pc.loc[0, "oLRP"] == 1.0 and pc.loc[0, "oLRP_FN"] == 1.0 and math.isnan(pc.loc[0, "oLRP_loc"])


def test_bad_and_empty_input(two_gt, tmp_path: Path) -> None:
    empty = dets_frame([])
    r = olrp(empty, two_gt)  # every object missed: defined value
    assert r["oLRP"] == 1.0 and r["oLRP_FN"] == 1.0 and math.isnan(r["oLRP_FP"])
    no_gt = ground_truth(write_gt(tmp_path / "none.json", []))
    r = olrp(dets_frame([(0, 0, 0.9, *A)]), no_gt)
    assert r["classes"] == 0 and math.isnan(r["oLRP"])
    with pytest.raises(ValueError, match="NaN"):
        olrp(dets_frame([(0, 0, float("nan"), *A)]), two_gt)
    with pytest.raises(ValueError, match="n_gt"):
        lrp_curve(np.array([True]), np.array([1.0]), 0)
    assert class_olrp(np.zeros(0), np.zeros(0, bool), np.zeros(0), 3)["oLRP"] == 1.0


# Produced by kemaloksuz/LRP-Error (mirror HEAD), pycocotools/pycocotools/cocoeval.py run outside
# this repository with the installed pycocotools' mask module on tests/analysis/data/fixture_*.json:
# COCOeval(gt, gt.loadRes(dets), 'bbox').evaluate(); .accumulate(); then for each area index a,
# np.mean(s[s > -1]) of eval['olrp' | 'olrp_loc' | 'olrp_fp' | 'olrp_fn'][:, a, 2] and
# eval['lrp_opt_thr'][:, 0, 2].
REFERENCE = {
    "all": (0.8992354990410469, 0.3187016391733607, 0.6302168576104746, 0.4690656565656566),
    "small": (0.7811371128993132, 0.2811371128993132, 0.0, 0.5),
    "medium": (0.8934097218306098, 0.3497296171747844, 0.55625, 0.43125),
    "large": (0.883812329790659, 0.27834702302987674, 0.5758222643896268, 0.5024509803921569),
}
REFERENCE_THRESHOLDS = [0.278, 0.1828, 0.1986, 0.138]


@pytest.mark.parametrize("size", list(SIZES))
def test_agrees_with_lrp_error_reference(size: str) -> None:
    gt, dets = load_fixture()
    r = olrp(dets, gt, size=size)
    assert [r[k] for k in ("oLRP", "oLRP_loc", "oLRP_FP", "oLRP_FN")] == pytest.approx(REFERENCE[size], abs=1e-12)
    if size == "all":
        pc = olrp_per_class(coco_match(dets, gt))
        assert pc["threshold"].tolist() == pytest.approx(REFERENCE_THRESHOLDS)


def test_optimum_before_the_first_tp(two_gt) -> None:
    # a FP then a TP at IoU exactly 0.5: every cut has LRP 1, the first one wins (as the
    # reference's argmin), so loc is 0/0 -> NaN and FP = 1/1
    dets = dets_frame([(0, 0, 0.9, 100, 100, 110, 110), (0, 0, 0.8, 0, 0, 10, 5)])
    r = olrp_per_class(coco_match(dets, two_gt)).iloc[0]
    assert r["oLRP"] == pytest.approx(1.0) and math.isnan(r["oLRP_loc"]) and r["oLRP_FP"] == 1.0
    assert r["threshold"] == 0.9
