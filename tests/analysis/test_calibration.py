"""Calibration metrics: hand-computed cases, the reference implementation's numbers, bad input."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.geometry.matching import coco_match, ground_truth
from analysis.measures import calibration as cal
from tests.analysis.quality_cases import dets_frame, load_fixture, write_gt

A, B, C, D = (0, 0, 10, 10), (50, 50, 60, 60), (100, 0, 110, 10), (0, 100, 10, 110)
FAR = (150, 150, 160, 160)


@pytest.fixture
def four_gt(tmp_path: Path):
    return ground_truth(write_gt(tmp_path / "gt.json", [(0, 0, *A), (0, 0, *B), (0, 0, *C), (0, 0, *D)]))


def test_bins_follow_the_reference() -> None:
    # first bin [0, 1/25], then (a, b]
    assert cal.bin_index(np.array([0.0, 0.04, 0.0400001, 0.08, 0.5, 1.0]), 25).tolist() == [0, 0, 1, 1, 12, 24]
    with pytest.raises(ValueError, match="n_bins"):
        cal.bin_index(np.array([0.5]), 0)
    with pytest.raises(ValueError, match="NaN"):
        cal.bin_index(np.array([np.nan]), 10)


def test_perfectly_calibrated_and_constant_scores(four_gt) -> None:
    # 3 TPs and 1 FP, all scored 0.75: precision 0.75 in the bin (0.7, 0.8] -> D-ECE 0
    dets = dets_frame([(0, 0, 0.75, *A), (0, 0, 0.75, *B), (0, 0, 0.75, *C), (0, 0, 0.75, *FAR)])
    assert cal.dece(coco_match(dets, four_gt, tau=0.5))["D-ECE"] == pytest.approx(0.0, abs=1e-12)
    # constant score 0.9 with 1 TP and 1 FP: |0.5 - 0.9|
    dets = dets_frame([(0, 0, 0.9, *A), (0, 0, 0.9, *FAR)])
    assert cal.dece(coco_match(dets, four_gt, tau=0.5))["D-ECE"] == pytest.approx(0.4)
    # LaECE: scores equal to the IoUs (1.0 and 0.8) -> 0 (the reference would report NaN here,
    # see the module docstring); a constant 0.5 on the same boxes -> mean |0.5 - IoU| over bins
    exact = dets_frame([(0, 0, 1.0, *A), (0, 0, 0.8, 50, 50, 60, 58)])
    assert cal.laece(coco_match(exact, four_gt, tau=0.0))["LaECE"] == pytest.approx(0.0, abs=1e-12)
    const = exact.assign(score=0.5)
    assert cal.laece(coco_match(const, four_gt, tau=0.0))["LaECE"] == pytest.approx(abs(0.5 - 0.9))


def test_one_tp_one_fp_one_missed_and_a_duplicate(four_gt) -> None:
    # TP (IoU 1) at 0.88, its duplicate at 0.86, a FP at 0.3; three objects missed (no effect on ECE)
    dets = dets_frame([(0, 0, 0.88, *A), (0, 0, 0.86, 0, 0, 10, 9), (0, 0, 0.3, *FAR)])
    m = coco_match(dets, four_gt, tau=0.5)
    assert m["tp"].tolist() == [True, False, False]
    # D-ECE bins: (0.8, 0.9] holds 0.86 and 0.88 with precision 1/2 -> 2/3 * |0.5 - 0.87|;
    # (0.2, 0.3] holds 0.3 with precision 0 -> 1/3 * 0.3 (netcal puts 0.3 in [0.3, 0.4): same sum)
    expected = 2 / 3 * 0.37 + 1 / 3 * 0.3
    assert cal.dece(m)["D-ECE"] == pytest.approx(expected)
    assert cal.expected_error(cal.reliability(m["score"], m["tp"].astype(float), 10)) == pytest.approx(expected)


def test_bin_edge_convention_of_netcal_and_the_reference(four_gt) -> None:
    # a score exactly on an edge (0.9): the reference's (0.8, 0.9] bin joins it with 0.85,
    # netcal's [0.9, 1.0] bin does not -- the one documented difference of the D-ECE value
    dets = dets_frame([(0, 0, 0.9, *A), (0, 0, 0.85, *FAR)])
    m = coco_match(dets, four_gt, tau=0.5)
    reference_way = cal.expected_error(cal.reliability(m["score"], m["tp"].astype(float), 10))
    assert reference_way == pytest.approx(abs(0.5 - 0.875))
    assert cal.dece(m)["D-ECE"] == pytest.approx((0.1 + 0.85) / 2)


def test_empty_and_bad_input(four_gt, tmp_path: Path) -> None:
    empty = coco_match(dets_frame([]), four_gt, tau=0.5)
    assert math.isnan(cal.dece(empty)["D-ECE"]) and math.isnan(cal.laece(empty)["LaECE"])
    no_gt = ground_truth(write_gt(tmp_path / "none.json", []))
    m = coco_match(dets_frame([(0, 0, 0.9, *A)]), no_gt, tau=0.0)
    assert math.isnan(cal.laece(m)["LaECE"]) and cal.laece(m)["classes"] == 0  # no class with ground truth
    with pytest.raises(ValueError, match="NaN"):
        coco_match(dets_frame([(0, 0, float("nan"), *A)]), four_gt)
    with pytest.raises(ValueError, match="shape"):
        cal.reliability(np.zeros(2), np.zeros(3), 10)
    with pytest.raises(ValueError, match="fit_fraction"):
        cal.split_images([1, 2, 3], 1.0)
    with pytest.raises(ValueError, match="2 images"):
        cal.split_images([1], 0.5)


def test_isotonic_recalibration_fixes_a_miscalibrated_score(tmp_path: Path) -> None:
    # 40 images, one object each, a right and a wrong detection per image, both scored 0.9:
    # precision 0.5 on either split, so the isotonic map learns 0.5
    gt = ground_truth(write_gt(tmp_path / "gt.json", [(i, 0, *A) for i in range(40)], n_images=40))
    dets = dets_frame([(i, 0, 0.9, *box) for i in range(40) for box in (A, FAR)])
    fit, ev = cal.split_images(range(40), 0.5, seed=0)
    raw = cal.dece_protocol(dets, gt, "score", fit, ev, threshold=0.0)
    iso = cal.dece_protocol(dets, gt, "score", fit, ev, recalibrate=True, threshold=0.0)
    assert raw["D-ECE"] == pytest.approx(0.4) and iso["D-ECE"] == pytest.approx(0.0, abs=1e-12)
    la_raw = cal.laece_protocol(dets, gt, "score", fit, ev)
    la_iso = cal.laece_protocol(dets, gt, "score", fit, ev, recalibrate=True)
    assert la_iso["LaECE"] < la_raw["LaECE"]


# Produced by fiveai/detection_calibration (mirror HEAD), run outside this repository (its
# pycocotools_lrp with the installed pycocotools' mask module) on tests/analysis/data/fixture_*.json:
# CalibrationCOCO(ann, ann, 'bbox', bins, tau, is_dece, False, 100) with cocoDt = loadRes(dets),
# evaluate(); prepare_input(); compute_single_errors(); accumulate_errors(), for
# (bins, tau, is_dece) = (25, 0.0, False) -> LaECE_0, (25, 0.5, False) -> LaECE at 0.5,
# (10, 0.5, True) -> D-ECE.
REFERENCE = {"LaECE_0": 0.14235332998865804, "LaECE_0.5": 0.12808426258700994, "D-ECE": 0.06523099173553717}
# The same code's protocol on the fixture split by analysis.measures.calibration.split_images(ids, 0.5, 0)
# into fit / eval annotation and detection files: DetectionCalibration(fit_ann, eval_ann)
# .fit(fit_dets, calibrator_type) / .transform(eval_dets, ...) then LaECE_0 as above; for D-ECE
# DetectionCalibration(..., is_dece=True, tau=0.5, bin_count=10).fit(..., classagnostic=True,
# threshold_type=[0.3, 0.3]).
REFERENCE_PROTOCOL = {("LaECE", False): 0.2762874762382583, ("LaECE", True): 0.15481396757529428,
                      ("D-ECE", False): 0.1917513513513514, ("D-ECE", True): 0.04471256038647345}


def test_agrees_with_detection_calibration_reference() -> None:
    gt, dets = load_fixture()
    assert cal.laece(coco_match(dets, gt, tau=0.0))["LaECE"] == pytest.approx(REFERENCE["LaECE_0"], abs=1e-12)
    assert cal.laece(coco_match(dets, gt, tau=0.5))["LaECE"] == pytest.approx(REFERENCE["LaECE_0.5"], abs=1e-12)
    assert cal.dece(coco_match(dets, gt, tau=0.5))["D-ECE"] == pytest.approx(REFERENCE["D-ECE"], abs=1e-12)


@pytest.mark.parametrize("recalibrate", [False, True])
def test_protocol_agrees_with_reference(recalibrate: bool) -> None:
    gt, dets = load_fixture()
    fit, ev = cal.split_images(gt.attrs["image_ids"], 0.5, 0)
    la = cal.laece_protocol(dets, gt, "score", fit, ev, recalibrate=recalibrate)
    de = cal.dece_protocol(dets, gt, "score", fit, ev, recalibrate=recalibrate)
    assert la["LaECE"] == pytest.approx(REFERENCE_PROTOCOL[("LaECE", recalibrate)], abs=1e-12)
    assert de["D-ECE"] == pytest.approx(REFERENCE_PROTOCOL[("D-ECE", recalibrate)], abs=1e-12)


def test_anchor_reliability_views_and_levels() -> None:
    score = np.array([0.1, 0.1, 0.9, 0.9])
    iou = np.array([0.0, 0.6, 0.7, 0.9])
    t = cal.anchor_reliability(None, score, iou, 10, by=np.array([0, 0, 1, 1]))
    prec = t[(t["view"] == "precision") & (t["group"] == "all")]
    assert prec.loc[prec["bin"] == 0, "mean_target"].item() == 0.5  # one of the two at 0.1 has IoU >= 0.5
    errors = cal.calibration_errors(t, by=("group", "view"))
    assert set(errors["group"]) == {"all", 0, 1}
    lvl1 = errors[(errors["group"] == 1) & (errors["view"] == "precision x IoU")]
    assert lvl1["ECE"].item() == pytest.approx(abs(0.8 - 0.9))


def test_anchor_reliability_equals_reliability_per_group() -> None:
    rng = np.random.default_rng(1)
    score, iou, level = rng.random(500), rng.random(500), rng.integers(0, 3, 500)
    t = cal.anchor_reliability(None, score, iou, 10, by=level)
    for group, mask in (("all", np.ones(500, bool)), (2, level == 2)):
        for view, target in (("precision", (iou[mask] >= 0.5).astype(float)), ("precision x IoU", iou[mask])):
            got = t[(t["group"] == group) & (t["view"] == view)].reset_index(drop=True)
            want = cal.reliability(score[mask], target, 10)
            pd.testing.assert_frame_equal(got[want.columns], want, check_dtype=False)


def test_platt_scaling() -> None:
    # scores 0.9, outcomes half right: the fitted map sends 0.9 to 0.5 (the BCE optimum)
    f = cal.fit_platt(np.full(100, 0.9), np.r_[np.ones(50), np.zeros(50)])
    assert f(np.array([0.9]))[0] == pytest.approx(0.5, abs=1e-4)
    # already calibrated Bernoulli scores: close to the identity
    rng = np.random.default_rng(0)
    s = rng.uniform(0.05, 0.95, 20000)
    g = cal.fit_platt(s, (rng.random(20000) < s).astype(float))
    assert np.allclose(g(np.array([0.2, 0.5, 0.8])), [0.2, 0.5, 0.8], atol=0.03)
    assert cal.fit_platt(np.zeros(0), np.zeros(0))(np.array([0.3]))[0] == 0.3
