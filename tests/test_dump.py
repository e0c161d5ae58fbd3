"""``retconf dump`` in the right frame for any test pipeline, and one label → category rule.

The dump's IoU columns are checked against pycocotools' ``maskUtils.iou`` on the annotation
file's boxes (original-image pixels) for images resized by different factors in x and y, with
``LoadAnnotations`` before and after ``Resize``; the positive-anchor count against mmdet's own
assigner overlaps in the network's input frame.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from analysis.inputs.io import DumpError, load_dump
from retconf.dump import dump_predictions
from tests.conftest import ROOT, same_detections

CONF = ROOT / "experiments" / "retinanet-conf_r18-tiny_fpn_digits.py"
WIDTH, HEIGHT = 288, 160  # non-square originals, made from the 192×192 digits


def _resize_dataset(src: Path, out: Path) -> Path:
    """The val split of ``src`` resized to WIDTH×HEIGHT (boxes scaled alike), as a new dataset."""
    import cv2

    ann = json.loads((src / "annotations" / "instances_val.json").read_text())
    (out / "val").mkdir(parents=True)
    (out / "annotations").mkdir()
    for img in ann["images"]:
        sx, sy = WIDTH / img["width"], HEIGHT / img["height"]
        pixels = cv2.imread(str(src / "val" / img["file_name"]))
        cv2.imwrite(str(out / "val" / img["file_name"]), cv2.resize(pixels, (WIDTH, HEIGHT)))
        img.update(width=WIDTH, height=HEIGHT)
        for a in ann["annotations"]:
            if a["image_id"] == img["id"]:
                x, y, w, h = a["bbox"]
                a["bbox"] = [x * sx, y * sy, w * sx, h * sy]
                a["area"] = w * sx * h * sy
    (out / "annotations" / "instances_val.json").write_text(json.dumps(ann))
    return out


@pytest.fixture(scope="module")
def resized(small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A non-square dataset and a randomly initialised RetinaNet-Conf checkpoint."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import retconf.plugin  # noqa: F401  (registration: conftest imported retconf before mmengine was loaded)
    from retconf.runtime import load_config

    register_all_modules()
    base = tmp_path_factory.mktemp("resized")
    data = _resize_dataset(small_digits, base / "data")
    cfg = load_config(str(CONF), {"model.backbone.init_cfg": None})
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    ckpt = base / "random.pth"
    torch.save({"state_dict": model.state_dict(), "meta": {}}, ckpt)
    return {"data": data, "ckpt": str(ckpt), "base": base}


def _pipeline(scale: tuple[int, int], keep_ratio: bool, annotations_first: bool) -> list[dict]:
    load = [dict(type="LoadImageFromFile")]
    resize = [dict(type="Resize", scale=scale, keep_ratio=keep_ratio)]
    ann = [dict(type="LoadAnnotations", with_bbox=True)]
    pack = [dict(type="PackDetInputs", meta_keys=("img_id", "img_path", "ori_shape", "img_shape", "scale_factor"))]
    return load + (ann + resize if annotations_first else resize + ann) + pack


def _options(data: Path, pipeline: list[dict]) -> dict:
    return {"model.backbone.init_cfg": None, "model.test_cfg.score_thr": 0.0, "model.test_cfg.nms_pre": 100,
            "test_dataloader.num_workers": 0, "test_dataloader.persistent_workers": False,
            "test_dataloader.batch_size": 1,
            "test_dataloader.dataset.pipeline": pipeline,
            "test_evaluator.ann_file": str(data / "annotations" / "instances_val.json")}


# x and y scaled differently (no keep-ratio), and keep-ratio into a box of another shape
PIPELINES = {"xy 400x200 ann after": ((400, 200), False, False),
             "xy 400x200 ann before": ((400, 200), False, True),
             "keep-ratio 500x300 ann after": ((500, 300), True, False)}


@pytest.fixture(scope="module")
def dumps(resized: dict) -> dict:
    from retconf.dump import dump_predictions

    out = {}
    for name, (scale, keep, first) in PIPELINES.items():
        path = resized["base"] / name.replace(" ", "_")
        dump_predictions(str(CONF), resized["ckpt"], path, str(resized["data"]),
                         _options(resized["data"], _pipeline(scale, keep, first)), shard_size=4, progress=False)
        out[name] = load_dump(path)
    return out


def _expected_ious(df, ann_file: Path) -> tuple[np.ndarray, np.ndarray]:
    """iou_same / iou_any of each row from pycocotools on the file's original boxes."""
    from pycocotools import mask as mask_utils

    ann = json.loads(ann_file.read_text())
    cat_of_label = [c["id"] for c in ann["categories"]]
    same, any_ = np.zeros(len(df)), np.zeros(len(df))
    for image_id, rows in df.groupby("image_id"):
        gts = [a for a in ann["annotations"] if a["image_id"] == image_id and not a.get("iscrowd")]
        if not gts:
            continue
        dt = np.stack([rows.x1, rows.y1, rows.x2 - rows.x1, rows.y2 - rows.y1], 1).astype(np.float64)
        gt = np.array([a["bbox"] for a in gts], dtype=np.float64)
        iou = np.asarray(mask_utils.iou(dt, gt, [0] * len(gts)))
        cats = np.array([a["category_id"] for a in gts])
        wanted = np.array([cat_of_label[label] for label in rows.label])
        idx = df.index.get_indexer(rows.index)
        any_[idx] = iou.max(1)
        same[idx] = np.where(cats[None, :] == wanted[:, None], iou, 0).max(1)
    return same, any_


