"""Dump + re-scoring reproduce live inference (a small RetinaNet-Conf overfit on 16 images)."""
from __future__ import annotations

from pathlib import Path

import pytest

from analysis.io import DumpError, load_dump
from analysis.rescore import coco_ap, rescore, inference_kwargs
from retconf.apis import evaluate, train
from retconf.dump import dump_predictions
from tests.conftest import ROOT, fast_train_options

CONF = ROOT / "experiments" / "retinanet-conf_r18-tiny_fpn_digits.py"
EPOCHS = 10


def _opts(**extra) -> dict:
    opts = fast_train_options(max_epochs=EPOCHS)
    opts.update({
        "optim_wrapper.optimizer.lr": 3e-3,
        # evaluate on the 16 training images (any detections will do: the checks are exact)
        "test_dataloader.dataset.ann_file": "annotations/instances_train.json",
        "test_dataloader.dataset.data_prefix.img": "train/",
        "model.test_cfg.score_thr": 0.02,
    })
    opts.update(extra)
    return opts


OTHER_ALPHAS = (0.0, 0.2, 0.7)
COLS = ["image_id", "label", "score", "x1", "y1", "x2", "y2"]


@pytest.fixture(scope="module")
def conf_run(small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A briefly trained RetinaNet-Conf, its mmdet-evaluated live AP, a dump with the deployed
    alpha and, for comparison, dumps whose *live* inference used other alphas."""
    work = tmp_path_factory.mktemp("conf")
    train(str(CONF), str(work), _opts(), str(small_digits))
    ckpt = str(work / f"epoch_{EPOCHS}.pth")
    ann = str(small_digits / "annotations" / "instances_train.json")
    opts = {**_opts(), "test_evaluator.ann_file": ann}
    live = evaluate(str(CONF), ckpt, str(work / "t"), opts, str(small_digits))
    dumps = {}
    for alpha in (0.4, *OTHER_ALPHAS):
        out = work / f"dump{alpha}"
        dump_predictions(str(CONF), ckpt, out, str(small_digits),
                         {**opts, "model.bbox_head.fusion.alpha": alpha}, shard_size=5, progress=False)
        dumps[alpha] = load_dump(out)
    for name, extra in (("after_topk", {"model.bbox_head.fusion.order": "after_topk"}),
                        ("pow_thr", {"model.bbox_head.fusion.mode": "pow_thr"})):
        dump_predictions(str(CONF), ckpt, work / f"dump_{name}", str(small_digits), {**opts, **extra},
                         shard_size=5, progress=False)
        dumps[name] = load_dump(work / f"dump_{name}")
    return {"dump": dumps[0.4], "live_dumps": dumps, "live": live, "ann": ann, "ckpt": ckpt,
            "opts": opts, "data": small_digits}


def _same_detections(a, b) -> None:
    a = a[COLS].sort_values(COLS).reset_index(drop=True)
    b = b[COLS].sort_values(COLS).reset_index(drop=True)
    assert len(a) == len(b) > 0
    assert (a[["image_id", "label"]].to_numpy() == b[["image_id", "label"]].to_numpy()).all()
    assert abs(a[COLS[2:]].to_numpy() - b[COLS[2:]].to_numpy()).max() < 1e-4


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
    _same_detections(redone, d.detections)  # stronger than AP: the very same detections


@pytest.mark.parametrize("alpha", OTHER_ALPHAS)
def test_rescoring_other_alphas_matches_live_reinference(conf_run: dict, alpha: float) -> None:
    d, live = conf_run["dump"], conf_run["live_dumps"][alpha].detections
    redone = rescore(d.candidates, "pow", alpha, **inference_kwargs(d.meta))
    ap = coco_ap(redone, conf_run["ann"], d.meta["classes"])["AP"]
    assert abs(ap - coco_ap(live, conf_run["ann"], d.meta["classes"])["AP"]) <= 0.001  # 0.1 AP points
    _same_detections(redone, live)  # alphas of the dump's grid are exact


def test_rescoring_after_topk_matches_live_inference_in_that_order(conf_run: dict) -> None:
    d, live = conf_run["dump"], conf_run["live_dumps"]["after_topk"].detections
    redone = rescore(d.candidates, "pow", 0.4, order="after_topk", **inference_kwargs(d.meta))
    _same_detections(redone, live)
    with pytest.raises(ValueError, match="order 'sideways'"):
        rescore(d.candidates, "pow", 0.4, order="sideways")


def test_rescoring_the_filtered_product_matches_live_inference(conf_run: dict) -> None:
    d, live = conf_run["dump"], conf_run["live_dumps"]["pow_thr"].detections
    _same_detections(rescore(d.candidates, "pow_thr", 0.4, 0.5, **inference_kwargs(d.meta)), live)


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
    _same_detections(redone.detections, live.detections)


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
