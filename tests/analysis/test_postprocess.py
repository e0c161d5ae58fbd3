"""Post-processing replayed on a dump equals live inference with the same ``test_cfg``, variant by
variant (the session's ``conf_run`` in tests/conftest.py: a small RetinaNet-Conf overfit on 16
images, dumped with score_thr 0.02, nms_pre 1000), and the rule dataclass's own checks."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from analysis.studies.postprocess import (
    BASELINE,
    NMS_KINDS,
    PostProcess,
    apply_rule,
    deployed_postprocess,
    dump_detections,
    exactness,
    grid_rules,
    page_rules,
)
from tests.conftest import DETECTION_COLUMNS, TINY_CONF, same_detections, threshold_in_gap

# every post-processing mmdet's test_cfg can give a BaseDenseHead, one at a time and combined
LIVE_VARIANTS = {
    "nms 0.3": PostProcess(iou_threshold=0.3),
    "nms 0.7": PostProcess(iou_threshold=0.7),
    # the per-image cap of 100 hides Soft-NMS's decayed boxes on this overfit model: 300 shows them
    "soft linear": PostProcess(kind="soft_nms_linear", iou_threshold=0.5, max_per_img=300),
    "soft gaussian": PostProcess(kind="soft_nms_gaussian", sigma=0.5, max_per_img=300),
    "soft gaussian sigma 0.2, min_score 0.05": PostProcess(kind="soft_nms_gaussian", sigma=0.2, min_score=0.05),
    "class-agnostic": PostProcess(class_agnostic=True),
    "class-agnostic soft linear 0.3": PostProcess(kind="soft_nms_linear", iou_threshold=0.3, class_agnostic=True),
    "max_per_img 20": PostProcess(max_per_img=20),
    "max_per_img 1000": PostProcess(max_per_img=1000),
    # a fixed threshold (0.3 once) passes all or none of a briefly trained model's detections
    # depending on the CPU that trained it (on AMD EPYC none scored above 0.3): the threshold is
    # taken from the dump itself, in a gap between its detection scores (tests.conftest.threshold_in_gap)
    "score_thr at the median detection": PostProcess(score_thr=0.5),
    "nms_pre 50": PostProcess(nms_pre=50),
}


@pytest.fixture(scope="module")
def live(conf_run: dict):
    """``live(test_cfg)``: the conf_run checkpoint's live detections (mmdet's own
    ``predict_by_feat`` → ``_bbox_post_process``, boxes rescaled to original pixels) on the dump's
    images with ``test_cfg`` as the head's; the backbone and neck run once per image."""
    import torch
    from mmengine.config import ConfigDict
    from mmengine.runner import Runner

    from retconf.dump import load_model

    cfg, model = load_model(str(TINY_CONF), conf_run["ckpt"], conf_run["data"] / "live_pp", conf_run["opts"],
                            str(conf_run["data"]), False)
    feats = []
    with torch.no_grad():
        for batch in Runner.build_dataloader(cfg.test_dataloader):
            data = model.data_preprocessor(batch, False)
            feats.append((model.extract_feat(data["inputs"]), data["data_samples"]))

    def run(test_cfg: dict) -> pd.DataFrame:
        model.bbox_head.test_cfg = ConfigDict(test_cfg)
        rows = []
        with torch.no_grad():
            for x, samples in feats:
                for s, p in zip(samples, model.bbox_head.predict(x, samples, rescale=True)):
                    rows.append(pd.DataFrame({"image_id": np.full(len(p), int(s.img_id)), "label": p.labels.numpy(),
                                              "score": p.scores.numpy(),
                                              **{c: p.bboxes[:, i].numpy() for i, c in enumerate(DETECTION_COLUMNS[3:])}}))
        return pd.concat(rows, ignore_index=True)

    run.head = model.bbox_head  # type: ignore[attr-defined]
    return run


def test_the_live_harness_reproduces_the_dumps_own_detections(conf_run: dict, live) -> None:
    d = conf_run["dump"]
    same_detections(live(d.meta["test_cfg"]), d.detections)
    rule = deployed_postprocess(d.meta)
    assert rule == BASELINE
    same_detections(dump_detections(d, rule), d.detections)