@pytest.mark.parametrize("name", list(PIPELINES))
def test_iou_columns_are_in_original_image_pixels(dumps: dict, resized: dict, name: str) -> None:
    d = dumps[name]
    ann_file = resized["data"] / "annotations" / "instances_val.json"
    assert (d.images["width"] == WIDTH).all() and (d.images["height"] == HEIGHT).all()
    for kind, df in (("candidates", d.candidates), ("detections", d.detections), ("iou_population", d.iou_population)):
        assert len(df) > 0 and (df["iou_any"] > (0.5 if kind != "detections" else 0.0)).any(), kind
        same, any_ = _expected_ious(df.reset_index(drop=True), ann_file)
        np.testing.assert_allclose(df["iou_any"].to_numpy(), any_, atol=2e-4, err_msg=f"{name} {kind}")
        np.testing.assert_allclose(df["iou_same"].to_numpy(), same, atol=2e-4, err_msg=f"{name} {kind}")
        assert (df["x2"] <= WIDTH + 1e-3).all() and (df["y2"] <= HEIGHT + 1e-3).all()  # clipped in the original frame


def test_the_iou_population_chooses_anchors_by_their_iou_alone(dumps: dict) -> None:
    """Every anchor whose box overlaps a ground truth with IoU ≥ IOU_POPULATION is recorded once,
    labelled with that ground truth's class, whatever its scores — also anchors no ranking rule
    keeps (so it selects on neither score); the rule-selected candidates stay as they were."""
    from analysis.inputs.schema import IOU_POPULATION

    d = dumps["xy 400x200 ann after"]
    pop, cands = d.iou_population, d.candidates
    assert d.meta["iou_population"] == IOU_POPULATION and len(pop) > 0
    assert (pop["iou_any"] >= IOU_POPULATION - 1e-6).all()
    assert not pop.duplicated(["image_id", "level", "anchor"]).any()  # one row per anchor
    assert (np.abs(pop["iou_same"] - pop["iou_any"]) < 1e-6).mean() > 0.99  # labelled with the overlapped class
    key = ["image_id", "level", "anchor", "label"]
    unselected = pop.merge(cands[key], on=key, how="left", indicator=True)["_merge"] == "left_only"
    assert unselected.any()  # anchors no rule hands to NMS are in it too
    assert "population" not in cands and "population" not in pop


