"""analysis/measures/bootstrap.py: COCO AP with image weights, and the paired image bootstrap."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.measures.bootstrap import match_all, paired_bootstrap, weighted_ap
from analysis.measures.coco import coco_ap
from tests.analysis.quality_cases import FIXTURE_GT, load_fixture


def test_unit_weights_give_coco_ap_and_weights_resample_images() -> None:
    gt, dets = load_fixture()  # 25 images, 4 classes, one crowd box, a duplicate detection
    m = match_all(dets, gt)
    ones = np.ones(len(m.image_ids))
    assert weighted_ap(m, ones) == pytest.approx(coco_ap(dets, str(FIXTURE_GT))["AP"], abs=1e-9)
    assert weighted_ap(m, 2 * ones) == pytest.approx(weighted_ap(m, ones))  # every image twice: same AP
    keep = np.isin(m.image_ids, m.image_ids[:12]).astype(float)  # a subset of the images, by weight 0
    sub_ids = set(m.image_ids[:12].tolist())
    sub_gt = gt[gt["image_id"].isin(sub_ids)]
    sub_gt.attrs["image_ids"] = m.image_ids[:12]
    assert weighted_ap(m, keep) == pytest.approx(weighted_ap(match_all(dets[dets["image_id"].isin(sub_ids)], sub_gt),
                                                             np.ones(12)), abs=1e-12)


def test_paired_bootstrap_of_a_detector_and_a_worse_copy() -> None:
    gt, dets = load_fixture()
    a = match_all(dets, gt)
    same = paired_bootstrap(a, a, resamples=50)
    assert same["delta"] == 0 and same["sd"] == 0 and same["sd_a"] > 0
    rng = np.random.default_rng(1)
    worse = dets.assign(score=dets["score"] * rng.uniform(0.2, 1.0, len(dets)))  # scrambled ranking
    out = paired_bootstrap(a, match_all(worse, gt), resamples=200, seed=3)
    assert out["lo"] <= out["delta"] <= out["hi"] and out["sd"] > 0 and out["images"] == 25
    with pytest.raises(ValueError, match="different images"):
        sub = gt.copy()
        sub.attrs["image_ids"] = gt.attrs["image_ids"][:5]
        paired_bootstrap(a, match_all(dets[dets["image_id"].isin(sub.attrs["image_ids"])], sub), resamples=2)


def test_spread_sources_splits_the_seed_variance_into_evaluation_and_training() -> None:
    from analysis.measures.bootstrap import spread_sources

    out = spread_sources([-0.008, 0.059, 0.02], [0.006, 0.007, 0.005])
    sd = float(np.std([-0.008, 0.059, 0.02], ddof=1))
    eval_var = (0.006 ** 2 + 0.007 ** 2 + 0.005 ** 2) / 3
    assert out["seeds"] == 3 and out["seed_sd"] == pytest.approx(sd)
    assert out["eval_sd"] == pytest.approx(np.sqrt(eval_var)) and out["eval_share"] == pytest.approx(eval_var / sd ** 2)
    assert out["train_sd"] ** 2 + eval_var == pytest.approx(sd ** 2)  # the two parts add up in variance
    assert out["seeds_for_target"] > 3 and out["seeds_to_resolve"] > 3
    # the evaluation noise alone exceeds the spread: all of it is evaluation, training floored at 0
    calm = spread_sources([0.010, 0.011, float("nan")], [0.02, 0.02, 0.02])
    assert calm["seeds"] == 2 and calm["eval_share"] == 1.0 and calm["train_sd"] == 0.0
    one = spread_sources([0.01], [0.005])
    assert one["seeds"] == 1 and np.isnan(one["seed_sd"]) and np.isnan(one["seeds_for_target"])
    with pytest.raises(ValueError, match="2 differences for 1 bootstrap"):
        spread_sources([0.01, 0.02], [0.005])
