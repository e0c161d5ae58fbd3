"""Candidate capture for mmdet dense heads (retconf.capture): for each detector family, a dump
whose re-scoring with the head's own ranking rule reproduces its live detections, detection for
detection; and a dump of one of mmdet's own configs."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.inputs.io import load_dump
from analysis.scoring.rescore import deployed_fusion, inference_kwargs, rescore
from retconf.capture import UnsupportedHead, adapter_for, positive_priors
from retconf.dump import dump_predictions
from retconf.presets import FAMILY_DETECTORS, TINY_DETECTORS
from tests.conftest import ROOT

# Adapter and deployed rule (metadata "fusion") of each family.
EXPECTED = {
    "retinanet": ("base", None),
    "retinanet_conf": ("base", "pow"),
    "fcos": ("base", "mul"),
    "atss": ("base", "mul"),
    "gfl": ("gfl", None),
    "vfnet": ("base", None),
    "tood": ("tood", "geo"),
    "paa": ("paa", "geo"),
    "ddod": ("base", "mul"),
}
CONFIGS = {**TINY_DETECTORS, **FAMILY_DETECTORS}
COLS = ["image_id", "label", "x1", "y1", "x2", "y2"]


def _random_checkpoint(config: str, path: Path, seed: int = 0) -> str:
    """A checkpoint of the config's model with its own random initialisation (no backbone
    download), the classification bias lowered so that random scores pass ``score_thr``."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import retconf.plugin  # noqa: F401
    from retconf.runtime import load_config

    register_all_modules()
    cfg = load_config(config)
    cfg.model.backbone.init_cfg = None
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    model.init_weights()
    torch.save({"state_dict": model.state_dict(), "meta": {}}, path)
    return str(path)


def _options() -> dict:
    # random weights score about 0.01 everywhere: keep every pair, and a small top-k so the
    # per-level selection (not only NMS) decides what survives
    return {"model.test_cfg.score_thr": 0.0, "model.test_cfg.nms_pre": 40, "model.test_cfg.max_per_img": 30,
            "test_dataloader.num_workers": 0, "test_dataloader.persistent_workers": False}


def _rescored(dump) -> pd.DataFrame:
    """The dump's candidates re-scored with its deployed rule and its head's post-processing."""
    f = deployed_fusion(dump.meta)
    return rescore(dump.candidates, f["mode"], f["alpha"], f["thr"], order=f["order"], **inference_kwargs(dump.meta))


@pytest.mark.parametrize("name", list(EXPECTED))
def test_rescoring_the_dump_reproduces_live_detections(name: str, small_digits: Path, tmp_path: Path) -> None:
    config = str(ROOT / CONFIGS[name])
    ckpt = _random_checkpoint(config, tmp_path / "random.pth")
    dump_predictions(config, ckpt, tmp_path / "dump", str(small_digits), _options(), shard_size=8, progress=False)
    dump = load_dump(tmp_path / "dump")
    adapter, mode = EXPECTED[name]
    assert dump.meta["adapter"] == adapter
    assert (dump.meta["fusion"] or {}).get("mode") == mode
    live = dump.detections
    assert len(live) > 0
    again = _rescored(dump)
    if dump.meta["post_process"]["score_voting"]:
        # PAA: the same detections and scores; boxes moved by score voting to float32 rounding
        # (on levels with fewer anchors than nms_pre the vote sums in another order)
        keys = ["image_id", "label", "score"]
        a, b = live.sort_values(keys).reset_index(drop=True), again.sort_values(keys).reset_index(drop=True)
        assert len(a) == len(b)
        np.testing.assert_array_equal(a[keys].to_numpy(), b[keys].to_numpy())
        np.testing.assert_allclose(a[COLS[2:]].to_numpy(), b[COLS[2:]].to_numpy(), rtol=1e-5, atol=1e-4)
    else:
        a = live.sort_values(COLS).reset_index(drop=True)
        b = again.sort_values(COLS).reset_index(drop=True)
        assert len(a) == len(b)
        np.testing.assert_array_equal(a[COLS].to_numpy(), b[COLS].to_numpy())
        np.testing.assert_allclose(a["score"].to_numpy(), b["score"].to_numpy(), rtol=1e-6)
    # every live detection's cls (and quality, where the head has one) found among the candidates
    assert live["cls"].notna().all()
    assert live["obj"].notna().all() == (mode is not None)
    assert dump.candidates["obj"].notna().all() == (mode is not None)