def test_annotation_order_in_the_pipeline_does_not_change_the_dump(dumps: dict) -> None:
    a, b = dumps["xy 400x200 ann after"], dumps["xy 400x200 ann before"]
    for kind in ("candidates", "detections", "images", "iou_population"):
        pd_a, pd_b = getattr(a, kind), getattr(b, kind)
        assert pd_a.equals(pd_b), kind


@pytest.mark.parametrize("name", ["xy 400x200 ann after", "keep-ratio 500x300 ann after"])
def test_positive_anchors_match_mmdets_assigner_overlaps_in_the_input_frame(dumps: dict, resized: dict,
                                                                            name: str) -> None:
    """Independent count: mmdet's pipeline with LoadAnnotations *before* Resize gives ground
    truth in the input frame; the assigner's IoU calculator compares it with the anchors."""
    import torch
    from mmdet.registry import MODELS, TASK_UTILS
    from mmengine.runner import Runner

    from retconf.runtime import load_config

    scale, keep, _ = PIPELINES[name]
    cfg = load_config(str(CONF), _options(resized["data"], _pipeline(scale, keep, True)), str(resized["data"]))
    model = MODELS.build(cfg.model).eval()
    overlaps = TASK_UTILS.build(cfg.model.train_cfg.assigner).iou_calculator
    counts = {}
    for batch in Runner.build_dataloader(cfg.test_dataloader):
        data = model.data_preprocessor(batch, False)
        sample = data["data_samples"][0]
        strides = model.bbox_head.prior_generator.strides
        h, w = data["inputs"].shape[-2:]
        sizes = [(int(np.ceil(h / s[1])), int(np.ceil(w / s[0]))) for s in strides]
        anchors = torch.cat(model.bbox_head.prior_generator.grid_priors(sizes, device="cpu"))
        gt = sample.gt_instances.bboxes
        gt = gt.tensor if hasattr(gt, "tensor") else gt
        counts[int(sample.metainfo["img_id"])] = int((overlaps(anchors, gt).max(1).values > 0.5).sum()) if len(gt) else 0
    got = dumps[name].images.set_index("image_id")["positive_anchors"].to_dict()
    assert got == counts
    assert sum(counts.values()) > 0


# ------------------------------------------------------------------- labels to category ids
def _shuffled_categories(src: Path, out: Path) -> Path:
    """``src`` with non-contiguous category ids (id·7+3), the categories listed in another
    order than ``classes`` and one extra category without instances."""
    shutil.copytree(src, out)
    path = out / "annotations" / "instances_val.json"
    ann = json.loads(path.read_text())
    new_id = {c["id"]: c["id"] * 7 + 3 for c in ann["categories"]}
    cats = [dict(c, id=new_id[c["id"]]) for c in ann["categories"]]
    order = [3, 7, 0, 9, 1, 5, 2, 8, 4, 6]
    ann["categories"] = [cats[i] for i in order[:5]] + [{"id": 500, "name": "extra", "supercategory": "x"}] + \
        [cats[i] for i in order[5:]]
    for a in ann["annotations"]:
        a["category_id"] = new_id[a["category_id"]]
    path.write_text(json.dumps(ann))
    return out


def test_category_ids_follow_mmdets_dataset(small_digits: Path, tmp_path: Path) -> None:
    from mmdet.datasets import CocoDataset

    from analysis.measures.coco import category_ids

    data = _shuffled_categories(small_digits, tmp_path / "d")
    classes = tuple(str(i) for i in range(10))
    ds = CocoDataset(data_root=str(data), ann_file="annotations/instances_val.json", metainfo={"classes": classes},
                     data_prefix={"img": "val/"}, test_mode=True, pipeline=[])
    cats = json.loads((data / "annotations" / "instances_val.json").read_text())["categories"]
    assert category_ids(cats, classes) == list(ds.cat_ids)
    assert category_ids(cats, classes) != [int(c) * 7 + 3 + 7 for c in range(10)]  # not by class order