def test_threshold_in_gap_passes_some_but_not_all() -> None:
    for scores in (np.array([0.021, 0.03, 0.05, 0.051, 0.2]), np.array([0.9, 0.95, 0.99]), np.array([0.02, 0.5]),
                   np.array([0.1, 0.1, 0.1, 0.4, 0.40001, 0.40002])):
        thr = threshold_in_gap(scores)
        assert 0 < (scores > thr).sum() < len(scores)
        assert np.abs(scores - thr).min() >= 5e-4
    with pytest.raises(AssertionError, match="no gap"):
        threshold_in_gap(np.array([0.3, 0.3001]))


@pytest.mark.parametrize("name", list(LIVE_VARIANTS))
def test_replaying_a_post_processing_equals_live_inference_with_that_test_cfg(conf_run: dict, live, name: str) -> None:
    d, rule = conf_run["dump"], LIVE_VARIANTS[name]
    if name == "score_thr at the median detection":
        rule = replace(rule, score_thr=threshold_in_gap(d.detections["score"].to_numpy()))
    test_cfg = rule.as_test_cfg(d.meta["test_cfg"], d.meta["post_process"])
    mine, theirs = dump_detections(d, rule), live(test_cfg)
    assert mine.attrs["exact"] and mine.attrs["why"] == ""
    assert mine.attrs["postprocess"]["label"] == rule.label  # the rule travels with its detections
    same_detections(mine, theirs)
    # each variant changes something (else this test could not tell a rule that is ignored)
    with pytest.raises(AssertionError):
        same_detections(mine, dump_detections(d, BASELINE))


@pytest.mark.parametrize("fusion", [{"mode": "cls"}, {"mode": "pow", "alpha": 0.7}])
def test_other_rankings_under_soft_nms_equal_live_inference(conf_run: dict, live, fusion: dict) -> None:
    """Ranking rule and post-processing are independent axes: another fusion of the dump's
    grid under Soft-NMS is exact too (live: the head's fusion and test_cfg both changed)."""
    from mmengine.config import ConfigDict

    from retconf.fusion import Fusion

    d, rule = conf_run["dump"], PostProcess(kind="soft_nms_linear", iou_threshold=0.4)
    head = live.head
    deployed = head.fusion
    head.fusion = ConfigDict({**deployed, **fusion})
    try:
        theirs = live(rule.as_test_cfg(d.meta["test_cfg"], d.meta["post_process"]))
    finally:
        head.fusion = deployed
    mine = dump_detections(d, rule, Fusion.of(fusion))
    assert mine.attrs["exact"]
    same_detections(mine, theirs)


def test_a_lower_score_thr_or_larger_nms_pre_than_the_dumps_is_flagged_and_differs_from_live(conf_run: dict,
                                                                                              live) -> None:
    """Soft-NMS with a score threshold below the dump's (0.02) and a per-level top-k above its
    1000 keeps, live, decayed boxes whose pairs the dump never held: the replay says it is
    approximate, and it is (live returns more boxes)."""
    d = conf_run["dump"]
    rule = PostProcess(kind="soft_nms_gaussian", score_thr=0.001, nms_pre=3000, min_score=1e-4, max_per_img=100_000)
    mine = dump_detections(d, rule)
    assert not mine.attrs["exact"]
    assert "below the dump's 0.02" in mine.attrs["why"] and "exceeds the dump's 1000" in mine.attrs["why"]
    theirs = live(rule.as_test_cfg(d.meta["test_cfg"], d.meta["post_process"]))
    assert len(theirs) > len(mine)


