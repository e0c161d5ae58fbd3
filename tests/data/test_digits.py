from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from retconf.data.digits import (DatasetError, DigitsConfig, box_iou, digit_alpha, generate,
                                 render_image, tight_box)
from tests.conftest import SMALL


def _tree_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_byte_identical_files(small_digits: Path, tmp_path: Path) -> None:
    again = generate(SMALL, tmp_path / "again")
    assert _tree_digest(again) == _tree_digest(small_digits)


def test_other_seed_gives_other_images(tmp_path: Path) -> None:
    a, _ = render_image(DigitsConfig(seed=1), "train", 0)
    b, _ = render_image(DigitsConfig(seed=2), "train", 0)
    assert not np.array_equal(a, b)


def test_pycocotools_loads_both_splits_and_boxes_lie_inside(small_digits: Path) -> None:
    from pycocotools.coco import COCO

    for split, n in (("train", SMALL.num_train), ("val", SMALL.num_val)):
        coco = COCO(str(small_digits / "annotations" / f"instances_{split}.json"))
        assert len(coco.getImgIds()) == n
        assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == [str(i) for i in range(10)]
        for ann in coco.loadAnns(coco.getAnnIds()):
            img = coco.imgs[ann["image_id"]]
            x, y, w, h = ann["bbox"]
            assert w > 0 and h > 0
            assert 0 <= x and 0 <= y and x + w <= img["width"] and y + h <= img["height"]
            assert (small_digits / split / img["file_name"]).is_file()


def test_statistics_of_a_larger_sample() -> None:
    """Sizes span ~12-120 px, aspect ratios vary, overlapping pairs and empty images occur."""
    cfg = DigitsConfig()
    objects = [render_image(cfg, "train", i)[1] for i in range(300)]
    boxes = [o["bbox"] for objs in objects for o in objs]
    heights = np.array([b[3] for b in boxes])
    ratios = np.array([b[2] / b[3] for b in boxes])
    assert heights.min() <= 16 and heights.max() >= 90
    assert ratios.min() < 0.5 and ratios.max() > 1.0
    assert sum(1 for objs in objects if not objs) >= 3
    overlapping = 0
    for objs in objects:
        bs = [(b[0], b[1], b[0] + b[2], b[1] + b[3]) for b in (o["bbox"] for o in objs)]
        overlapping += sum(box_iou(a, b) > 0.1 for i, a in enumerate(bs) for b in bs[i + 1:])
    assert overlapping >= 20
    assert {o["label"] for objs in objects for o in objs} == set(range(10))


def test_tight_box_comes_from_the_strokes_not_the_cell() -> None:
    scan = np.zeros((8, 8), np.float32)
    scan[2:6, 3:5] = 1.0  # a stroke in the middle of the cell
    alpha = digit_alpha(scan, 40, 40)
    x0, y0, x1, y1 = tight_box(alpha)
    assert 8 < x0 < x1 < 32 and 5 < y0 < y1 < 35
    assert tight_box(np.zeros((5, 5))) is None


def test_existing_identical_dataset_is_reused(small_digits: Path) -> None:
    before = (small_digits / "manifest.json").stat().st_mtime_ns
    assert generate(SMALL, small_digits) == small_digits
    assert (small_digits / "manifest.json").stat().st_mtime_ns == before


def test_existing_other_dataset_is_not_overwritten_silently(small_digits: Path) -> None:
    with pytest.raises(DatasetError, match="--overwrite"):
        generate(DigitsConfig(num_train=16, num_val=8, seed=4), small_digits)