def test_rescored_ap_equals_mmdets_cocometric_with_shuffled_ids(small_digits: Path, tmp_path: Path) -> None:
    """The same detections (the ground truth as mmdet labels it, plus jittered and wrong-label
    copies) scored by mmdet's CocoMetric and by analysis.coco_ap; and read back from a results
    json that CocoMetric's own label rule wrote."""
    import pandas as pd
    import torch
    from mmdet.datasets import CocoDataset
    from mmdet.evaluation import CocoMetric

    from analysis.measures.coco import coco_ap, detections_from_coco_results

    data = _shuffled_categories(small_digits, tmp_path / "d")
    ann_file = str(data / "annotations" / "instances_val.json")
    classes = tuple(str(i) for i in range(10))
    ds = CocoDataset(data_root=str(data), ann_file="annotations/instances_val.json", metainfo={"classes": classes},
                     data_prefix={"img": "val/"}, test_mode=True, pipeline=[])
    rng = np.random.default_rng(0)
    rows, samples = [], []
    for i in range(len(ds)):
        info = ds.get_data_info(i)
        boxes = np.array([inst["bbox"] for inst in info["instances"]], dtype=np.float32).reshape(-1, 4)
        labels = np.array([inst["bbox_label"] for inst in info["instances"]], dtype=np.int64)
        jitter = boxes + rng.normal(0, 4, boxes.shape).astype(np.float32)
        wrong = (labels + 1) % 10
        b = np.concatenate([boxes, jitter, boxes])
        lab = np.concatenate([labels, labels, wrong])
        sc = np.concatenate([rng.uniform(0.3, 0.9, len(labels)), rng.uniform(0.2, 1.0, len(labels)),
                             rng.uniform(0.1, 0.8, len(labels))]).astype(np.float32)
        samples.append({"img_id": info["img_id"], "ori_shape": (info["height"], info["width"]),
                        "pred_instances": {"bboxes": torch.tensor(b), "scores": torch.tensor(sc),
                                           "labels": torch.tensor(lab)}})
        rows += [(info["img_id"], int(l_), float(s), *map(float, bb)) for bb, l_, s in zip(b, lab, sc)]
    metric = CocoMetric(ann_file=ann_file, metric="bbox", outfile_prefix=str(tmp_path / "res"))
    metric.dataset_meta = ds.metainfo
    metric.process({}, samples)
    live = metric.evaluate(len(samples))["coco/bbox_mAP"]
    dets = pd.DataFrame(rows, columns=["image_id", "label", "score", "x1", "y1", "x2", "y2"])
    ours = coco_ap(dets, ann_file, classes)["AP"]
    assert 0.2 < live < 1.0
    assert round(ours, 3) == round(live, 3)  # mmdet rounds to 3 decimals
    back = detections_from_coco_results(str(tmp_path / "res.bbox.json"), ann_file, classes)
    assert sorted(back["label"].tolist()) == sorted(dets["label"].tolist())  # CocoMetric wrote mmdet's ids
    assert coco_ap(back, ann_file, classes)["AP"] == pytest.approx(ours, abs=1e-9)


def test_dump_records_the_datasets_category_ids(dumps: dict) -> None:
    meta = dumps["xy 400x200 ann after"].meta
    assert meta["cat_ids"] == list(range(1, 11)) and meta["schema_version"] == 2