def test_score_voting_equals_paas_own_score_voting(conf_run: dict) -> None:
    """No test_cfg gives RetinaNet score voting (only PAA votes), so the replay's voting is
    checked against mmdet's ``PAAHead.score_voting`` on the same NMS output, image by image."""
    from types import SimpleNamespace

    import torch
    from mmcv.ops import batched_nms
    from mmdet.models.dense_heads.paa_head import PAAHead

    from analysis.scoring.rescore import deployed_rule, inference_kwargs, select_candidates

    d = conf_run["dump"]
    rule = PostProcess(score_voting=True)
    assert rule.as_test_cfg(d.meta["test_cfg"], d.meta["post_process"]) is None
    assert rule.as_test_cfg(d.meta["test_cfg"], {"score_voting": True}) is not None  # a PAA head's
    mine = dump_detections(d, rule)
    kw = inference_kwargs(d.meta)
    pre = select_candidates(d.candidates, deployed_rule(d.meta), kw["score_thr"], kw["nms_pre"], kw["min_bbox_size"])
    k = len(d.meta["classes"])
    paa = SimpleNamespace(cls_out_channels=k)
    theirs = []
    for image_id, g in pre.groupby("image_id", sort=False):
        boxes = torch.tensor(g[["x1", "y1", "x2", "y2"]].to_numpy(np.float32))
        scores = torch.tensor(g["score"].to_numpy(np.float32))
        labels = torch.tensor(g["label"].to_numpy(np.int64))
        dets, keep = batched_nms(boxes, scores, labels, rule.nms_cfg())
        dets, keep = dets[:100], keep[:100]
        grid = torch.zeros(len(g), k)
        grid[torch.arange(len(g)), labels] = scores
        voted, voted_labels = PAAHead.score_voting(paa, dets, labels[keep], boxes, grid, kw["score_thr"])
        theirs.append(pd.DataFrame({"image_id": image_id, "label": voted_labels.numpy(), "score": voted[:, 4].numpy(),
                                    **{c: voted[:, i].numpy() for i, c in enumerate(DETECTION_COLUMNS[3:])}}))
    same_detections(mine, pd.concat(theirs, ignore_index=True))
    # voting moves boxes: some box of the voted set is in no place of the unvoted one (a check on
    # the sum of coordinates was within np.allclose's tolerance under ONEDNN_MAX_CPU_ISA=AVX512_CORE)
    boxes = lambda f: set(map(tuple, f[["image_id", *DETECTION_COLUMNS[3:]]].round(3).to_numpy().tolist()))  # noqa: E731
    assert boxes(mine) - boxes(dump_detections(d, BASELINE))


# ---------------------------------------------------------------- the rule itself


def test_as_test_cfg_writes_mmdets_nms_dicts() -> None:
    base = {"nms_pre": 1000, "min_bbox_size": 0, "score_thr": 0.05, "nms": {"type": "nms", "iou_threshold": 0.5},
            "max_per_img": 100}
    assert PostProcess().as_test_cfg(base) == base
    soft = PostProcess(kind="soft_nms_gaussian", iou_threshold=0.3, sigma=0.2, class_agnostic=True, max_per_img=300,
                       score_thr=0.1, nms_pre=500).as_test_cfg(base)
    assert soft == {"nms_pre": 500, "min_bbox_size": 0, "score_thr": 0.1, "max_per_img": 300,
                    "nms": {"type": "soft_nms", "iou_threshold": 0.3, "sigma": 0.2, "min_score": 1e-3,
                            "method": "gaussian", "class_agnostic": True}}
    assert PostProcess(max_per_img=None).as_test_cfg(base) is None  # mmdet always caps
    assert PostProcess.of_test_cfg(soft) == PostProcess(kind="soft_nms_gaussian", iou_threshold=0.3, sigma=0.2,
                                                        class_agnostic=True, max_per_img=300)


def test_labels_name_every_field_that_differs_from_the_baseline() -> None:
    assert BASELINE.label == "nms 0.5"
    assert PostProcess(kind="soft_nms_linear", iou_threshold=0.3, class_agnostic=True, score_voting=True,
                       max_per_img=None, score_thr=0.1, nms_pre=50).label == \
        "agnostic soft-linear 0.3 +vote no cap thr 0.1 pre 50"
    assert PostProcess(kind="soft_nms_gaussian", sigma=0.2).label == "soft-gaussian σ0.2"
    labels = [r.label for r in page_rules()]
    assert len(set(labels)) == len(labels)
    assert len(grid_rules()) == 15 and {r.kind for r in grid_rules()} == set(NMS_KINDS)


