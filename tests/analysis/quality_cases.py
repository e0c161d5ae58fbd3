"""Small hand-made ground truths and detections for the calibration / LRP / TIDE tests."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analysis.matching import ground_truth

DATA = Path(__file__).parent / "data"
FIXTURE_GT = DATA / "fixture_gt.json"
FIXTURE_DETS = DATA / "fixture_dets.json"


def write_gt(path: Path, boxes: list[tuple], n_images: int = 1, classes: int = 2) -> Path:
    """A COCO annotation file; ``boxes`` are ``(image_id, label, x1, y1, x2, y2)`` (label from 0,
    category id = label + 1)."""
    anns = [{"id": i + 1, "image_id": b[0], "category_id": b[1] + 1, "bbox": [b[2], b[3], b[4] - b[2], b[5] - b[3]],
             "area": (b[4] - b[2]) * (b[5] - b[3]), "iscrowd": 0} for i, b in enumerate(boxes)]
    data = {"images": [{"id": i, "width": 200, "height": 200, "file_name": f"{i}.png"} for i in range(n_images)],
            "annotations": anns, "categories": [{"id": k + 1, "name": f"c{k}"} for k in range(classes)]}
    path.write_text(json.dumps(data))
    return path


def dets_frame(rows: list[tuple]) -> pd.DataFrame:
    """Detections from ``(image_id, label, score, x1, y1, x2, y2)`` rows."""
    return pd.DataFrame(rows, columns=["image_id", "label", "score", "x1", "y1", "x2", "y2"])


def load_fixture() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The fixture (24 images with ground truth + 1 without, 4 classes, one crowd box, 242
    detections including a duplicate) as (ground truth, detections)."""
    gt = ground_truth(FIXTURE_GT)
    res = json.loads(FIXTURE_DETS.read_text())
    dets = pd.DataFrame([{"image_id": r["image_id"], "label": r["category_id"] - 1, "score": r["score"],
                          "x1": r["bbox"][0], "y1": r["bbox"][1], "x2": r["bbox"][0] + r["bbox"][2],
                          "y2": r["bbox"][1] + r["bbox"][3]} for r in res])
    return gt, dets
