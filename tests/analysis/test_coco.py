"""COCO evaluation (mmdet's AP, pycocotools' AP) and COCO results json as input: detections that
cannot belong to the ground truth are refused, naming the first; crowd regions are not matched as
ground truth; the live detections round-trip."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.measures.coco import coco_ap, detections_from_coco_results

GT = {
    "images": [{"id": 1, "file_name": "a.png", "width": 100, "height": 100},
               {"id": 2, "file_name": "b.png", "width": 100, "height": 100}],
    "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
                    {"id": 2, "image_id": 2, "category_id": 2, "bbox": [50, 50, 40, 40], "area": 1600, "iscrowd": 1}],
    "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
}


def _det(image_id=1, category_id=1, bbox=(10, 10, 20, 20), score=0.9) -> dict:
    return {"image_id": image_id, "category_id": category_id, "bbox": list(bbox), "score": score}


def _files(tmp_path: Path, results: list) -> tuple[str, str]:
    gt, res = tmp_path / "gt.json", tmp_path / "results.json"
    gt.write_text(json.dumps(GT))
    res.write_text(json.dumps(results))
    return str(res), str(gt)


RESULT_CASES = {
    "unknown image id": ([_det(), _det(image_id=999)], r"entry 1 has image_id 999, which .*gt.json does not have"),
    "unknown category id": ([_det(), _det(), _det(category_id=7)], r"entry 2 has category_id 7, which .*gt.json"),
    "NaN score": ([_det(score=float("nan"))], r"entry 0 has a non-finite score or bbox"),
    "infinite box": ([_det(), _det(bbox=(1, 2, float("inf"), 3))], r"entry 1 has a non-finite score or bbox"),
    # non-numeric fields: float("0.9") would quietly accept them
    "score as a string": ([_det(), _det(score="0.9")], r"entry 1 field 'score' must be a number, got str '0.9'"),
    "score as a bool": ([_det(score=True)], r"entry 0 field 'score' must be a number, got bool True"),
    "bbox with a string": ([_det(), _det(), _det(bbox=(10, "10", 20, 20))],
                           r"entry 2 field 'bbox' must be 4 numbers \[x, y, w, h\], got \[10, '10', 20, 20\]"),
    "bbox of 3 numbers": ([_det(bbox=(10, 10, 20))], r"entry 0 field 'bbox' must be 4 numbers"),
}


@pytest.mark.parametrize("case", RESULT_CASES)
def test_results_that_do_not_belong_to_the_ground_truth(case: str, tmp_path: Path) -> None:
    results, message = RESULT_CASES[case]
    res, gt = _files(tmp_path, results)
    with pytest.raises(ValueError, match=message) as e:
        detections_from_coco_results(res, gt)
    assert "results.json: " in str(e.value)


def test_crowd_regions_are_not_matched(tmp_path: Path) -> None:
    res, gt = _files(tmp_path, [_det(), _det(image_id=2, category_id=2, bbox=(50, 50, 40, 40))])
    out = detections_from_coco_results(res, gt)
    assert out["iou_same"].tolist() == [1.0, 0.0] and out["gt_same"].tolist() == [0, -1]


def test_live_detections_in_the_dump_give_mmdets_ap(conf_run: dict) -> None:
    d = conf_run["dump"]
    assert len(d.detections) > 0
    ours = coco_ap(d.detections, conf_run["ann"], d.meta["classes"])
    pairs = {name: (ours[name], conf_run["live"][f"coco/bbox_m{key}"]) for name, key in (
        ("AP", "AP"), ("AP50", "AP_50"), ("AP75", "AP_75"), ("APs", "AP_s"), ("APm", "AP_m"), ("APl", "AP_l"))}
    # 40 iterations from scratch score little (AP 0.001, AP50 0.003, APm 0.009 on one machine),
    # and whether anything scores at all is decided by the CPU's arithmetic: the agreement on a
    # real AP is tests/test_dump.py::test_rescored_ap_equals_mmdets_cocometric_with_shuffled_ids.
    # mmdet rounds its AP to 3 decimals: the same AP is within half a unit of the third decimal
    # (comparing both rounded would fail on a value that straddles a rounding edge).
    for name, (ap, live) in pairs.items():
        assert abs(ap - live) <= 5e-4 + 1e-9, name


def test_coco_results_json_round_trips_the_live_detections(conf_run: dict, tmp_path: Path) -> None:
    """A COCO results json of the live detections reads back to the same IoUs and the same AP."""
    d = conf_run["dump"]
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