@pytest.mark.parametrize("kwargs, match", [
    ({"kind": "diou_nms"}, "kind 'diou_nms' is not one of"),
    ({"iou_threshold": 0.0}, "iou_threshold=0.0"),
    ({"iou_threshold": 1.5}, "iou_threshold=1.5"),
    ({"max_per_img": 0}, "max_per_img=0"),
    ({"max_per_img": True}, "max_per_img=True"),
    ({"score_thr": -0.1}, "score_thr=-0.1"),
    ({"sigma": 0.0}, "sigma=0.0"),
    ({"min_score": 1.0}, "min_score=1.0"),
])
def test_invalid_rules_are_refused_naming_the_value(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PostProcess(**kwargs)


def test_rules_are_frozen_and_hashable() -> None:
    import dataclasses

    with pytest.raises(dataclasses.FrozenInstanceError):
        BASELINE.iou_threshold = 0.3  # type: ignore[misc]
    assert len({BASELINE, PostProcess(), replace(BASELINE, iou_threshold=0.4)}) == 2


def _meta(score_thr: float = 0.05, nms_pre: int = 1000) -> dict:
    return {"test_cfg": {"score_thr": score_thr, "nms_pre": nms_pre, "nms": {"type": "nms", "iou_threshold": 0.5},
                         "max_per_img": 100, "min_bbox_size": 0},
            "fusion": {"mode": "pow", "alpha": 0.4, "thr": 0.5, "order": "before_topk"},
            "candidate_rule": {"score_thr": score_thr, "nms_pre": nms_pre,
                               "fusions": [{"mode": "pow", "alpha": 0.4, "thr": 0.5, "order": "before_topk"},
                                           {"mode": "cls", "alpha": 0.0, "thr": 0.5, "order": "before_topk"}]}}


def test_exactness_by_hand() -> None:
    from retconf.fusion import Fusion

    meta = _meta()
    assert exactness(PostProcess(kind="soft_nms_gaussian"), meta) == (True, "")
    assert exactness(PostProcess(score_thr=0.3, nms_pre=10), meta) == (True, "")
    assert exactness(PostProcess(), meta, Fusion("cls")) == (True, "")
    exact, why = exactness(PostProcess(score_thr=0.01), meta)
    assert not exact and "score_thr 0.01 is below the dump's 0.05" in why
    exact, why = exactness(PostProcess(nms_pre=-1), meta)
    assert not exact and "nms_pre -1 exceeds the dump's 1000" in why
    exact, why = exactness(PostProcess(), meta, Fusion("pow", 0.55))
    assert not exact and "outside the dump's candidate grid" in why


def test_apply_rule_by_hand_soft_nms_decays_and_agnostic_suppresses_across_classes() -> None:
    """Two boxes of one image, IoU 0.8 (10×10 and 10×8 at the same corner), scores 0.9 and 0.6:
    class-aware NMS keeps both when their labels differ, class-agnostic NMS keeps one, linear
    Soft-NMS (same label) keeps both with the second decayed to 0.6 · (1 − 0.8)."""
    from retconf.fusion import Fusion

    cands = pd.DataFrame({"image_id": [1, 1], "level": [0, 0], "anchor": [0, 1], "label": [0, 1],
                          "cls": [0.9, 0.6], "obj": [np.nan, np.nan], "x1": [0.0, 0.0], "y1": [0.0, 0.0],
                          "x2": [10.0, 10.0], "y2": [10.0, 8.0]}).astype({"cls": "float32", "obj": "float32"})
    base = {"score_thr": 0.05, "nms_pre": 1000, "nms_iou": 0.5, "max_per_img": 100, "min_bbox_size": 0,
            "selection": "pairs", "score_voting": False}
    assert len(apply_rule(cands, BASELINE, Fusion("cls"), base)) == 2
    agnostic = apply_rule(cands, PostProcess(class_agnostic=True), Fusion("cls"), base)
    assert agnostic["label"].tolist() == [0]
    same = cands.assign(label=[0, 0])
    soft = apply_rule(same, PostProcess(kind="soft_nms_linear", iou_threshold=0.5), Fusion("cls"), base)
    assert soft["score"].tolist() == pytest.approx([0.9, 0.6 * 0.2], rel=1e-5)
    assert apply_rule(same, BASELINE, Fusion("cls"), base)["score"].tolist() == pytest.approx([0.9])
    assert soft.attrs["postprocess"]["kind"] == "soft_nms_linear"


# ---------------------------------------------------------------- tables


def test_the_replay_shard_by_shard_gives_the_whole_dumps_rows(conf_run: dict) -> None:
    """Page 07 reads a dump one shard at a time: every rule of the page (Soft-NMS, score voting,
    no cap, a higher threshold...) gives the metrics the whole dump gives, to the bit."""
    from analysis.inputs.io import dump_shards
    from analysis.studies.postprocess import dump_postprocess_rows

    d = conf_run["dump"]
    shards = dump_shards(d.path)
    assert len(shards) > 1
    pd.testing.assert_frame_equal(dump_postprocess_rows("retinanet_conf", shards),
                                  dump_postprocess_rows("retinanet_conf", d), check_exact=True)


def test_dump_rows_record_each_rule_and_the_deployed_rows_equal_live_metrics(conf_run: dict) -> None:
    from analysis.measures.coco import coco_ap
    from analysis.studies.postprocess import dump_postprocess_rows

    d = conf_run["dump"]
    rules = [BASELINE, PostProcess(kind="soft_nms_linear", iou_threshold=0.3), PostProcess(score_thr=0.001)]
    rows = dump_postprocess_rows("retinanet_conf", d, rules)
    assert list(rows["ranking"].unique()) == ["cls", "deployed"] and len(rows) == 6
    assert rows["rule"].tolist()[:3] == [r.label for r in rules]
    assert rows["exact"].tolist() == [True, True, False, True, True, False]
    assert (rows[rows["rule"] == "soft-linear 0.3"]["kind"] == "soft_nms_linear").all()
    live = rows[(rows["ranking"] == "deployed") & (rows["rule"] == BASELINE.label)].iloc[0]
    assert live["AP"] == pytest.approx(coco_ap(d.detections, conf_run["ann"], d.meta["classes"])["AP"], abs=1e-9)
    assert live["after_nms"] == pytest.approx(len(d.detections) / len(d.images))
    assert live["oLRP"] <= live["best_LRP"] <= 1.0 and 0.0 <= live["best_F1"] <= 1.0


def _matched(scores, tp, iou, labels, npig: dict) -> pd.DataFrame:
    m = pd.DataFrame({"score": np.asarray(scores, float), "tp": np.asarray(tp, bool), "iou": np.asarray(iou, float),
                      "label": np.asarray(labels, int), "ignore": np.zeros(len(scores), bool)})
    m.attrs["npig"] = pd.Series(npig)
    return m


def test_threshold_curves_by_hand() -> None:
    """Class 0 (2 GT): TP 0.9 (IoU 0.75), FP 0.8, TP 0.6 (IoU 1.0); class 1 (1 GT): FP 0.7.
    At t = 0.9: TP 1, FP 0, F1 = 2/(1 + 0 + 3); LRP_0 = (0.25/0.5 + 0 + 1)/2 = 0.75, LRP_1 = 1.
    At t = 0.6: TP 2, FP 2, F1 = 4/7; LRP_0 = (0.5 + 1 + 0)/3 = 0.5, LRP_1 = (0 + 1 + 1)/2 = 1."""
    from analysis.measures.lrp import best_thresholds, class_olrp, threshold_curves

    m = _matched([0.9, 0.8, 0.6, 0.7], [True, False, True, False], [0.75, 0.0, 1.0, 0.0], [0, 0, 0, 1], {0: 2, 1: 1})
    c = threshold_curves(m)
    assert c["threshold"].tolist() == [0.9, 0.8, 0.7, 0.6]
    assert c["F1"].tolist() == pytest.approx([2 / 4, 2 / 5, 2 / 6, 4 / 7])
    assert c["LRP"].iloc[0] == pytest.approx((0.75 + 1) / 2) and c["LRP"].iloc[-1] == pytest.approx((0.5 + 1) / 2)
    best = best_thresholds(c)
    assert best == pytest.approx({"best_F1": 4 / 7, "F1_thr": 0.6, "best_LRP": 0.75, "LRP_thr": 0.6})
    # one class: the best shared threshold is that class's oLRP
    one = threshold_curves(_matched([0.9, 0.8, 0.6], [True, False, True], [0.75, 0.0, 1.0], [0, 0, 0], {0: 2}))
    olrp = class_olrp(np.array([0.9, 0.8, 0.6]), np.array([True, False, True]), np.array([0.75, 0.0, 1.0]), 2)
    assert best_thresholds(one)["best_LRP"] == pytest.approx(olrp["oLRP"])
    assert np.isnan(best_thresholds(threshold_curves(_matched([], [], [], [], {0: 2})))["best_F1"])


def _per_seed() -> pd.DataFrame:
    """Two seeds, one quality model; AP by (ranking, rule): cls 0.30 everywhere, deployed 0.32 at
    nms 0.5 and 0.35 at nms 0.3 (seed 1: all +0.01)."""
    rows = []
    for seed in (0, 1):
        for ranking in ("cls", "deployed"):
            for rule in ("nms 0.3", "nms 0.5", "soft-gaussian σ0.5"):
                ap = 0.30 if ranking == "cls" else {"nms 0.3": 0.35, "nms 0.5": 0.32, "soft-gaussian σ0.5": 0.33}[rule]
                rows.append({"seed": seed, "model": "conf", "ranking": ranking, "rule": rule, "AP": ap + 0.01 * seed,
                             "best_F1": 0.5, "F1_thr": 0.3, "best_LRP": 0.7, "LRP_thr": 0.3, "oLRP": 0.6})
    return pd.DataFrame(rows)


def test_effects_gain_and_interaction_by_hand() -> None:
    from analysis.studies.postprocess import (
        difference,
        ranking_gain,
        rule_effects,
        threshold_interaction,
        threshold_table,
    )

    ps = _per_seed()
    eff = rule_effects(ps, "AP").set_index(["ranking", "rule"])
    assert eff.loc[("deployed", "nms 0.3"), "mean"] == pytest.approx(0.03)
    assert eff.loc[("deployed", "nms 0.3"), "per_seed"] == "+0.0300, +0.0300"
    assert eff.loc[("cls", "soft-gaussian σ0.5"), "mean"] == pytest.approx(0.0)
    gain = ranking_gain(ps).set_index(["rule", "seed"])["gain"]
    assert gain[("nms 0.5", 1)] == pytest.approx(0.02)
    inter = threshold_interaction(ps, thresholds=(0.3, 0.5))
    assert inter["iou_threshold"].tolist() == [0.3, 0.3, 0.5, 0.5]
    assert inter["interaction"].tolist() == pytest.approx([0.03, 0.03, 0.0, 0.0])
    d = difference(ps, "AP", {"ranking": "deployed", "rule": "nms 0.3"}, {"ranking": "cls", "rule": "nms 0.3"})
    assert d.tolist() == pytest.approx([0.05, 0.05]) and d.index.tolist() == [0, 1]
    missing = difference(ps[~((ps["seed"] == 1) & (ps["ranking"] == "cls"))], "AP",
                         {"ranking": "deployed", "rule": "nms 0.5"}, {"ranking": "cls", "rule": "nms 0.5"})
    assert missing.iloc[0] == pytest.approx(0.02) and np.isnan(missing.iloc[1])  # named, not dropped
    assert len(threshold_table(ps)) == 4


def test_sweep_equals_apply_rule_cell_by_cell(conf_run: dict) -> None:
    from analysis.scoring.rescore import inference_kwargs
    from analysis.studies.postprocess import sweep
    from retconf.fusion import Fusion

    d = conf_run["dump"]
    base = inference_kwargs(d.meta)
    fusions = [Fusion("cls"), Fusion("pow", 0.4)]
    rules = [BASELINE, PostProcess(kind="soft_nms_linear", iou_threshold=0.3), PostProcess(score_thr=0.3)]
    cells = list(sweep(d.candidates, fusions, rules, base))
    assert [(f, r) for f, r, _ in cells] == [(f, r) for f in fusions for r in rules]
    for f, r, dets in cells:
        pd.testing.assert_frame_equal(dets, apply_rule(d.candidates, r, f, base))