def test_box_iou_is_mmdets_bbox_overlaps_to_the_bit() -> None:
    """The dump's (and the results-json input's) matching IoU equals mmdet's, without mmdet."""
    import torch
    from mmdet.structures.bbox import bbox_overlaps

    from retconf.dump import box_iou

    g = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        xy, gxy = torch.rand(300, 2, generator=g, dtype=dtype) * 90, torch.rand(30, 2, generator=g, dtype=dtype) * 90
        boxes = torch.cat([xy, xy + torch.rand(300, 2, generator=g, dtype=dtype) * 40], 1)
        gts = torch.cat([gxy, gxy + torch.rand(30, 2, generator=g, dtype=dtype) * 40], 1)
        gts[0, 2:] = gts[0, :2]  # a zero-area box: the union floor decides
        assert torch.equal(box_iou(boxes, gts), bbox_overlaps(boxes, gts)), dtype


# Resuming and restarting a dump (the session's `conf_run`, tests/conftest.py).

def test_dump_into_a_dump_of_other_settings_starts_afresh(conf_run: dict, tmp_path: Path) -> None:
    """Rerunning into a directory that holds another dump (here: another α) must not keep its
    shards as if they were resumed ones."""
    import shutil

    copy = Path(shutil.copytree(conf_run["dump"].path, tmp_path / "d"))
    (copy / "metadata.json").unlink()  # as if interrupted
    dump_predictions(str(CONF), conf_run["ckpt"], copy, str(conf_run["data"]),
                     {**conf_run["opts"], "model.bbox_head.fusion.alpha": 0.2}, shard_size=5, progress=False)
    redone, live = load_dump(copy), conf_run["live_dumps"][0.2]
    assert redone.meta["fusion"]["alpha"] == 0.2
    same_detections(redone.detections, live.detections)


def test_dump_is_resumable_and_validated(conf_run: dict, small_digits: Path, tmp_path: Path) -> None:
    """An interrupted dump (no metadata, a shard missing in the middle, the last one partly
    written) reads as incomplete; the rerun keeps the whole shards untouched, writes only the
    missing ones and ends byte-identical to the uninterrupted dump. A shard that lacks a column
    is named."""
    import hashlib
    import shutil

    src = conf_run["dump"].path
    copy = Path(shutil.copytree(src, tmp_path / "d"))
    (copy / "metadata.json").unlink()
    with pytest.raises(DumpError, match="metadata.json: missing"):
        load_dump(copy)
    kinds = ("candidates", "detections", "images")
    last = conf_run["dump"].meta["num_shards"] - 1
    assert last >= 3  # shards 0 and 2 stay whole
    for kind in kinds:
        (copy / f"{kind}-00001.parquet").unlink()
    (copy / f"images-{last:05d}.parquet").unlink()  # killed between two files of one shard
    identity = lambda f: (f.stat().st_ino, f.stat().st_mtime_ns)  # noqa: E731  (a rewrite is a new file)
    before = {f.name: identity(f) for f in copy.glob("*.parquet")}
    dump_predictions(str(CONF), conf_run["ckpt"], copy, str(small_digits),
                     {**conf_run["opts"], "model.bbox_head.fusion.alpha": 0.4}, shard_size=5, progress=False)
    after = {f.name: identity(f) for f in copy.glob("*.parquet")}
    written = {name for name, ident in after.items() if before.get(name) != ident}
    assert written == {f"{kind}-{shard:05d}.parquet" for kind in kinds for shard in (1, last)}
    digest = lambda f: hashlib.sha256(f.read_bytes()).hexdigest()  # noqa: E731
    assert sorted(after) == sorted(f.name for f in src.glob("*.parquet"))
    for f in src.glob("*.parquet"):
        assert digest(f) == digest(copy / f.name), f.name
    assert load_dump(copy).meta["complete"] is True

    df = conf_run["dump"].candidates.drop(columns=["obj"]).iloc[:3]
    df.to_parquet(copy / "candidates-00000.parquet", index=False)
    with pytest.raises(DumpError, match=r"candidates-00000.parquet: missing column 'obj'"):
        load_dump(copy)


