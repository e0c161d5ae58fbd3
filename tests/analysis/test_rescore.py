"""Re-scoring a dump reproduces live inference (a small RetinaNet-Conf overfit on 16 images, the
session's ``conf_run`` in tests/conftest.py; the dump's own tests are in tests/test_dump.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.measures.coco import coco_ap
from analysis.scoring.rescore import inference_kwargs, rescore
from tests.conftest import OTHER_ALPHAS, same_detections


def test_rescoring_with_the_deployed_fusion_reproduces_live_inference(conf_run: dict) -> None:
    d = conf_run["dump"]
    redone = rescore(d.candidates, "pow", 0.4, **inference_kwargs(d.meta))
    ap_rescored = coco_ap(redone, conf_run["ann"], d.meta["classes"])["AP"]
    ap_live = coco_ap(d.detections, conf_run["ann"], d.meta["classes"])["AP"]
    assert round(ap_rescored, 4) == round(ap_live, 4)
    same_detections(redone, d.detections)  # stronger than AP: the very same detections


def test_rescoring_without_mmcv_reproduces_live_inference(conf_run: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    """The light install's NMS (analysis.geometry.nms without mmcv's ops) gives the live detections too."""
    import analysis.geometry.nms

    monkeypatch.setattr(analysis.geometry.nms, "mmcv_ops", lambda: None)
    d = conf_run["dump"]
    for alpha in (0.4, *OTHER_ALPHAS):
        same_detections(rescore(d.candidates, "pow", alpha, **inference_kwargs(d.meta)),
                        conf_run["live_dumps"][alpha].detections)


@pytest.mark.parametrize("alpha", OTHER_ALPHAS)
def test_rescoring_other_alphas_matches_live_reinference(conf_run: dict, alpha: float) -> None:
    d, live = conf_run["dump"], conf_run["live_dumps"][alpha].detections
    redone = rescore(d.candidates, "pow", alpha, **inference_kwargs(d.meta))
    ap = coco_ap(redone, conf_run["ann"], d.meta["classes"])["AP"]
    assert abs(ap - coco_ap(live, conf_run["ann"], d.meta["classes"])["AP"]) <= 0.001  # 0.1 AP points
    same_detections(redone, live)  # alphas of the dump's grid are exact


def test_rescoring_after_topk_matches_live_inference_in_that_order(conf_run: dict) -> None:
    d, live = conf_run["dump"], conf_run["live_dumps"]["after_topk"].detections
    redone = rescore(d.candidates, "pow", 0.4, order="after_topk", **inference_kwargs(d.meta))
    same_detections(redone, live)
    with pytest.raises(ValueError, match="order 'sideways'"):
        rescore(d.candidates, "pow", 0.4, order="sideways")


def test_rescoring_the_filtered_product_matches_live_inference(conf_run: dict) -> None:
    thr, d = conf_run["pow_thr"]  # 0.5 where it splits the model's anchors (tests/conftest.py)
    live = conf_run["live_dumps"]["pow_thr"].detections
    same_detections(rescore(d.candidates, "pow_thr", 0.4, thr, **inference_kwargs(d.meta)), live)


def test_select_candidates_order_by_hand() -> None:
    """One level, nms_pre 1: fused first, B (cls 0.8, obj 0.9) wins; by cls first, A (cls 0.9,
    obj 0.1) is kept and then fused to 0.1^0.4 * 0.9^0.6."""
    import pandas as pd

    from analysis.scoring.fusion import Fusion
    from analysis.scoring.rescore import select_candidates

    cands = pd.DataFrame({"image_id": [1, 1], "level": [0, 0], "anchor": [0, 1], "label": [0, 0],
                          "cls": [0.9, 0.8], "obj": [0.1, 0.9], "x1": [0.0, 0.0], "y1": [0.0, 0.0],
                          "x2": [9.0, 9.0], "y2": [9.0, 9.0]}).astype({"cls": "float32", "obj": "float32"})
    before = select_candidates(cands, Fusion("pow", 0.4, 0.5), 0.05, nms_pre=1)
    after = select_candidates(cands, Fusion("pow", 0.4, 0.5, "after_topk"), 0.05, nms_pre=1)
    assert list(before["anchor"]) == [1] and before["score"].item() == pytest.approx(0.9 ** 0.4 * 0.8 ** 0.6, rel=1e-5)
    assert list(after["anchor"]) == [0] and after["score"].item() == pytest.approx(0.1 ** 0.4 * 0.9 ** 0.6, rel=1e-5)


def test_select_rows_orders_by_image_level_and_rank_with_ties_in_input_order() -> None:
    import numpy as np

    from analysis.scoring.rescore import select_rows

    image = np.array([2, 1, 1, 1, 1, 2, 1])
    level = np.array([0, 1, 0, 0, 0, 0, 1])
    rank = np.array([0.9, 0.7, 0.5, 0.5, 0.04, 0.3, 0.8], dtype=np.float32)
    # image 1 level 0: rows 2, 3 (tie: input order), row 4 under score_thr; level 1: 6 (0.8), 1 (0.7)
    assert select_rows(image, level, rank, 0.05, nms_pre=1000).tolist() == [2, 3, 6, 1, 0, 5]
    # mmdet's filter_scores_and_topk: nms_pre ends a slice (-1 drops each level's last pair, 0 keeps none)
    assert select_rows(image, level, rank, 0.05, nms_pre=-1).tolist() == [2, 6, 0]
    assert select_rows(image, level, rank, 0.05, nms_pre=0).tolist() == []
    assert select_rows(image, level, rank, 0.05, nms_pre=1).tolist() == [2, 6, 0]
    assert select_rows(image, level, rank, 0.95, nms_pre=1).tolist() == []


LEGACY_META = {"fusion": {"mode": "pow", "alpha": 0.4, "thr": 0.5, "order": "before_topk", "legacy_level_bug": True},
               "test_cfg": {"score_thr": 0.05, "nms_pre": 1000, "nms": {"type": "nms", "iou_threshold": 0.5}}}


def test_the_deployed_rule_of_a_legacy_dump_is_refused_naming_file_and_field(tmp_path: Path) -> None:
    """A dump of a head with fusion.legacy_level_bug (product only on levels with more than
    nms_pre anchors) cannot be replayed with its deployed rule; every deployed path says so in
    one line naming the dump's metadata.json and the field. Explicit rules are untouched."""
    import re

    import pandas as pd

    from analysis.inputs.errors import RetconfError
    from analysis.inputs.io import Dump, DumpError
    from analysis.scoring.fusion import Fusion
    from analysis.scoring.rescore import LegacyRuleError, deployed_fusion, deployed_rule, select_candidates
    from analysis.studies.postprocess import BASELINE, dump_detections, exactness, rankings
    from analysis.studies.tables import deployed_ap, deployed_nms

    dump = Dump(tmp_path / "legacy", LEGACY_META, pd.DataFrame(), pd.DataFrame(), pd.DataFrame())
    where = re.escape(f"{tmp_path / 'legacy' / 'metadata.json'}: field 'fusion.legacy_level_bug'")
    for replay in (lambda: deployed_rule(dump.meta, dump.meta_file), lambda: deployed_fusion(dump.meta, dump.meta_file),
                   lambda: deployed_ap("m", dump), lambda: deployed_nms(dump), lambda: dump_detections(dump, BASELINE),
                   lambda: rankings(dump.meta, dump.meta_file)):
        with pytest.raises(LegacyRuleError, match=where) as error:
            replay()
        assert isinstance(error.value, DumpError) and isinstance(error.value, RetconfError)
    with pytest.raises(LegacyRuleError, match=re.escape("the dump's metadata.json: field 'fusion.legacy_level_bug'")):
        exactness(BASELINE, dump.meta)  # no path at hand: the default names the file all the same
    # the flag false (every dump of a quality head records it) or absent: the rule as before
    plain = {**LEGACY_META, "fusion": {**LEGACY_META["fusion"], "legacy_level_bug": False}}
    assert deployed_rule(plain) == deployed_rule({"fusion": {"mode": "pow", "alpha": 0.4}})
    assert deployed_fusion(plain)["legacy_level_bug"] is False
    # an explicit rule still re-scores the legacy dump's candidates
    cands = pd.DataFrame({"image_id": [1], "level": [4], "anchor": [0], "label": [0], "cls": [0.5], "obj": [0.9],
                          "x1": [0.0], "y1": [0.0], "x2": [9.0], "y2": [9.0]})
    cands = cands.astype({"cls": "float32", "obj": "float32"})
    assert len(select_candidates(cands, Fusion("pow", 0.2), 0.05, 1000)) == 1


@pytest.mark.parametrize("nms_pre", [1000, 7, 1, 0, -1, -5])
def test_select_rows_int64_key_sort_equals_its_lexsort_with_ties_and_shuffled_rows(nms_pre: int) -> None:
    """select_rows' int64-key sort (float32 ranks, score_thr ≥ 0) keeps the rows and order of its
    three-key lexsort (taken for the same images numbered from 2^28, beyond the key): ties
    (scores on a 0.01 grid) in row order, groups cut at nms_pre (a slice end when negative), rows
    not sorted by image."""
    from analysis.scoring.rescore import _fits_key, select_rows

    rng = np.random.default_rng(nms_pre + 10)
    n = 4000
    image, level = rng.integers(0, 9, n) * 7 + 3, rng.integers(0, 5, n)
    rank = np.float32(np.round(rng.random(n) / 0.01) * 0.01)
    far = image + (1 << 28)
    assert _fits_key(image, level, rank, 0.05) and not _fits_key(far, level, rank, 0.05)
    for thr in (0.05, 0.0, 0.5):
        want = select_rows(far, level, rank, thr, nms_pre)
        assert np.array_equal(select_rows(image, level, rank, thr, nms_pre), want)
