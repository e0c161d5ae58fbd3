"""Few-iteration CPU training of the tiny RetinaNet, resume, and safe checkpoint loading."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from retconf.apis import train
from retconf.checkpoint import CheckpointError, load_checkpoint_file
from tests.conftest import TINY_RETINANET, fast_train_options


def _losses(work_dir: Path) -> list[tuple[int, float]]:
    """(iter, loss) pairs from mmengine's scalars.json logs, in order."""
    rows = []
    for f in sorted(work_dir.glob("*/vis_data/scalars.json")):
        for line in f.read_text().splitlines():
            rec = json.loads(line)
            if "loss" in rec:
                rows.append((rec["iter"], rec["loss"]))
    return rows


@pytest.fixture(scope="module")
def trained(small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two epochs (8 iterations) of the tiny RetinaNet on 16 images with a checkpoint per epoch."""
    work = tmp_path_factory.mktemp("train")
    opts = fast_train_options(max_epochs=2)
    opts["optim_wrapper.optimizer.lr"] = 1e-3
    opts.update(EVERY_DETECTION)
    train(str(TINY_RETINANET), str(work), opts, str(small_digits))
    return work


# An untrained detector scores below mmdet's 0.05 threshold, and with no detection at all
# mmdet's COCO metric returns no AP. Keep every candidate so that there always is one.
EVERY_DETECTION = {"model.test_cfg.score_thr": 0.0}
COCO_KEYS = [f"coco/bbox_mAP{s}" for s in ("", "_50", "_75", "_s", "_m", "_l")]


def test_training_loss_is_finite_and_decreases(trained: Path) -> None:
    losses = [loss for _, loss in _losses(trained)]
    assert len(losses) == 8
    assert all(torch.isfinite(torch.tensor(losses)))
    # the second epoch's mean loss against the first's: both epochs see the same 16 images (the
    # first and last three iterations would compare different batches, a margin the numerics decide)
    assert sum(losses[4:]) / 4 < sum(losses[:4]) / 4


def test_training_writes_checkpoints_and_metrics(trained: Path) -> None:
    assert (trained / "epoch_1.pth").is_file() and (trained / "epoch_2.pth").is_file()
    record = json.loads((trained / "metrics.json").read_text())
    assert record["epoch"] == 2 and record["iter"] == 8
    assert set(COCO_KEYS) <= set(record["metrics"])
    assert all(0.0 <= record["metrics"][k] <= 1.0 or record["metrics"][k] == -1.0 for k in COCO_KEYS)  # -1: no such box
    # the validation of the last epoch, as mmengine's logger recorded it
    logged = [json.loads(line) for f in trained.glob("*/vis_data/scalars.json")
              for line in f.read_text().splitlines() if "coco/bbox_mAP" in line]
    assert len(logged) == 1 and logged[0]["step"] == 2
    assert {k: logged[0][k] for k in COCO_KEYS} == {k: record["metrics"][k] for k in COCO_KEYS}


def test_resume_continues_at_the_right_iteration(trained: Path, small_digits: Path, tmp_path: Path) -> None:
    import shutil

    work = tmp_path / "resumed"
    work.mkdir()
    shutil.copy(trained / "epoch_1.pth", work / "epoch_1.pth")
    (work / "last_checkpoint").write_text(str(work / "epoch_1.pth"))
    opts = fast_train_options(max_epochs=3)
    record = train(str(TINY_RETINANET), str(work), opts, str(small_digits), resume="auto")
    iters = [it for it, _ in _losses(work)]
    assert iters[0] == 5, "resumed run must start right after epoch 1 (iteration 4)"
    assert iters[-1] == 12 and len(iters) == 8
    assert record["epoch"] == 3 and record["iter"] == 12


def test_resume_after_a_kill_in_the_final_validation_validates(trained: Path, small_digits: Path, tmp_path: Path) -> None:
    """The last checkpoint is written before the final validation: a training killed during that
    validation resumes at its last epoch with nothing left to train, and must still validate
    (mmengine's loop validates only after an epoch it trains), or it never writes metrics.json."""
    import shutil

    work = tmp_path / "killed_in_val"
    work.mkdir()
    shutil.copy(trained / "epoch_2.pth", work / "epoch_2.pth")
    (work / "last_checkpoint").write_text(str(work / "epoch_2.pth"))
    opts = {**fast_train_options(max_epochs=2), **EVERY_DETECTION}
    record = train(str(TINY_RETINANET), str(work), opts, str(small_digits), resume="auto")
    assert record["epoch"] == 2 and record["iter"] == 8 and set(COCO_KEYS) <= set(record["metrics"])
    assert not _losses(work), "nothing was left to train"
    assert record["metrics"] == json.loads((trained / "metrics.json").read_text())["metrics"]


def test_resume_from_explicit_checkpoint(trained: Path, small_digits: Path, tmp_path: Path) -> None:
    opts = fast_train_options(max_epochs=2)
    record = train(str(TINY_RETINANET), str(tmp_path), opts, str(small_digits),
                   resume=str(trained / "epoch_1.pth"))
    assert [it for it, _ in _losses(tmp_path)][0] == 5
    assert record["iter"] == 8


def test_training_checkpoint_loads_weights_only(trained: Path) -> None:
    ckpt = load_checkpoint_file(trained / "epoch_2.pth")
    assert ckpt["meta"]["epoch"] == 2 and "state_dict" in ckpt and "message_hub" in ckpt
    # Without the scoped allow-list torch's default refuses the same file ...
    with pytest.raises(Exception):  # noqa: B017 (the error's class differs between torch releases)
        torch.load(trained / "epoch_2.pth", map_location="cpu")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_checkpoint_with_foreign_code_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _Evil()}, path)
    with pytest.raises(CheckpointError, match="builtins.print"):
        load_checkpoint_file(path)


def test_truncated_checkpoint_names_the_file(trained: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.pth"
    path.write_bytes((trained / "epoch_1.pth").read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="cut.pth"):
        load_checkpoint_file(path)


def test_evaluating_a_checkpoint_needs_no_backbone_init_file(trained: Path, small_digits: Path,
                                                              tmp_path: Path) -> None:
    from retconf.apis import evaluate

    opts = {**fast_train_options(), **EVERY_DETECTION}
    opts["model.backbone.init_cfg"] = dict(type="Pretrained", checkpoint=str(tmp_path / "gone.pth"))
    metrics = evaluate(str(TINY_RETINANET), str(trained / "epoch_2.pth"), str(tmp_path), opts, str(small_digits))
    # the checkpoint's weights, not an initialisation: the runner loaded it (two epochs score an
    # AP of 0 here, so the numbers alone could not tell) and the numbers are those of training's
    # own validation of these weights on the same images (the test set is the val set)
    log = next(tmp_path.glob("*/*.log")).read_text()
    assert f"Load checkpoint from {trained / 'epoch_2.pth'}" in log
    trained_metrics = json.loads((trained / "metrics.json").read_text())["metrics"]
    # training validates in batches of 4, this evaluation in batches of 8: padding changes the last
    # bits of the scores, and on another CPU family an AP above 0 may move in its third decimal
    for k in COCO_KEYS:
        assert metrics[k] == pytest.approx(trained_metrics[k], abs=2e-3), k
    assert json.loads((tmp_path / "test_metrics.json").read_text())["metrics"] == metrics
