"""Bad input across the commands: one clear error naming the file and the field or value, a
non-zero exit, and no partial output."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

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

    import retconf  # noqa: F401  (registration)

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