def _mmdet_options(small_digits: Path, scale_step: int = 1) -> dict:
    """Run one of mmdet's COCO configs on the digits: its test pipeline at 192 px, our classes."""
    return {**_options(), f"test_dataloader.dataset.pipeline.{scale_step}.scale": (192, 192),
            "test_dataloader.dataset.metainfo": dict(classes=tuple("0123456789")),
            "test_dataloader.dataset.ann_file": "annotations/instances_val.json",
            "test_dataloader.dataset.data_prefix.img": "val/",
            "test_evaluator.ann_file": str(small_digits / "annotations" / "instances_val.json")}


# mmdet configs the project did not write: adapter, head, deployed rule (None: cls), selection.
# ATSS keeps BaseDenseHead's post-processing; PAA (top-k anchors by sqrt(cls·IoU),
# score voting after NMS) and YOLOX (its own predict_by_feat: one class per anchor,
# cls·objectness) have their own.
MMDET_CONFIGS = {
    "mmdet::atss/atss_r50_fpn_1x_coco.py": ("base", "ATSSHead", "mul", "pairs"),
    "mmdet::paa/paa_r50_fpn_1x_coco.py": ("paa", "PAAHead", "geo", "anchors"),
    "mmdet::yolox/yolox_tiny_8xb8-300e_coco.py": ("yolox", "YOLOXHead", "mul", "argmax"),
}


@pytest.mark.parametrize("config", list(MMDET_CONFIGS))
def test_dump_of_an_mmdet_config(config: str, small_digits: Path, tmp_path: Path) -> None:
    """mmdet's own configs (their backbones and test pipelines at 192 px), random weights, on
    the digits data: they dump and validate, and re-scoring the dump with the deployed rule and
    the head's post-processing gives live inference's detections (boxes moved by PAA's score
    voting: to float32 rounding, since on levels with fewer anchors than nms_pre the vote sums
    in another order)."""
    adapter, head, mode, selection = MMDET_CONFIGS[config]
    ckpt = _random_checkpoint(config, tmp_path / "random.pth")
    meta = dump_predictions(config, ckpt, tmp_path / "dump", str(small_digits), _mmdet_options(small_digits),
                            shard_size=8, progress=False)
    dump = load_dump(tmp_path / "dump")
    assert (meta["adapter"], meta["head"], (meta["fusion"] or {}).get("mode")) == (adapter, head, mode)
    assert meta["post_process"]["selection"] == selection
    assert len(dump.images) == meta["num_images"] > 0
    live = dump.detections
    assert len(live) > 0
    assert dump.candidates["obj"].between(0, 1).all() if mode else dump.candidates["obj"].isna().all()
    again = _rescored(dump)
    keys = ["image_id", "label", "score"]
    a = live.sort_values(keys).reset_index(drop=True)
    b = again.sort_values(keys).reset_index(drop=True)
    assert len(a) == len(b)
    np.testing.assert_array_equal(a[["image_id", "label"]].to_numpy(), b[["image_id", "label"]].to_numpy())
    np.testing.assert_array_equal(a["score"].to_numpy(), b["score"].to_numpy())
    box = ["x1", "y1", "x2", "y2"]
    if meta["post_process"]["score_voting"]:
        np.testing.assert_allclose(a[box].to_numpy(), b[box].to_numpy(), rtol=1e-5, atol=1e-3)
        candidate_boxes = set(map(tuple, dump.candidates[box].to_numpy()))
        assert any(tuple(row) not in candidate_boxes for row in a[box].to_numpy())  # voting moved boxes
    else:
        np.testing.assert_array_equal(a[box].to_numpy(), b[box].to_numpy())
    # each live detection's cls and quality found among the candidates (by box, or by score
    # where voting moved the box)
    assert live["cls"].notna().all() and live["obj"].notna().all() == (mode is not None)
    expected = {"geo": np.sqrt(live["cls"] * live["obj"]), "mul": live["cls"] * live["obj"], None: live["cls"]}[mode]
    np.testing.assert_allclose(live["score"], expected, rtol=1e-5)


def test_heads_without_an_adapter_are_refused() -> None:
    from mmdet.models.dense_heads import CenterNetHead, FoveaHead
    from mmdet.utils import register_all_modules

    register_all_modules()
    head = CenterNetHead(in_channels=32, feat_channels=32, num_classes=2)
    with pytest.raises(UnsupportedHead, match="CenterNetHead overrides predict_by_feat"):
        adapter_for(head)
    head = FoveaHead(num_classes=2, in_channels=32, feat_channels=32, stacked_convs=1)
    with pytest.raises(UnsupportedHead, match="FoveaHead._predict_by_feat_single is its own"):
        adapter_for(head)


