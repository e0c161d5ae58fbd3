"""analysis.studies.explorer: the fast re-scoring equals analysis.scoring.rescore, the grid's metrics equal
analysis.measures.coco's, the browser's caps, bits and worst-image orderings hold (a synthetic dump with
many score ties and a per-image cap far below its survivors)."""
from __future__ import annotations

import json
import weakref
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.geometry.boxes import box_iou_np
from analysis.inputs.io import Dump
from analysis.measures import coco
from analysis.measures.coco import dump_coco_ap
from analysis.scoring import fast
from analysis.scoring.rescore import inference_kwargs, rescore
from analysis.studies import explorer as ex
from analysis.studies.tables import dump_wrong_survivors
from retconf.fusion import Fusion

KEY = ["image_id", "level", "anchor", "label"]


def _match(cands: pd.DataFrame, gt: dict) -> pd.DataFrame:
    """iou_same/gt_same and iou_any/gt_any/gt_area of each candidate against ``gt`` (image id ->
    [(x1, y1, x2, y2, label)])."""
    cols = {k: np.zeros(len(cands), t) for k, t in (("iou_same", np.float32), ("gt_same", np.int32),
                                                    ("iou_any", np.float32), ("gt_any", np.int32),
                                                    ("gt_area", np.float32))}
    for i, rows in cands.groupby("image_id").indices.items():
        g = np.array(gt[i], np.float64)
        iou = box_iou_np(cands.iloc[rows][["x1", "y1", "x2", "y2"]].to_numpy(np.float64), g[:, :4])
        same = np.where(cands.iloc[rows]["label"].to_numpy()[:, None] == g[None, :, 4], iou, -1.0)
        cols["gt_any"][rows], cols["iou_any"][rows] = iou.argmax(1), iou.max(1)
        cols["gt_same"][rows] = np.where(same.max(1) > 0, same.argmax(1), -1)
        cols["iou_same"][rows] = np.maximum(same.max(1), 0)
        area = (g[:, 2] - g[:, 0]) * (g[:, 3] - g[:, 1])
        cols["gt_area"][rows] = area[cols["gt_any"][rows]]
    return cands.assign(**cols)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two detectors (one without a quality score) on 6 images of 2 classes; scores rounded to
    0.02 (ties everywhere); per-image cap 5 against ~20 survivors; one image without a file."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("explore")
    (root / "annotations").mkdir()
    (root / "val").mkdir()
    images, anns, gt = [], [], {}
    for i in range(1, 7):
        images.append({"id": i, "file_name": f"{i:06d}.png", "width": 96, "height": 64})
        if i != 6:
            Image.fromarray(rng.integers(0, 255, (64, 96, 3), dtype=np.uint8)).save(root / "val" / f"{i:06d}.png")
        gt[i] = []
        for _ in range(3):
            x, y, w, h = (float(v) for v in (rng.integers(0, 60), rng.integers(0, 35), rng.integers(10, 30), rng.integers(10, 25)))
            label = int(rng.integers(0, 2))
            gt[i].append((x, y, x + w, y + h, label))
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": label + 1, "bbox": [x, y, w, h],
                         "area": w * h, "iscrowd": 0})
    ann = root / "annotations" / "instances_val.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns,
                               "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}))
    rows = []
    for i, boxes in gt.items():
        for k in range(120):
            x1, y1, x2, y2, label = boxes[k % 3]
            j = rng.normal(0, 4, 4)
            rows.append((i, k % 3, k, label if rng.random() < 0.8 else 1 - label, x1 + j[0], y1 + j[1],
                         x2 + j[2] + 1, y2 + j[3] + 1))
    cands = pd.DataFrame(rows, columns=["image_id", "level", "anchor", "label", "x1", "y1", "x2", "y2"])
    cands = cands.astype({"image_id": np.int64, "level": np.int8, "anchor": np.int32, "label": np.int16,
                          **{c: np.float32 for c in ("x1", "y1", "x2", "y2")}})
    cands = _match(cands, gt)
    meta = {"ann_file": str(ann), "classes": ["a", "b"], "cat_ids": [1, 2],
            "test_cfg": {"score_thr": 0.05, "nms_pre": 30, "nms": {"iou_threshold": 0.5, "type": "nms"},
                         "max_per_img": 5, "min_bbox_size": 0}}
    image_frame = pd.DataFrame({"image_id": np.arange(1, 7, dtype=np.int64), "num_gt": np.int32(3),
                                "positive_anchors": np.int32(1), "width": np.int32(96), "height": np.int32(64)})
    dumps = {}
    for name, fusion in (("plain", None), ("quality", {"mode": "pow", "alpha": 0.4, "thr": 0.5, "order": "before_topk"})):
        c = cands.assign(cls=np.float32(np.round(rng.uniform(0, 0.9, len(cands)) / 0.02) * 0.02),
                         obj=np.float32(np.round(rng.uniform(0.2, 1.0, len(cands)) / 0.02) * 0.02) if fusion else np.float32(np.nan))
        m = {**meta, **({"fusion": fusion} if fusion else {})}
        f = fusion or {"mode": "cls", "alpha": 0.0}
        dets = rescore(c, f["mode"], f["alpha"], **inference_kwargs(m))
        dumps[name] = Dump(root / name, m, c, dets, image_frame)
    return {"root": root, "dumps": dumps, "gt": gt}


