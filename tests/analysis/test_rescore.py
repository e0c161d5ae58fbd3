"""Dump + re-scoring reproduce live inference (a small RetinaNet-Conf overfit on 16 images)."""
from __future__ import annotations

from pathlib import Path

import pytest

from analysis.coco import coco_ap
from analysis.io import DumpError, load_dump
from analysis.rescore import inference_kwargs, rescore
from retconf.dump import dump_predictions
from tests.analysis.conftest import CONF, OTHER_ALPHAS, same_detections
from tests.conftest import ROOT


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
