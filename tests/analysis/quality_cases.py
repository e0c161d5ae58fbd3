"""Small hand-made ground truths and detections for the calibration / LRP / TIDE tests."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from analysis.geometry.matching import ground_truth

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


# Deployed rules of the other families (retconf.capture), for fake runs with ``families``.
FAMILY_FUSIONS = {"fcos": {"mode": "mul", "alpha": 0.0, "thr": 0.5, "order": "after_topk"}, "gfl": None,
                  "tood": {"mode": "geo", "alpha": 0.5, "thr": 0.5, "order": "before_topk"}}


def write_fake_run(out: Path, seeds: tuple = (0, 1), ablations: tuple = (), families: tuple = ()) -> Path:
    """A run directory (``summary.json`` + schema-valid dumps of the three detectors per seed,
    of the RetinaNet-Conf variants named in ``ablations``, e.g. ``conf_l1``, and of the
    :data:`FAMILY_FUSIONS` named in ``families``) made from the
    fixture, with random ``obj`` and IoUs: enough to execute the notebooks that need no
    training metrics (03, 05) without training anything. Its numbers mean nothing."""
    import numpy as np

    from analysis.inputs.schema import CANDIDATE_COLUMNS, DETECTION_COLUMNS, IMAGE_COLUMNS, SCHEMA_VERSION
    from retconf.dump import shard_record

    schema = {"candidates": CANDIDATE_COLUMNS, "detections": DETECTION_COLUMNS, "images": IMAGE_COLUMNS}
    fusions = {"retinanet": None, "iou_aware": {"mode": "pow", "alpha": 0.5, "thr": 0.5},
               "retinanet_conf": {"mode": "pow", "alpha": 0.4, "thr": 0.5}}
    fusions.update({name: fusions["retinanet_conf"] for name in ablations})
    fusions.update({name: FAMILY_FUSIONS[name] for name in families})
    for seed in seeds:
        for model, fusion in fusions.items():
            _, dets = load_fixture()
            rng = np.random.default_rng([seed, list(fusions).index(model)])
            n = len(dets)
            dets = dets.assign(cls=dets["score"], obj=rng.random(n) if fusion else np.nan,
                               iou_any=rng.random(n), gt_same=-1, gt_any=0, gt_area=1000.0)
            dets["iou_same"] = dets["iou_any"]
            if fusion:
                dets["score"] = dets["cls"] ** (1 - fusion["alpha"]) * dets["obj"] ** fusion["alpha"]
            if model in families:
                meta_extra = {"head": model.upper() + "Head", "quality": "centerness" if fusion else None}
            else:
                meta_extra = {}
            cands = pd.concat([dets, dets.assign(cls=dets["cls"] * 0.5, x1=dets["x1"] + 1)], ignore_index=True)
            cands = cands.assign(level=rng.integers(0, 3, len(cands)), anchor=np.arange(len(cands)) // 2,
                                 population=np.where(np.arange(len(cands)) % 2 == 0, 3, 1))  # selected; half by IoU too
            images = pd.DataFrame({"image_id": sorted(dets["image_id"].unique())}).assign(
                num_gt=1, positive_anchors=3, width=640, height=480)
            path = out / f"seed_{seed}" / "dumps" / model
            path.mkdir(parents=True, exist_ok=True)
            for kind, frame in (("candidates", cands), ("detections", dets), ("images", images)):
                frame[list(schema[kind])].astype(schema[kind]).to_parquet(path / f"{kind}-00000.parquet")
            meta = {"ann_file": str(FIXTURE_GT), "classes": ["c0", "c1", "c2", "c3"], "fusion": fusion,
                    "schema": schema, "num_shards": 1, "complete": True, "schema_version": SCHEMA_VERSION,
                    "num_images": len(images), "shards": [shard_record(path, 0)],
                    "test_cfg": {"score_thr": 0.05, "nms_pre": 1000, "nms": {"iou_threshold": 0.5}, "max_per_img": 100},
                    **meta_extra}
            (path / "metadata.json").write_text(json.dumps(meta))
    seconds = {f"seed_{s}/{m}/{stage}": 10.0 + s for s in seeds for m in fusions for stage in ("train", "dump")}
    (out / "summary.json").write_text(json.dumps({"seeds": list(seeds), "preset": "fixture", "seconds": seconds,
                                                  "metrics": {str(s): {m: {"coco/bbox_mAP": 0.5} for m in fusions} for s in seeds},
                                                  "detectors": [m for m in fusions if m not in ablations],
                                                  "ablations": list(ablations)}))
    return out
