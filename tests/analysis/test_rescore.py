"""Re-scoring a dump reproduces live inference (a small RetinaNet-Conf overfit on 16 images, the
session's ``conf_run`` in tests/conftest.py; the dump's own tests are in tests/test_dump.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from analysis.rescore import coco_ap, rescore, inference_kwargs
from tests.conftest import OTHER_ALPHAS, same_detections


def test_live_detections_in_the_dump_give_mmdets_ap(conf_run: dict) -> None:
    d = conf_run["dump"]
    assert len(d.detections) > 0
    ours = coco_ap(d.detections, conf_run["ann"], d.meta["classes"])
    pairs = {name: (ours[name], conf_run["live"][f"coco/bbox_m{key}"]) for name, key in (
        ("AP", "AP"), ("AP50", "AP_50"), ("AP75", "AP_75"), ("APs", "AP_s"), ("APm", "AP_m"), ("APl", "AP_l"))}
    # zeros would match detections that find nothing: some of mmdet's numbers must be positive
    # (40 iterations from scratch score little: AP 0.001, AP50 0.003, APm 0.009 here)
    assert max(live for _, live in pairs.values()) > 0
    for name, (ap, live) in pairs.items():
        assert round(ap, 3) == round(live, 3), name  # mmdet rounds its AP to 3 decimals


def test_rescoring_with_the_deployed_fusion_reproduces_live_inference(conf_run: dict) -> None:
    d = conf_run["dump"]
    redone = rescore(d.candidates, "pow", 0.4, **inference_kwargs(d.meta))
    ap_rescored = coco_ap(redone, conf_run["ann"], d.meta["classes"])["AP"]
    ap_live = coco_ap(d.detections, conf_run["ann"], d.meta["classes"])["AP"]
    assert round(ap_rescored, 4) == round(ap_live, 4)
    same_detections(redone, d.detections)  # stronger than AP: the very same detections


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
    d, live = conf_run["dump"], conf_run["live_dumps"]["pow_thr"].detections
    same_detections(rescore(d.candidates, "pow_thr", 0.4, 0.5, **inference_kwargs(d.meta)), live)


def test_preselect_order_by_hand() -> None:
    """One level, nms_pre 1: fused first, B (cls 0.8, obj 0.9) wins; by cls first, A (cls 0.9,
    obj 0.1) is kept and then fused to 0.1^0.4 * 0.9^0.6."""
    import pandas as pd

    from analysis.rescore import preselect

    cands = pd.DataFrame({"image_id": [1, 1], "level": [0, 0], "anchor": [0, 1], "label": [0, 0],
                          "cls": [0.9, 0.8], "obj": [0.1, 0.9], "x1": [0.0, 0.0], "y1": [0.0, 0.0],
                          "x2": [9.0, 9.0], "y2": [9.0, 9.0]}).astype({"cls": "float32", "obj": "float32"})
    before = preselect(cands, "pow", 0.4, 0.5, 0.05, nms_pre=1)
    after = preselect(cands, "pow", 0.4, 0.5, 0.05, nms_pre=1, order="after_topk")
    assert list(before["anchor"]) == [1] and before["score"].item() == pytest.approx(0.9 ** 0.4 * 0.8 ** 0.6, rel=1e-5)
    assert list(after["anchor"]) == [0] and after["score"].item() == pytest.approx(0.1 ** 0.4 * 0.9 ** 0.6, rel=1e-5)


def test_select_rows_orders_by_image_level_and_rank_with_ties_in_input_order() -> None:
    import numpy as np

    from analysis.rescore import select_rows

    image = np.array([2, 1, 1, 1, 1, 2, 1])
    level = np.array([0, 1, 0, 0, 0, 0, 1])
    rank = np.array([0.9, 0.7, 0.5, 0.5, 0.04, 0.3, 0.8], dtype=np.float32)
    # image 1 level 0: rows 2, 3 (tie: input order), row 4 under score_thr; level 1: 6 (0.8), 1 (0.7)
    assert select_rows(image, level, rank, 0.05, nms_pre=0).tolist() == [2, 3, 6, 1, 0, 5]
    assert select_rows(image, level, rank, 0.05, nms_pre=1).tolist() == [2, 6, 0]
    assert select_rows(image, level, rank, 0.95, nms_pre=1).tolist() == []


def test_fusion_table_and_coco_results_input(conf_run: dict, tmp_path: Path) -> None:
    import json

    from analysis.rescore import detections_from_coco_results, fusion_table

    d = conf_run["dump"]
    table = fusion_table(d.candidates, conf_run["ann"], d.meta["classes"], **inference_kwargs(d.meta))
    assert table["fusion"].tolist() == ["cls", "cls(obj>0.5)", "cls*obj", "cls*obj(obj>0.5)",
                                      "product(alpha=0.4;obj>0.5)", "product(alpha=0.4)"]
    # a COCO results json of the live detections round-trips to the same IoUs and the same AP
    det = d.detections
    results = [{"image_id": int(r.image_id), "category_id": int(r.label) + 1,
                "bbox": [float(r.x1), float(r.y1), float(r.x2 - r.x1), float(r.y2 - r.y1)],
                "score": float(r.score)} for r in det.itertuples()]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results))
    back = detections_from_coco_results(str(path), conf_run["ann"])
    assert len(back) == len(det)
    assert abs(back["iou_same"].to_numpy() - det["iou_same"].to_numpy()).max() < 1e-4
    assert coco_ap(back, conf_run["ann"])["AP"] == pytest.approx(coco_ap(det, conf_run["ann"], d.meta["classes"])["AP"])


def test_faster_coco_eval_agrees_with_pycocotools(conf_run: dict) -> None:
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    d = conf_run["dump"]
    ours = coco_ap(d.detections, conf_run["ann"], d.meta["classes"])
    res = [{"image_id": int(r.image_id), "category_id": int(r.label) + 1,
            "bbox": [float(r.x1), float(r.y1), float(r.x2 - r.x1), float(r.y2 - r.y1)],
            "score": float(r.score)} for r in d.detections.itertuples()]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(conf_run["ann"])
        ev = COCOeval(gt, gt.loadRes(res), "bbox")
        ev.evaluate(), ev.accumulate(), ev.summarize()
    for i, name in enumerate(["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR"]):
        assert ours[name] == pytest.approx(float(ev.stats[i]), abs=1e-6), name


def test_alpha_table_layout(conf_run: dict) -> None:
    from analysis.rescore import alpha_table

    d = conf_run["dump"]
    table = alpha_table({"retinanet_conf": d, "again": d}, alphas=[0.0, 0.4])
    assert list(table.columns[:3]) == ["alpha", "model", "AP"]
    assert table[["alpha", "model"]].values.tolist() == [[0.0, "again"], [0.0, "retinanet_conf"],
                                                         [0.4, "again"], [0.4, "retinanet_conf"]]


