"""A COCO results json from any detector: detections that cannot belong to the ground truth are
refused, naming the first; crowd regions are not matched as ground truth."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from analysis.rescore import detections_from_coco_results

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
