"""load_dump refuses a dump whose shards are not the ones `retconf dump` wrote, naming the file:
a shard replaced by a copy of another, a shard of another dump, missing or repeated images."""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from analysis.inputs.io import DumpError, load_dump
from tests.conftest import fast_train_options
from tests.test_bad_inputs import TINY_CONF, _model_checkpoint


@pytest.fixture(scope="module")
def dump_dir(small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An untrained RetinaNet-Conf dumped on the 8 val images in 4 shards of 2."""
    from retconf.dump import dump_predictions

    work = tmp_path_factory.mktemp("dumpcheck")
    ckpt = _model_checkpoint(TINY_CONF, work / "conf.pth")
    opts = {**fast_train_options(), "model.test_cfg.score_thr": 0.0, "model.test_cfg.nms_pre": 50}
    dump_predictions(str(TINY_CONF), str(ckpt), work / "dump", str(small_digits), opts, shard_size=2,
                     progress=False)
    return work / "dump"


def _copy(src: str, dst: str) -> Callable[[Path], None]:
    return lambda d: shutil.copy(d / src, d / dst)


def _rewrite(name: str, change: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def apply(d: Path) -> None:
        change(pd.read_parquet(d / name)).to_parquet(d / name, index=False)
    return apply


def _all(*steps: Callable[[Path], None]) -> Callable[[Path], None]:
    return lambda d: [s(d) for s in steps]


def _shift_ids(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(image_id=df["image_id"] + 1000)


def _halve_scores(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(score=df["score"] / 2)


DUMP_CASES = {
    "whole shard replaced by a copy of another": (
        _all(*(_copy(f"{k}-00001.parquet", f"{k}-00002.parquet") for k in ("candidates", "detections", "images"))),
        r"images-00002.parquet: holds image \d+ of shard 1, not of shard 2 \(a copy of images-00001.parquet\?\)"),
    "candidates shard replaced by a copy of another": (
        _copy("candidates-00000.parquet", "candidates-00003.parquet"),
        r"candidates-00003.parquet: holds image \d+ of shard 0, not of shard 3 \(a copy of candidates-00000"),
    "images repeated within a shard": (
        _rewrite("images-00002.parquet", lambda df: pd.concat([df, df])),
        r"images-00002.parquet: repeats image ids \(4 rows for 2 images\)"),
    "image missing from a shard": (
        _rewrite("images-00001.parquet", lambda df: df.iloc[:1]),
        r"images-00001.parquet: lacks 1 of the shard's 2 images"),
    "shard of another dataset": (
        _rewrite("detections-00002.parquet", _shift_ids),
        r"detections-00002.parquet: holds image ids that are not in this dump \(e.g. 10\d\d\)"),
    "shard of another dump of the same images": (
        _rewrite("detections-00001.parquet", _halve_scores),
        r"detections-00001.parquet: differs from the file the dump wrote \(SHA-256"),
}


@pytest.mark.parametrize("case", DUMP_CASES)
def test_tampered_dump_is_refused(case: str, dump_dir: Path, tmp_path: Path) -> None:
    assert len(load_dump(dump_dir).images) == 8
    copy = Path(shutil.copytree(dump_dir, tmp_path / "d"))
    breaker, message = DUMP_CASES[case]
    breaker(copy)
    with pytest.raises(DumpError, match=message):
        load_dump(copy)


def test_dump_without_shard_records_or_of_an_older_schema_is_refused(dump_dir: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(dump_dir, tmp_path / "d"))
    meta = json.loads((copy / "metadata.json").read_text())
    assert [len(s["image_ids"]) for s in meta.pop("shards")] == [2, 2, 2, 2]
    (copy / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(DumpError, match="metadata.json: missing field 'shards'"):
        load_dump(copy)
    (copy / "metadata.json").write_text(json.dumps({**meta, "schema_version": 1}))
    with pytest.raises(DumpError, match="metadata.json: schema_version 1, this analysis reads 2"):
        load_dump(copy)


def _with_meta(dump_dir: Path, out: Path, change: Callable[[dict], None]) -> Path:
    """A copy of ``dump_dir`` whose metadata.json ``change`` edited."""
    copy = Path(shutil.copytree(dump_dir, out))
    meta = json.loads((copy / "metadata.json").read_text())
    change(meta)
    (copy / "metadata.json").write_text(json.dumps(meta))
    return copy


def test_dump_refuses_a_changed_annotation_file(dump_dir: Path, tmp_path: Path) -> None:
    """The dump records the SHA-256 of the annotation file it matched against; an analysis
    against a changed copy of it is refused, naming the file and the field."""
    from analysis.measures.coco import dump_coco_ap
    from retconf.io import sha256_file

    d = load_dump(dump_dir)
    assert d.meta["ann_sha256"] == sha256_file(d.meta["ann_file"])
    assert d.ann_file() == d.meta["ann_file"]
    coco = json.loads(Path(d.meta["ann_file"]).read_text())
    coco["annotations"][0]["bbox"][0] += 1  # one box moved by a pixel: the dump's IoUs no longer describe it
    ann = tmp_path / "instances_val.json"
    ann.write_text(json.dumps(coco))
    moved = load_dump(_with_meta(dump_dir, tmp_path / "dump", lambda m: m.update(ann_file=str(ann))))
    with pytest.raises(DumpError, match=rf"^{ann}: SHA-256 \w+… differs from field 'ann_sha256' of "
                                        rf"{tmp_path / 'dump' / 'metadata.json'} \(\w+…\): a changed or different"):
        dump_coco_ap(moved, moved.detections)
    missing = load_dump(_with_meta(dump_dir, tmp_path / "gone", lambda m: m.update(ann_file=str(tmp_path / "nope.json"))))
    with pytest.raises(DumpError, match=r"nope.json: missing \(field 'ann_file' of .*gone/metadata.json\)"):
        missing.ann_file()


def test_dump_without_annotation_hash_warns_once_and_proceeds(dump_dir: Path, tmp_path: Path,
                                                              capfd: pytest.CaptureFixture) -> None:
    old = load_dump(_with_meta(dump_dir, tmp_path / "old", lambda m: m.pop("ann_sha256")))
    assert old.ann_file() == old.ann_file() == old.meta["ann_file"]
    err = capfd.readouterr().err
    assert err.count("no field 'ann_sha256'") == 1 and str(tmp_path / "old" / "metadata.json") in err


def test_a_dump_read_shard_by_shard_gives_the_rows_of_the_whole(dump_dir: Path) -> None:
    from analysis.inputs.io import dump_shards

    whole, shards = load_dump(dump_dir), dump_shards(dump_dir)
    parts = list(shards)
    assert len(shards) == len(parts) == 4 and shards.meta == whole.meta
    for kind in ("candidates", "detections", "images", "iou_population"):
        joined = pd.concat([getattr(p, kind) for p in parts], ignore_index=True)
        pd.testing.assert_frame_equal(joined, getattr(whole, kind), check_exact=True)


@pytest.mark.parametrize("case", DUMP_CASES)
def test_a_tampered_shard_is_refused_when_the_shards_are_read(case: str, dump_dir: Path, tmp_path: Path) -> None:
    from analysis.inputs.io import dump_shards

    copy = Path(shutil.copytree(dump_dir, tmp_path / "d"))
    breaker, message = DUMP_CASES[case]
    breaker(copy)
    with pytest.raises(DumpError, match=message):
        list(dump_shards(copy))
