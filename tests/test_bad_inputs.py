"""Bad input across the commands: one clear error naming the file and the field or value, a
non-zero exit, and no partial output."""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from retconf.cli import main
from tests.conftest import ROOT, TINY_RETINANET, fast_train_options

TINY_CONF = ROOT / "experiments" / "retinanet-conf_r18-tiny_fpn_digits.py"


@pytest.fixture()
def data(small_digits: Path, tmp_path: Path) -> Path:
    """A private copy of the small dataset that a test may break."""
    return Path(shutil.copytree(small_digits, tmp_path / "digits"))


def _options() -> list[str]:
    return [f"{k}={v}" for k, v in fast_train_options().items() if k != "param_scheduler"]


def run(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    ours = [line for line in err if line.startswith("retconf ")]
    return code, "\n".join(ours)


def _edit(path: Path, change: Callable[[dict], None]) -> None:
    coco = json.loads(path.read_text())
    change(coco)
    path.write_text(json.dumps(coco))


def _first_ann(field: str, value) -> Callable[[dict], None]:
    def change(coco: dict) -> None:
        coco["annotations"][0][field] = value
    return change


VAL = "annotations/instances_val.json"
JSON_CASES = {
    "malformed JSON": (lambda p: p.write_text('{"images": ['), "not valid JSON (Expecting value at line 1, column 13)"),
    "missing images": (lambda p: _edit(p, lambda c: c.pop("images")), "missing field 'images'"),
    "missing annotations": (lambda p: _edit(p, lambda c: c.pop("annotations")), "missing field 'annotations'"),
    "missing categories": (lambda p: _edit(p, lambda c: c.pop("categories")), "missing field 'categories'"),
    "empty dataset": (lambda p: _edit(p, lambda c: c.update(images=[], annotations=[])), "field 'images' is empty (empty dataset)"),
    "unknown image id": (lambda p: _edit(p, _first_ann("image_id", 999)), "points at unknown image_id 999"),
    "unknown category id": (lambda p: _edit(p, _first_ann("category_id", 77)), "points at unknown category_id 77"),
    "zero width": (lambda p: _edit(p, _first_ann("bbox", [10, 10, 0, 5])), "bbox [10, 10, 0, 5] has width or height <= 0"),
    "negative height": (lambda p: _edit(p, _first_ann("bbox", [10, 10, 5, -3])), "bbox [10, 10, 5, -3] has width or height <= 0"),
    "NaN in box": (lambda p: _edit(p, _first_ann("bbox", [10, float("nan"), 5, 5])), "has a non-finite value"),
    "box outside image": (lambda p: _edit(p, _first_ann("bbox", [180, 10, 40, 5])), "lies outside its 192x192 image"),
    "box not 4 numbers": (lambda p: _edit(p, _first_ann("bbox", [1, 2, 3])), "field 'bbox' must be 4 numbers"),
    # malformed COCO files as found in the wild
    "duplicate category name": (lambda p: _edit(p, lambda c: c["categories"][1].update(name="0")),
                                "categories[1] (id 2) repeats the name '0' of category id 1"),
    "duplicate category id": (lambda p: _edit(p, lambda c: c["categories"][1].update(id=1)),
                              "categories[1] repeats category id 1"),
    "duplicate annotation id": (lambda p: _edit(p, lambda c: c["annotations"][1].update(id=c["annotations"][0]["id"])),
                                "annotations[1] (id 1) repeats annotation id 1"),
    "annotation without id": (lambda p: _edit(p, lambda c: c["annotations"][0].pop("id")),
                              "annotations[0] has no field 'id'"),
    "duplicate file_name": (lambda p: _edit(p, lambda c: c["images"][1].update(file_name=c["images"][0]["file_name"])),
                            "images[1] (id 2) repeats file_name '000000.png' of image id 1"),
    "zero-area segment": (lambda p: _edit(p, lambda c: c["annotations"][0].update(area=0, segmentation=[[10, 10, 20, 10, 30, 10]])),
                          "area 0 (a zero-area segment): mmdet would leave it out of training"),
    "missing area": (lambda p: _edit(p, lambda c: c["annotations"][0].pop("area")), "has no field 'area'"),
    "area not a number": (lambda p: _edit(p, _first_ann("area", "12")), "field 'area' must be a finite number, got '12'"),
    "iscrowd not 0 or 1": (lambda p: _edit(p, _first_ann("iscrowd", 2)), "field 'iscrowd' must be 0 or 1, got 2"),
}


@pytest.mark.parametrize("case", JSON_CASES)
def test_bad_annotation_file(case: str, data: Path, tmp_path: Path, capsys) -> None:
    breaker, message = JSON_CASES[case]
    breaker(data / VAL)
    work = tmp_path / "work"
    code, err = run(capsys, "train", str(TINY_RETINANET), "--data-root", str(data),
                    "--work-dir", str(work), "--cfg-options", *_options())
    assert code == 2
    assert err.startswith("retconf train: error: ") and "instances_val.json" in err
    assert message in err
    assert len(err.splitlines()) == 1
    assert not work.exists()


def test_missing_image_file(data: Path, tmp_path: Path, capsys) -> None:
    (data / "val" / "000003.png").unlink()
    code, err = run(capsys, "test", str(TINY_RETINANET), str(tmp_path / "x.pth"), "--data-root", str(data))
    assert code == 2 and "x.pth does not exist" in err  # the checkpoint is checked first
    ckpt = tmp_path / "dummy.pth"
    import torch
    torch.save({"state_dict": {}}, ckpt)
    code, err = run(capsys, "test", str(TINY_RETINANET), str(ckpt), "--data-root", str(data),
                    "--work-dir", str(tmp_path / "w"))
    assert code == 2 and err.endswith("val/000003.png: image file missing (image id 4 of instances_val.json)")
    assert not (tmp_path / "w").exists()


def test_empty_image_file(data: Path, tmp_path: Path, capsys) -> None:
    (data / "train" / "000001.png").write_bytes(b"")
    code, err = run(capsys, "train", str(TINY_RETINANET), "--data-root", str(data),
                    "--work-dir", str(tmp_path / "w"), "--cfg-options", *_options())
    assert code == 2 and "train/000001.png: image file unreadable or empty" in err


def test_config_that_does_not_exist(capsys, tmp_path: Path) -> None:
    code, err = run(capsys, "train", str(tmp_path / "nope.py"))
    assert code == 2 and err == f"retconf train: error: config {tmp_path / 'nope.py'} does not exist"


def test_config_with_syntax_error(capsys, tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("_base_ = './x.py'\nmodel = dict(\n")
    code, err = run(capsys, "train", str(bad))
    assert code == 2 and err.startswith(f"retconf train: error: config {bad} could not be loaded")


@pytest.mark.parametrize("option, message", [
    ("train_cfg.max_epoch=2", "train_cfg has no key 'max_epoch'"),
    ("model.bbox_head.fusion.alhpa=0.3", "did you mean model.bbox_head.fusion.alpha?"),
])
def test_typo_in_cfg_options(option: str, message: str, capsys, small_digits: Path) -> None:
    code, err = run(capsys, "train", str(TINY_CONF), "--data-root", str(small_digits), "--cfg-options", option)
    assert code == 2 and message in err and "retinanet-conf_r18-tiny_fpn_digits.py" in err


def test_typo_inside_a_config_file(capsys, small_digits: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "typo.py"
    cfg.write_text(f"_base_ = '{TINY_CONF}'\nmodel = dict(bbox_head=dict(loss_quality=dict(los='l1')))\n")
    work = tmp_path / "w"
    code, err = run(capsys, "train", str(cfg), "--data-root", str(small_digits), "--work-dir", str(work),
                    "--cfg-options", *_options())
    assert code == 2 and "could not be built" in err and "los" in err
    assert not work.exists()


@pytest.mark.parametrize("alpha", ["1.5", "-0.2"])
def test_alpha_outside_unit_interval(alpha: str, capsys, small_digits: Path, tmp_path: Path) -> None:
    work = tmp_path / "w"
    code, err = run(capsys, "train", str(TINY_CONF), "--data-root", str(small_digits), "--work-dir", str(work),
                    "--cfg-options", *_options(), f"model.bbox_head.fusion.alpha={alpha}")
    assert code == 2 and f"fusion alpha={float(alpha)} must be in [0, 1]" in err
    assert not work.exists()


def test_truncated_checkpoint(capsys, small_digits: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pth"
    import torch
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, cut)
    cut.write_bytes(cut.read_bytes()[:300])
    code, err = run(capsys, "test", str(TINY_RETINANET), str(cut), "--data-root", str(small_digits),
                    "--work-dir", str(tmp_path / "w"))
    assert code == 2 and f"checkpoint {cut} could not be read" in err
    assert not (tmp_path / "w").exists()


def test_checkpoint_of_another_model(capsys, small_digits: Path, tmp_path: Path) -> None:
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config

    cfg = Config.fromfile(str(TINY_RETINANET))
    cfg.model.bbox_head.num_classes = 3
    cfg.model.backbone.init_cfg = None
    other = tmp_path / "other.pth"
    torch.save({"state_dict": MODELS.build(cfg.model).state_dict()}, other)
    work = tmp_path / "w"
    code, err = run(capsys, "test", str(TINY_RETINANET), str(other), "--data-root", str(small_digits),
                    "--work-dir", str(work), "--cfg-options", *_options())
    assert code == 2 and f"checkpoint {other} belongs to another model" in err
    assert "bbox_head.retina_cls.weight (27, 64, 3, 3) vs model (90, 64, 3, 3)" in err
    assert not work.exists()


def test_unwritable_work_dir(capsys, small_digits: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, err = run(capsys, "train", str(TINY_RETINANET), "--data-root", str(small_digits),
                    "--work-dir", str(blocker / "w"), "--cfg-options", *_options())
    assert code == 2 and err == f"retconf train: error: --work-dir: cannot create {blocker / 'w'}: {blocker} is not a directory"


def test_missing_resume_checkpoint(capsys, small_digits: Path, tmp_path: Path) -> None:
    code, err = run(capsys, "train", str(TINY_RETINANET), "--data-root", str(small_digits),
                    "--resume", str(tmp_path / "gone.pth"), "--cfg-options", *_options())
    assert code == 2 and "gone.pth does not exist" in err


def test_missing_dataset(capsys, tmp_path: Path) -> None:
    code, err = run(capsys, "train", str(TINY_RETINANET), "--data-root", str(tmp_path / "none"))
    assert code == 2 and "train_dataloader.dataset.ann_file:" in err and "retconf data digits" in err


def test_data_check_command(data: Path, capsys) -> None:
    assert main(["data", "check", str(data / VAL), "--images", str(data / "val")]) == 0
    assert "ok (8 images" in capsys.readouterr().out
    (data / "val" / "000002.png").unlink()
    code, err = run(capsys, "data", "check", str(data / VAL), "--images", str(data / "val"))
    assert code == 2 and err.endswith("000002.png: image file missing (image id 3 of instances_val.json)")


# --------------------------------------------------------------------------- partial checkpoints
def _model_checkpoint(config: Path, path: Path) -> Path:
    """A checkpoint holding a freshly built model of ``config`` (no training needed)."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    import retconf.plugin  # noqa: F401  (registration)

    register_all_modules()
    cfg = Config.fromfile(str(config))
    cfg.model.backbone.init_cfg = None
    torch.save({"state_dict": MODELS.build(cfg.model).state_dict()}, path)
    return path


PARTIAL_CASES = {
    "retinanet checkpoint into conf config": (TINY_CONF, TINY_RETINANET, "lacks 2 of the model's"),
    "conf checkpoint into retinanet config": (TINY_RETINANET, TINY_CONF, "has 2 entries the model does not have"),
}


@pytest.mark.parametrize("case", PARTIAL_CASES)
def test_partial_checkpoint_is_refused_unless_allowed(case: str, capsys, small_digits: Path, tmp_path: Path) -> None:
    config, source, message = PARTIAL_CASES[case]
    ckpt = _model_checkpoint(source, tmp_path / "other.pth")
    work = tmp_path / "w"
    args = ["test", str(config), str(ckpt), "--data-root", str(small_digits), "--work-dir", str(work),
            "--cfg-options", *_options()]
    code, err = run(capsys, *args)
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"retconf test: error: checkpoint {ckpt} does not fit the model: {message}")
    assert "bbox_head.retina_quality.weight, bbox_head.retina_quality.bias" in err
    assert "--allow-partial-checkpoint" in err
    assert not work.exists()
    code, _ = run(capsys, *args, "--allow-partial-checkpoint")
    assert code == 0 and (work / "test_metrics.json").exists()


def test_partial_checkpoint_refused_by_dump_and_load_from(capsys, small_digits: Path, tmp_path: Path) -> None:
    from retconf.checkpoint import CheckpointError
    from retconf.dump import dump_predictions

    ckpt = _model_checkpoint(TINY_RETINANET, tmp_path / "retinanet.pth")
    with pytest.raises(CheckpointError, match="does not fit the model: lacks 2 of"):
        dump_predictions(str(TINY_CONF), str(ckpt), tmp_path / "dump", str(small_digits),
                         dict(fast_train_options()), progress=False)
    assert not (tmp_path / "dump").exists()
    work = tmp_path / "w"
    code, err = run(capsys, "train", str(TINY_CONF), "--data-root", str(small_digits), "--work-dir", str(work),
                    "--cfg-options", *_options(), f"load_from={ckpt}")
    assert code == 2 and "does not fit the model: lacks 2 of" in err
    assert not work.exists()


# --------------------------------------------------------------------------- image files
def _image(data: Path, image_id: int) -> tuple[dict, Path]:
    """The val json's entry for ``image_id`` and its file."""
    coco = json.loads((data / VAL).read_text())
    img = next(i for i in coco["images"] if i["id"] == image_id)
    return img, data / "val" / img["file_name"]


def _set_image(data: Path, image_id: int, **fields) -> None:
    def change(coco: dict) -> None:
        next(i for i in coco["images"] if i["id"] == image_id).update(fields)
    _edit(data / VAL, change)


def _drop_annotations(data: Path, image_id: int) -> None:
    _edit(data / VAL, lambda c: c.update(annotations=[a for a in c["annotations"] if a["image_id"] != image_id]))


def _to_jpeg(data: Path, image_id: int, pixels=None, exif_orientation: int = 0, mode: str = "RGB") -> Path:
    """Store image ``image_id`` as JPEG (optionally other pixels, an EXIF orientation, a mode)."""
    from PIL import Image

    img, f = _image(data, image_id)
    im = Image.open(f).convert("RGB") if pixels is None else Image.fromarray(pixels)
    exif = Image.Exif()
    if exif_orientation:
        exif[0x0112] = exif_orientation
    out = f.with_suffix(".jpg")
    im.convert(mode).save(out, quality=95, exif=exif.tobytes())
    f.unlink()
    _set_image(data, image_id, file_name=out.name)
    return out


def _bomb_png(path: Path, side: int = 20000) -> None:
    """A valid, small (about 60 kB) 1-bit PNG whose header says side x side pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    z = zlib.compressobj(9)
    row = b"\0" * (1 + side // 8)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _truncate(f: Path, size: int = 300) -> None:
    f.write_bytes(f.read_bytes()[:size])


def _corrupt_png_data(f: Path) -> None:
    """Overwrite the middle of the compressed pixel data; the chunk structure stays intact."""
    b = bytearray(f.read_bytes())
    start = b.index(b"IDAT") + 40
    b[start:start + 200] = bytes(200)
    f.write_bytes(bytes(b))


def _exif_stored_frame(data: Path) -> None:
    """A 192x160 photo with EXIF orientation 6 (the pipeline turns it to 160x192) whose json
    entry gives the stored 192x160: annotations made in the stored frame would be wrong."""
    import numpy as np
    from PIL import Image

    _, f = _image(data, 2)
    pixels = np.asarray(Image.open(f).convert("RGB"))[:160]
    _drop_annotations(data, 2)
    _to_jpeg(data, 2, pixels, exif_orientation=6)
    _set_image(data, 2, width=192, height=160)


IMAGE_CASES = {
    "truncated PNG": (lambda d: _truncate(_image(d, 3)[1]), "000002.png: truncated PNG file"),
    "truncated JPEG": (lambda d: _truncate(_to_jpeg(d, 3), 2000), "000002.jpg: truncated JPEG file"),
    "not an image": (lambda d: _image(d, 3)[1].write_text("<html>404</html>"), "000002.png: not a readable image"),
    "file smaller than json size": (
        lambda d: _set_image(d, 3, width=200, height=200),
        "000002.png: image is 192x192 but instances_val.json says width 200, height 200"),
    "file larger than json size": (
        lambda d: __import__("PIL.Image").Image.new("RGB", (400, 300)).save(_image(d, 3)[1]),
        "000002.png: image is 400x300 but instances_val.json says width 192, height 192"),
    "decompression bomb file": (lambda d: _bomb_png(_image(d, 3)[1]),
                                "000002.png: 20000x20000 = 400000000 pixels exceeds the decompression-bomb limit"),
    "json claims bomb size": (lambda d: _set_image(d, 3, width=20000, height=20000),
                              "images[2] (id 3) claims 20000x20000 pixels, over the decompression-bomb limit"),
    "EXIF rotation against json size": (
        _exif_stored_frame,
        "000001.jpg: image is 160x192 as the pipeline loads it (EXIF orientation 6 turns the stored 192x160 "
        "image) but instances_val.json says width 192, height 160"),
}


@pytest.mark.parametrize("case", IMAGE_CASES)
def test_bad_image_file(case: str, data: Path, capsys) -> None:
    breaker, message = IMAGE_CASES[case]
    breaker(data)
    for mode in ([], ["--header-only"]):
        code, err = run(capsys, "data", "check", str(data / VAL), "--images", str(data / "val"), *mode)
        assert code == 2 and len(err.splitlines()) == 1, (mode, err)
        assert err.startswith("retconf data: error: ") and message in err, (mode, err)


def test_undecodable_pixels_found_by_the_full_decode_only(data: Path, capsys) -> None:
    _corrupt_png_data(_image(data, 3)[1])
    code, err = run(capsys, "data", "check", str(data / VAL), "--images", str(data / "val"))
    assert code == 2 and "000002.png: the pipeline's decoder (OpenCV) cannot decode this PNG file" in err
    assert main(["data", "check", str(data / VAL), "--images", str(data / "val"), "--header-only"]) == 0


def test_bad_image_refused_before_training(data: Path, tmp_path: Path, capsys) -> None:
    _truncate(data / "train" / "000004.png")
    work = tmp_path / "w"
    code, err = run(capsys, "train", str(TINY_RETINANET), "--data-root", str(data), "--work-dir", str(work),
                    "--cfg-options", *_options())
    assert code == 2 and "train/000004.png: truncated PNG file" in err and "instances_train.json" in err
    assert not work.exists()


def _unusual_images(data: Path, split: str = "train") -> dict:
    """Turn five train images into grayscale, 16-bit, CMYK, RGBA and EXIF-rotated files that hold
    the same picture (the EXIF one stores it turned and says so)."""
    import numpy as np
    from PIL import Image

    ann = data / "annotations" / f"instances_{split}.json"
    coco = json.loads(ann.read_text())
    by_id = {i["id"]: i for i in coco["images"]}
    folder = data / split
    made = {}
    for image_id, kind in zip((1, 2, 3, 4, 5), ("gray", "16-bit", "cmyk", "rgba", "exif")):
        f = folder / by_id[image_id]["file_name"]
        rgb = np.asarray(Image.open(f).convert("RGB"))
        if kind == "gray":
            Image.fromarray(rgb).convert("L").save(f)
        elif kind == "16-bit":
            Image.fromarray(rgb[..., 1].astype(np.uint16) * 257).save(f)
        elif kind == "rgba":
            Image.fromarray(rgb).convert("RGBA").save(f)
        else:
            out = f.with_suffix(".jpg")
            exif = Image.Exif()
            if kind == "exif":  # stored turned 90 degrees anticlockwise; orientation 6 turns it back
                exif[0x0112] = 6
                Image.fromarray(np.ascontiguousarray(np.rot90(rgb, 1))).save(out, quality=95, exif=exif.tobytes())
            else:
                Image.fromarray(rgb).convert("CMYK").save(out, quality=95)
            f.unlink()
            by_id[image_id]["file_name"] = out.name
            f = out
        made[kind] = (f, rgb)
    keep = {i for i in by_id if i <= 8}  # a short epoch (2 iterations)
    coco["images"] = [i for i in coco["images"] if i["id"] in keep]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    ann.write_text(json.dumps(coco))
    return made


def test_grayscale_16bit_cmyk_rgba_and_exif_images_load_and_train(data: Path, tmp_path: Path, capsys) -> None:
    import numpy as np
    from mmcv.transforms import LoadImageFromFile as Load

    made = _unusual_images(data)
    for mode, word in (([], "decoded"), (["--header-only"], "headers")):
        code = main(["data", "check", str(data / "annotations" / "instances_train.json"),
                     "--images", str(data / "train"), *mode])
        out, err = capsys.readouterr()
        assert code == 0 and f"images {word} in" in out, err
    for kind, (f, rgb) in made.items():
        img = Load()(dict(img_path=str(f)))["img"]
        assert img.shape == (192, 192, 3) and img.dtype == np.uint8, kind
        if kind in ("gray", "rgba", "exif"):  # same picture as the pipeline sees it (BGR)
            ref = rgb[..., ::-1].astype(int) if kind != "gray" else img.astype(int)
            assert np.abs(img.astype(int) - ref).mean() < 4, kind
    work = tmp_path / "w"
    code, err = run(capsys, "train", str(TINY_RETINANET), "--data-root", str(data), "--work-dir", str(work),
                    "--cfg-options", *_options())
    assert code == 0, err
    assert (work / "epoch_1.pth").exists()


# --------------------------------------------------------------------------- accepted oddities
def test_crowd_annotation_is_accepted_and_ignored_in_training(data: Path, capsys) -> None:
    """iscrowd=1: accepted; mmdet marks it ignored (no training target, no ground truth in the
    dump's matching) and COCO evaluation treats it as a crowd region."""
    from mmdet.datasets import CocoDataset

    _edit(data / VAL, _first_ann("iscrowd", 1))
    assert main(["data", "check", str(data / VAL), "--images", str(data / "val")]) == 0
    ds = CocoDataset(data_root=str(data), ann_file=VAL, data_prefix=dict(img="val/"), test_mode=True,
                     metainfo=dict(classes=tuple(str(i) for i in range(10))), pipeline=[])
    first = json.loads((data / VAL).read_text())["annotations"][0]
    info = next(d for d in ds.load_data_list() if d["img_id"] == first["image_id"])
    flags = [inst["ignore_flag"] for inst in info["instances"]]
    assert flags.count(1) == 1


def test_box_a_fraction_of_a_pixel_outside_is_accepted(data: Path, capsys) -> None:
    """Rounding in real annotations: boxes may overhang their image by up to 1 px; more is refused."""
    _edit(data / VAL, _first_ann("bbox", [-0.4, 10, 30.4, 20.5]))
    assert main(["data", "check", str(data / VAL)]) == 0
    _edit(data / VAL, _first_ann("bbox", [-1.5, 10, 30, 20]))
    code, err = run(capsys, "data", "check", str(data / VAL))
    assert code == 2 and "lies outside its 192x192 image" in err


def test_boxes_under_one_pixel_are_flagged(data: Path, capsys) -> None:
    """mmdet drops boxes narrower or lower than 1 px from training while COCO evaluation counts
    them (COCO itself has a few): accepted, and `data check` says how many and where."""
    _edit(data / VAL, _first_ann("bbox", [10, 10, 0.5, 20]))
    assert main(["data", "check", str(data / VAL)]) == 0
    out = capsys.readouterr().out
    assert "note: 1 boxes are narrower or lower than 1 px (first: instances_val.json: annotations[0]" in out


def test_backbone_only_init_is_not_a_partial_load(capsys, small_digits: Path, tmp_path: Path) -> None:
    """The documented backbone-only initialisation (init_cfg Pretrained, e.g. from `retconf
    pretrain`) loads a checkpoint of the backbone alone without --allow-partial-checkpoint."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.config import Config

    register_all_modules()
    cfg = Config.fromfile(str(TINY_CONF))
    cfg.model.backbone.init_cfg = None
    backbone = tmp_path / "backbone.pth"
    torch.save({"state_dict": MODELS.build(cfg.model.backbone).state_dict()}, backbone)
    work = tmp_path / "w"
    options = [o for o in _options() if not o.startswith("model.backbone.init_cfg")]
    code, err = run(capsys, "train", str(TINY_CONF), "--data-root", str(small_digits), "--work-dir", str(work),
                    "--cfg-options", *options, f"model.backbone.init_cfg.checkpoint={backbone}")
    assert code == 0, err
    assert (work / "epoch_1.pth").exists()


def test_amp_on_cpu_without_bf16_is_refused_in_one_line(data: Path, tmp_path: Path, capsys,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import retconf.engine

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: --amp is valid here")
    monkeypatch.setattr(retconf.engine, "cpu_has_bf16", lambda: False)
    code, err = run(capsys, "train", str(TINY_RETINANET), "--data-root", str(data), "--amp",
                    "--work-dir", str(tmp_path / "w"), "--cfg-options", *_options())
    assert code == 2 and err.endswith("--amp: no CUDA device, and this CPU has no native bfloat16 "
                                      "(AVX512-BF16/AMX) for CPU autocast; train without --amp")
    assert "Traceback" not in err and not (tmp_path / "w").exists()


def test_amp_on_a_bf16_cpu_trains_with_cpu_autocast(data: Path, tmp_path: Path, capsys) -> None:
    import torch

    from retconf.engine import cpu_has_bf16

    if torch.cuda.is_available() or not cpu_has_bf16():
        pytest.skip("needs a CPU-only machine with native bfloat16")
    work = tmp_path / "w"
    code, err = run(capsys, "train", str(TINY_CONF), "--data-root", str(data), "--amp", "--work-dir", str(work),
                    "--cfg-options", *_options(), "optim_wrapper.enabled=False")
    assert code == 0, err
    dumped = next(work.glob("*.py")).read_text()
    assert "type='CPUAutocastOptimWrapper'" in dumped and "enabled=True" in dumped
    assert (work / "epoch_1.pth").exists()