def test_interrupted_dump_resumes_to_the_same_files(conf_run: dict, tmp_path: Path) -> None:
    """As after a kill: metadata.json and the last shards are missing; the rerun redoes only them."""
    import hashlib
    import shutil

    src = conf_run["dump"].path
    copy = Path(shutil.copytree(src, tmp_path / "d"))
    (copy / "metadata.json").unlink()
    last = conf_run["dump"].meta["num_shards"] - 1
    for kind in ("candidates", "detections", "images"):
        (copy / f"{kind}-{last:05d}.parquet").unlink()
    kept = {f.name: f.stat().st_mtime_ns for f in copy.glob("*.parquet")}
    dump_predictions(str(CONF), conf_run["ckpt"], copy, str(conf_run["data"]),
                     {**conf_run["opts"], "model.bbox_head.fusion.alpha": 0.4}, shard_size=5, progress=False)
    assert all(copy.joinpath(n).stat().st_mtime_ns == t for n, t in kept.items())  # not redone
    digest = lambda f: hashlib.sha256(f.read_bytes()).hexdigest()  # noqa: E731
    for f in src.glob("*.parquet"):
        assert digest(f) == digest(copy / f.name), f.name
    assert load_dump(copy).meta["complete"] is True


def test_kill_during_dumping_then_rerun_keeps_every_whole_shard(conf_run: dict, tmp_path: Path) -> None:
    """kill -9 of `retconf dump` while it writes its fifth shard (the file is written, not yet
    renamed into place): no metadata (the dump reads as incomplete), the four shards on disk are
    whole, and the rerun keeps them untouched and ends byte-identical to an uninterrupted dump."""
    import hashlib
    import subprocess
    import sys

    import pandas as pd

    from tests.pausing_cli import wait_for_pause

    opts = {k: v for k, v in conf_run["opts"].items() if v is not None and not isinstance(v, (list, dict))}
    ref = tmp_path / "ref"
    dump_predictions(str(CONF), conf_run["ckpt"], ref, str(conf_run["data"]), opts, shard_size=1, progress=False)

    cut, marker, log = tmp_path / "cut", tmp_path / "paused", tmp_path / "dump.log"
    args = ["dump", str(CONF), conf_run["ckpt"], "--out", str(cut), "--data-root", str(conf_run["data"]),
            "--shard-size", "1", "--cfg-options", *[f"{k}={v}" for k, v in opts.items()]]
    with open(log, "w") as err:  # a file, not a pipe nobody reads while waiting
        proc = subprocess.Popen([sys.executable, "-m", "tests.pausing_cli", "candidates-00004.parquet",
                                 str(marker), *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
    try:
        wait_for_pause(proc, marker, log)
    finally:
        proc.kill()
        proc.wait()
    assert not (cut / "metadata.json").exists()
    with pytest.raises(DumpError, match="incomplete"):
        load_dump(cut)
    shards = sorted(cut.glob("*.parquet"))
    assert [f.name for f in shards] == sorted(f"{kind}-{i:05d}.parquet" for i in range(4)
                                              for kind in ("candidates", "detections", "images"))
    for f in shards:  # whole files only: each one reads
        pd.read_parquet(f)
    kept = {f.name: (f.stat().st_ino, f.stat().st_mtime_ns) for f in shards}

    again = subprocess.run([sys.executable, "-m", "retconf.cli", *args], cwd=ROOT, capture_output=True,
                           text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert all((f := cut / name).stat().st_ino == ino and f.stat().st_mtime_ns == t
               for name, (ino, t) in kept.items())  # kept, not redone
    digest = lambda f: hashlib.sha256(f.read_bytes()).hexdigest()  # noqa: E731
    assert sorted(p.name for p in ref.glob("*.parquet")) == sorted(p.name for p in cut.glob("*.parquet"))
    for f in ref.glob("*.parquet"):
        assert digest(f) == digest(cut / f.name), f.name
    assert load_dump(cut).meta["complete"] is True