def test_positive_priors_for_anchors_and_points() -> None:
    gt = torch.tensor([[10.0, 10.0, 30.0, 30.0]])
    anchors = torch.tensor([[10.0, 10.0, 30.0, 30.0], [0.0, 0.0, 8.0, 8.0], [12.0, 12.0, 30.0, 30.0]])
    assert positive_priors(anchors, gt) == 2
    points = torch.tensor([[20.0, 20.0], [5.0, 5.0], [29.0, 11.0]])
    assert positive_priors(points, gt) == 2
    assert positive_priors(points, gt[:0]) == 0


def test_detection_scores_find_the_candidate_within_rounding() -> None:
    """A head that folds its quality into the score after top-k returns only the product: the
    dump takes cls and obj from the candidate with the same label and box, within rounding (mmdet
    rescales by the reciprocal of the scale factor, the dump divides); none close: NaN."""
    from mmengine.structures import InstanceData

    from retconf.dump import detection_scores

    cands = {"x1": np.array([10.0, 10.0], np.float32), "y1": np.array([5.0, 5.0], np.float32),
             "x2": np.array([30.0, 30.0], np.float32), "y2": np.array([25.0, 25.0], np.float32),
             "label": np.array([1, 2]), "cls": np.array([0.8, 0.6], np.float32), "obj": np.array([0.5, 0.4], np.float32)}
    det = InstanceData(bboxes=torch.tensor([[10.00001, 5.0, 29.99999, 25.0], [50.0, 5.0, 70.0, 25.0]]),
                       labels=torch.tensor([2, 1]), scores=torch.tensor([0.24, 0.3]))
    cls, obj = detection_scores(det, cands, has_quality=True)
    assert cls[0] == pytest.approx(0.6) and obj[0] == pytest.approx(0.4) and np.isnan(cls[1]) and np.isnan(obj[1])
    cls, obj = detection_scores(det, cands, has_quality=False)  # RetinaNet, GFL: the score is cls
    assert cls.tolist() == pytest.approx([0.24, 0.3]) and np.isnan(obj).all()


def test_a_legacy_heads_dump_records_the_flag_and_refuses_its_deployed_rule(small_digits: Path,
                                                                           tmp_path: Path) -> None:
    """``fusion.legacy_level_bug`` (the original code: the product only on levels with more than
    nms_pre anchors) is no Fusion and the dump holds neither the levels' anchor counts nor that
    rule's candidates on the smaller ones: the metadata keeps the flag, the deployed rule is
    refused naming the metadata file and the field (the plain product it used to fall back to
    is not what the head returned), and explicit rules still re-score the dump."""
    from analysis.scoring.rescore import LegacyRuleError, deployed_rule
    from analysis.studies.postprocess import BASELINE, dump_detections
    from analysis.studies.tables import deployed_ap
    from retconf.errors import RetconfError

    config = str(ROOT / CONFIGS["retinanet_conf"])
    ckpt = _random_checkpoint(config, tmp_path / "random.pth")
    options = {**_options(), "model.bbox_head.fusion.legacy_level_bug": True}
    dump_predictions(config, ckpt, tmp_path / "dump", str(small_digits), options, shard_size=8, progress=False)
    dump = load_dump(tmp_path / "dump")
    assert dump.meta["fusion"]["legacy_level_bug"] is True
    assert dump.meta["fusion"]["mode"] == "pow" and dump.meta["fusion"]["alpha"] == 0.4
    where = f"{tmp_path / 'dump' / 'metadata.json'}: field 'fusion.legacy_level_bug'"
    for replay in (lambda: deployed_rule(dump.meta, dump.meta_file), lambda: deployed_fusion(dump.meta, dump.meta_file),
                   lambda: deployed_ap("conf", dump), lambda: dump_detections(dump, BASELINE)):
        with pytest.raises(LegacyRuleError, match=re.escape(where)) as error:
            replay()
        assert isinstance(error.value, RetconfError)  # the CLI prints it as one line
    # what the old fallback re-scored (the product on every level) is not the head's ranking
    live = dump.detections.sort_values(COLS).reset_index(drop=True)
    product = _rescore_fields(dump, "pow", 0.4).sort_values(COLS).reset_index(drop=True)
    assert len(live) != len(product) or not np.array_equal(live["score"].to_numpy(), product["score"].to_numpy())
    # explicit rules still re-score it
    assert len(_rescore_fields(dump, "pow", 0.2)) > 0 and len(_rescore_fields(dump, "cls", 0.0)) > 0


def _rescore_fields(dump, mode: str, alpha: float) -> pd.DataFrame:
    return rescore(dump.candidates, mode, alpha, **inference_kwargs(dump.meta))