@pytest.mark.parametrize("kwargs, field", [
    ({"num_train": 0}, "num_train"),
    ({"min_size": 50, "max_size": 20}, "max_size"),
    ({"image_size": 64, "max_size": 120}, "max_size"),
    ({"image_size": 8}, "image_size"),
    ({"overlap_prob": 1.5}, "overlap_prob"),
])
def test_bad_parameters_name_the_field(kwargs: dict, field: str, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=f"^{field}="):
        generate(DigitsConfig(**kwargs), tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "retconf.cli", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_bad_size_is_one_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    res = _cli("data", "digits", "--out", str(tmp_path / "d"), "--min-size", "200", "--max-size", "100")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == ["retconf data: error: max_size=100 must be >= min_size (200)"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_cli_unwritable_output_dir(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        res = _cli("data", "digits", "--out", str(locked / "d"), "--num-train", "2", "--num-val", "1")
    finally:
        locked.chmod(0o700)
    assert res.returncode == 2
    assert "cannot write to output directory" in res.stderr and str(locked) in res.stderr
    assert list(locked.iterdir()) == []


def test_cli_output_path_below_a_file_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = _cli("data", "digits", "--out", str(blocker / "d"), "--num-train", "2", "--num-val", "1")
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1
    assert "cannot write to output directory" in res.stderr and str(blocker) in res.stderr
    assert blocker.read_text() == "x"


def test_interrupted_generation_leaves_nothing(tmp_path: Path) -> None:
    def boom(it, n, desc):
        for i in it:
            if desc == "val":
                raise KeyboardInterrupt
            yield i

    with pytest.raises(KeyboardInterrupt):
        generate(DigitsConfig(num_train=3, num_val=2), tmp_path / "d", progress=boom)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- COCO-shaped variant
def test_coco_shaped_dataset_looks_like_coco_2017(tmp_path: Path) -> None:
    """Non-square images of mixed sizes, objects from ~10 px to half the image, COCO's 80
    categories with their ids (ten used), COCO 2017's layout; byte-identical on a rerun."""
    from mmdet.datasets import CocoDataset
    from pycocotools.coco import COCO

    from retconf.data.digits import COCO_CLASSES, COCO_IDS, DIGIT_TO_COCO, coco_shaped

    cfg = coco_shaped(num_train=12, num_val=4, seed=1)
    root = generate(cfg, tmp_path / "coco")
    assert _tree_digest(generate(cfg, tmp_path / "again")) == _tree_digest(root)
    assert COCO_CLASSES == CocoDataset.METAINFO["classes"]  # what the COCO recipes use
    assert len(COCO_IDS) == 80 and COCO_IDS[-1] == 90 and 12 not in COCO_IDS
    shapes, heights, used = set(), [], set()
    for split, n in (("train", 12), ("val", 4)):
        assert (root / f"{split}2017").is_dir()
        coco = COCO(str(root / "annotations" / f"instances_{split}2017.json"))
        cats = coco.loadCats(coco.getCatIds())
        assert [c["name"] for c in cats] == list(COCO_CLASSES) and [c["id"] for c in cats] == list(COCO_IDS)
        assert len(coco.getImgIds()) == n
        for img in coco.loadImgs(coco.getImgIds()):
            w, h = img["width"], img["height"]
            assert 500 <= max(w, h) <= 640 and w != h
            assert img["file_name"] == f"{img['id']:012d}.png" and (root / f"{split}2017" / img["file_name"]).is_file()
            shapes.add((w, h))
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
                x, y, bw, bh = ann["bbox"]
                assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h
                assert bh <= min(w, h) / 2 + 1
                heights.append(bh)
                used.add(ann["category_id"])
    assert len(shapes) >= 10 and any(w > h for w, h in shapes) and any(w < h for w, h in shapes)
    assert min(heights) <= 16 and max(heights) >= 100
    assert used <= {COCO_IDS[k] for k in DIGIT_TO_COCO} and len(used) >= 5


def test_coco_shaped_option_leaves_the_default_manifest_alone() -> None:
    from retconf.data.digits import _manifest

    assert "coco" not in _manifest(DigitsConfig())["config"]
    assert _manifest(DigitsConfig(coco=True))["config"]["coco"] is True


def test_cli_coco_flag_writes_the_coco_2017_layout(tmp_path: Path) -> None:
    res = _cli("data", "digits", "--coco", "--out", str(tmp_path / "d"), "--num-train", "2", "--num-val", "1")
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["annotations", "manifest.json", "train2017", "val2017"]
    assert sorted(p.name for p in (tmp_path / "d" / "annotations").iterdir()) == [
        "instances_train2017.json", "instances_val2017.json"]
