"""analysis.measures.coco_fast: every value equal to faster-coco-eval's (bit for bit) on detection sets
with crowds, score ties, a category without ground truth, more than 100 detections in one
(image, category), images without ground truth and detections of unknown images or categories."""
from __future__ import annotations

import numpy as np
import pytest
from faster_coco_eval import COCO, COCOeval_faster

from analysis.measures import coco_fast as cf


def reference(coco: COCO, dets: np.ndarray, cats: list[int]) -> tuple[dict, np.ndarray]:
    """faster-coco-eval on ``dets`` (rows: image_id, x, y, w, h, score, category_id)."""
    ev = COCOeval_faster(coco, coco.loadRes(dets), "bbox", print_function=lambda *a, **k: None)
    ev.params.imgIds = coco.getImgIds()
    ev.params.catIds = cats
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    s = ev.stats
    return ({"AP": s[0], "AP50": s[1], "AP75": s[2], "AR": s[8]},
            np.asarray(ev.eval["precision"])[:, :, :, 0, -1])


def dataset(seed: int, crowd_p: float, step: float) -> tuple[COCO, np.ndarray, list[int]]:
    """A random COCO set (image ids 1, 4, 7, …; some images empty; the last category has no
    ground truth) and detections near its boxes, scores rounded to ``step`` (ties)."""
    rng = np.random.default_rng(seed)
    images = [{"id": 3 * i + 1, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in range(15)]
    anns = []
    for im in images:
        for _ in range(int(rng.integers(0, 8))):
            (x, y), (w, h) = rng.integers(0, 80, 2).astype(float), rng.integers(2, 30, 2).astype(float)
            anns.append({"id": len(anns) + 1, "image_id": im["id"], "category_id": int(rng.integers(1, 4)),
                         "bbox": [x, y, w, h], "area": w * h * float(rng.uniform(0.5, 1.0)),
                         "iscrowd": int(rng.random() < crowd_p)})
    cats = [1, 2, 3, 4]
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": c, "name": str(c)} for c in cats]}
    coco.createIndex()
    rows = []
    for im in images:
        mine = [a for a in anns if a["image_id"] == im["id"]]
        for _ in range(int(rng.integers(0, 140))):
            if mine and rng.random() < 0.7:
                a = mine[int(rng.integers(len(mine)))]
                x, y, w, h = np.asarray(a["bbox"]) + rng.normal(0, 2, 4)
                c = a["category_id"] if rng.random() < 0.8 else int(rng.integers(1, 5))
            else:
                (x, y), (w, h), c = rng.uniform(0, 80, 2), rng.uniform(1, 30, 2), int(rng.integers(1, 5))
            rows.append([im["id"], x, y, max(w, 0.5), max(h, 0.5), np.round(rng.random() / step) * step, c])
    # 120 detections of one category in one image: the per-(image, category) cut at 100
    for j in range(120):
        rows.append([images[0]["id"], 10 + j % 7, 10, 20, 20, np.round((j % 13) / 13 / step) * step, 1])
    return coco, np.asarray(rows, np.float64), cats


def fast(coco: COCO, dets: np.ndarray, cats: list[int]) -> tuple[dict, np.ndarray]:
    return cf.array_precision(cf.truth(coco, cats), dets[:, 0].astype(np.int64), dets[:, 6].astype(np.int64),
                       dets[:, 5], dets[:, 1:5])


@pytest.mark.parametrize("seed, crowd_p, step", [(0, 0.0, 0.05), (1, 0.2, 0.05), (2, 0.2, 1e-3), (3, 0.3, 1e-9),
                                                 (4, 0.0, 0.25)])
def test_equals_faster_coco_eval_bit_for_bit(seed: int, crowd_p: float, step: float) -> None:
    coco, dets, cats = dataset(seed, crowd_p, step)
    want, want_precision = reference(coco, dets, cats)
    got, precision = fast(coco, dets, cats)
    assert np.array_equal(precision, want_precision)
    assert got == {k: float(v) for k, v in want.items()}
    assert (precision[:, :, 3] == -1).all() and 0 < got["AP"] < 1  # category 4 has no ground truth


def test_detections_outside_the_ground_truth_are_left_out_and_subsets_evaluate() -> None:
    coco, dets, cats = dataset(5, 0.2, 0.01)
    stray = np.array([[999, 1, 1, 10, 10, 0.99, 1], [1, 1, 1, 10, 10, 0.99, 77]], np.float64)
    (with_stray, p1), (without, p2) = fast(coco, np.r_[dets, stray], cats), fast(coco, dets, cats)
    assert with_stray == without and np.array_equal(p1, p2)
    got, precision = fast(coco, dets[:0], cats)  # no detections: zero where there is ground truth
    assert got["AP"] == 0.0 and got["AR"] == 0.0 and precision.shape == (10, 101, 4)
    one, _ = fast(coco, dets, [2])  # one category
    assert one == {k: float(v) for k, v in reference(coco, dets, [2])[0].items()}


def test_fits_bounds_the_iou_cells() -> None:
    coco, dets, cats = dataset(0, 0.0, 0.05)
    t = cf.truth(coco, cats)
    most = int(np.bincount(t.pair).max())
    assert cf.fits(t, cf.MAX_CELLS // most) and not cf.fits(t, cf.MAX_CELLS // most + 1)