def same_rows(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    return (len(a) == len(b) and np.array_equal(a[KEY].to_numpy(), b[KEY].to_numpy())
            and np.array_equal(a["score"].to_numpy(), b["score"].to_numpy()))


@pytest.mark.parametrize("alpha, nms_iou", [(0.0, 0.5), (0.4, 0.5), (0.7, 0.4), (0.9, 0.7), (0.3, 0.6)])
def test_fast_rescore_gives_analysis_rescores_detections(synthetic: dict, alpha: float, nms_iou: float) -> None:
    """Same rows, same order, same scores, with ties and a per-image cap that needs NMS beyond
    the first 4·cap boxes on some images; also without a cap."""
    dump = synthetic["dumps"]["quality"]
    prep = fast.prepare(dump.candidates, dump.meta)
    kw = {**inference_kwargs(dump.meta), "nms_iou": nms_iou}
    assert same_rows(fast.fast_rescore(prep, Fusion("pow", alpha), nms_iou), rescore(dump.candidates, "pow", alpha, **kw))
    assert same_rows(fast.fast_rescore(prep, Fusion("pow", alpha), nms_iou, None),
                     rescore(dump.candidates, "pow", alpha, **{**kw, "max_per_img": None}))
    out = fast.fast_rescore(prep, Fusion("pow", alpha), nms_iou)
    assert np.array_equal(dump.candidates.iloc[out["row"]][KEY].to_numpy(), out[KEY].to_numpy())


def test_evaluate_gives_coco_ap_and_curves_whose_mean_is_ap(synthetic: dict) -> None:
    dump = synthetic["dumps"]["quality"]
    gt = coco.dump_coco_truth(dump)
    stats, precision = coco.coco_precision(gt, dump.detections)
    assert stats == dump_coco_ap(dump, dump.detections)
    assert 0 < stats["AP"] < 1 and precision.shape == (10, 101, 2)
    curves = coco.pr_curves(precision)
    assert len(curves["iou50"]) == len(curves["mean"]) == 101
    assert np.mean(curves["mean"]) == pytest.approx(stats["AP"], abs=1e-4)  # both classes have values everywhere
    assert coco.coco_precision(gt, dump.detections)[0] == stats  # the loaded ground truth is reusable


def test_slider_grid_holds_the_exact_re_scored_metrics(synthetic: dict) -> None:
    """Every cell equals analysis.scoring.rescore + analysis.measures.coco at its α and NMS IoU; a detector without
    a quality score ranks by cls whatever α."""
    alphas, nms_ious = (0.0, 0.4, 0.9), (0.4, 0.6)
    data = ex.slider_data(synthetic["dumps"], alphas=alphas, nms_ious=nms_ious)
    assert data["alphas"] == list(alphas) and data["nms_ious"] == list(nms_ious) and len(data["recall"]) == 101
    json.dumps(data, allow_nan=False)  # JSON-able as the page embeds it
    by = {d["name"]: d for d in data["detectors"]}
    assert not by["plain"]["alpha_applies"] and by["quality"]["alpha_applies"]
    assert by["quality"]["deployed"] == {"rule": "obj^0.4·cls^0.6", "alpha": 0.4, "nms_iou": 0.5}
    for name, dump in synthetic["dumps"].items():
        for i, a in enumerate(alphas):
            for j, t in enumerate(nms_ious):
                mode = "pow" if name == "quality" else "cls"
                dets = rescore(dump.candidates, mode, a, **{**inference_kwargs(dump.meta), "nms_iou": t})
                want = dump_coco_ap(dump, dets)
                assert {m: by[name]["grid"][i][j][m] for m in ex.GRID_METRICS} == {m: want[m] for m in ex.GRID_METRICS}


def test_live_rescorer_equals_the_grid_and_takes_any_alpha(synthetic: dict) -> None:
    live = ex.LiveRescorer(synthetic["dumps"])
    cells, seconds = live.update(0.4, 0.5)
    dump = synthetic["dumps"]["quality"]
    assert cells["quality"]["AP"] == dump_coco_ap(dump, dump.detections)["AP"] and seconds >= 0
    cells, _ = live.update(0.37, 0.55)  # off the grid
    dets = rescore(dump.candidates, "pow", 0.37, **{**inference_kwargs(dump.meta), "nms_iou": 0.55})
    assert cells["quality"]["AP"] == dump_coco_ap(dump, dets)["AP"]


def test_worst_images_order_by_count_then_id_and_drop_zeros() -> None:
    counts = pd.Series([2, 0, 5, 2, 1], index=[10, 11, 3, 4, 7])
    assert ex.worst_images(counts, 3) == [[3, 5], [4, 2], [10, 2]]
    assert ex.worst_images(counts, 10) == [[3, 5], [4, 2], [10, 2], [7, 1]]
    assert ex.worst_images(pd.Series([0, 0], index=[1, 2])) == []


def test_image_counts_add_up_to_the_runs_wrong_survivors_and_count_misses_by_hand(synthetic: dict) -> None:
    dump = synthetic["dumps"]["quality"]
    counts = ex.image_counts(dump)
    assert list(counts["image_id"]) == list(range(1, 7))
    assert counts["wrong"].sum() == dump_wrong_survivors(dump)["wrong"]
    d = dump.detections
    for i, row in counts.set_index("image_id").iterrows():
        covered = {g for g, iou in zip(d[d.image_id == i].gt_same, d[d.image_id == i].iou_same) if g >= 0 and iou >= 0.5}
        assert row["missed"] == 3 - len(covered)


def test_browser_caps_candidates_marks_survivors_and_lists_the_worst(synthetic: dict) -> None:
    dumps = synthetic["dumps"]
    data = ex.browser_data(dumps, top_n=4, survivors_n=2, worst_n=3)
    json.dumps(data, allow_nan=False)
    assert [im["id"] for im in data["images"]] == list(range(1, 7))
    assert data["images"][5]["path"] is None and Path(data["images"][0]["path"]).is_file()  # image 6 has no file
    survivors = ex.rule_survivors(dumps["quality"])
    for im in data["images"]:
        assert len(im["gt"]) == 3
        for c in im["cands"].values():
            n = len(c["s"])
            assert n <= 4 + 3 * 2 and len(c["b"]) == 4 * n and all(len(c[k]) == n for k in "lvcoir")
            assert c["s"] == sorted(c["s"], reverse=True)
        c = im["cands"]["quality"]
        for bit, rule in enumerate(ex.RULES):  # each rule's top survivors are there, with their bit
            top = survivors[rule][survivors[rule]["image_id"] == im["id"]].head(2)
            boxes = {tuple(c["b"][4 * j:4 * j + 4]) for j in range(len(c["s"])) if c["r"][j] >> bit & 1}
            assert {tuple(np.round(r, 1)) for r in top[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)} <= boxes
        assert all(v is None for v in im["cands"]["plain"]["o"])
    for name in dumps:
        for key in ("wrong", "missed"):
            w = data["worst"][name][key]
            assert len(w) <= 3 and [n for _, n in w] == sorted((n for _, n in w), reverse=True) and all(n > 0 for _, n in w)


def test_the_explorer_reads_one_dump_at_a_time_and_gets_the_same_data(synthetic: dict) -> None:
    """retconf.explore gives the slider and the browser dumps read on demand (OnDemand): each pass
    reads each dump once and lets it go before the next, and the data equal those of held dumps."""
    from retconf.explore import OnDemand

    dumps = synthetic["dumps"]
    reads: list[str] = []
    live: list[str] = []

    def loader(name: str):
        def load():
            reads.append(name)
            live.append(name)
            assert len(live) == 1, f"{live} held at once"
            d = dumps[name]
            return type(d)(d.path, d.meta, d.candidates, d.detections, d.images, d.iou_population)
        return load

    def read(name: str) -> Callable[[], object]:
        inner = loader(name)

        def once():
            dump = inner()
            weakref.finalize(dump, live.remove, name)
            return dump
        return once

    on_demand = OnDemand({n: read(n) for n in dumps})
    assert ex.browser_data(on_demand, top_n=4, survivors_n=2) == ex.browser_data(dumps, top_n=4, survivors_n=2)
    assert ex.slider_data(on_demand, alphas=(0.0, 0.4), nms_ious=(0.5,)) == \
        ex.slider_data(dumps, alphas=(0.0, 0.4), nms_ious=(0.5,))
    assert reads == [*dumps, *dumps]


def test_browser_keeps_the_worst_images_when_the_test_set_is_larger_than_the_cap(synthetic: dict) -> None:
    counts = {n: ex.image_counts(d) for n, d in synthetic["dumps"].items()}
    chosen = ex.browser_images(counts, list(range(1, 7)), max_images=2, worst_n=1)
    assert len(chosen) == 2
    first = ex.worst_images(counts["plain"].set_index("image_id")["wrong"], 1) or \
        ex.worst_images(counts["plain"].set_index("image_id")["missed"], 1)
    assert first[0][0] in chosen
    assert ex.browser_images(counts, [3, 1, 2], max_images=5) == [1, 2, 3]


def test_nms_prefix_hints_change_the_time_not_the_survivors(synthetic: dict) -> None:
    """Survivors and scores are the same whatever the hints (too short, too long, stale from
    another NMS IoU), and the hints come back as each image's needed prefix."""
    dump = synthetic["dumps"]["quality"]
    prep = fast.prepare(dump.candidates, dump.meta)
    rows, score = fast.nms_inputs(prep, Fusion("pow", 0.4))
    want = fast.nms_rows(prep, rows, score, 0.5)
    for hints in ({}, {i: 1 for i in range(1, 7)}, {i: 10_000 for i in range(1, 7)}):
        got = fast.nms_rows(prep, rows, score, 0.5, hints=hints)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        assert set(hints) == set(range(1, 7)) and all(1 <= v <= 10_000 for v in hints.values())
    stale = fast.nms_rows(prep, rows, score, 0.7, hints=hints)
    assert np.array_equal(stale[0], fast.nms_rows(prep, rows, score, 0.7)[0])


def test_grid_cell_falls_back_to_faster_coco_eval_beyond_the_array_budget(synthetic: dict,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    dump = synthetic["dumps"]["quality"]
    gt = coco.dump_coco_truth(dump)
    fast = ex.grid_cell(gt, dump.detections)
    monkeypatch.setattr(coco.coco_fast, "MAX_CELLS", 0)
    assert not coco.coco_fast.fits(gt.truth, len(dump.detections))
    assert ex.grid_cell(gt, dump.detections) == fast
