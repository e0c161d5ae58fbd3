"""Kill -9 during training, rerun with --resume: nothing lost beyond one checkpoint interval and
the same final result as an uninterrupted run (CPU, fixed seed); NaN losses stop training."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from retconf.apis import train
from retconf.checkpoint import load_checkpoint_file
from retconf.engine.hooks import TrainingDiverged
from tests.conftest import ROOT, TINY_RETINANET, fast_train_options
from tests.pausing_cli import wait_for_pause


def _cli_train(work: Path, data: Path, *extra: str, log: Path, pause: tuple[str, Path] | None = None
               ) -> subprocess.Popen:
    """`retconf train` in a child process; its stderr goes to ``log`` (a pipe nobody reads while
    waiting would block a child that writes more than the pipe holds). With ``pause=(NAME,
    MARKER)`` the child stops before it writes NAME (see tests/pausing_cli.py)."""
    opts = [f"{k}={v}" for k, v in fast_train_options(max_epochs=3).items() if k != "param_scheduler"]
    launcher = ["-m", "tests.pausing_cli", pause[0], str(pause[1])] if pause else ["-m", "retconf.cli"]
    with open(log, "w") as err:
        return subprocess.Popen(
            [sys.executable, *launcher, "train", str(TINY_RETINANET), "--work-dir", str(work),
             "--data-root", str(data), *extra, "--cfg-options", *opts],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, text=True)


def test_kill_during_training_then_resume_matches_uninterrupted(small_digits: Path, tmp_path: Path) -> None:
    """Killed while saving epoch 2's checkpoint (the file is written, not yet renamed into place):
    the worst point of the checkpoint interval, epoch 2 is lost whole and must be redone."""
    ref, cut, log = tmp_path / "ref", tmp_path / "cut", tmp_path / "train.log"
    assert _cli_train(ref, small_digits, log=log).wait(timeout=300) == 0, log.read_text()[-2000:]

    marker = tmp_path / "paused"
    proc = _cli_train(cut, small_digits, log=log, pause=("epoch_2.pth", marker))
    try:
        wait_for_pause(proc, marker, log)
    finally:
        proc.kill()
        proc.wait()
    assert (cut / "epoch_1.pth").is_file() and not (cut / "epoch_2.pth").exists()
    assert list(cut.glob(".epoch_2.pth*"))  # the kill hit a complete but unrenamed checkpoint
    # whatever the kill interrupted, no half-written checkpoint carries a final name
    for ckpt in cut.glob("epoch_*.pth"):
        load_checkpoint_file(ckpt)

    resumed = _cli_train(cut, small_digits, "--resume", log=log)
    assert resumed.wait(timeout=300) == 0, log.read_text()[-2000:]
    # the rerun resumed from epoch 1 (4 iterations) instead of starting afresh
    scalars = max(cut.glob("*/vis_data/scalars.json"), key=lambda f: f.stat().st_mtime_ns)
    iters = [json.loads(line)["iter"] for line in scalars.read_text().splitlines() if '"loss"' in line]
    assert iters[0] == 5 and iters[-1] == 12, iters
    a = load_checkpoint_file(ref / "epoch_3.pth")["state_dict"]
    b = load_checkpoint_file(cut / "epoch_3.pth")["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    # the weights agree to 1e-5 (bfloat16 training), so the metrics agree up to what that can move
    ref_m, cut_m = (json.loads((w / "metrics.json").read_text())["metrics"] for w in (ref, cut))
    assert ref_m.keys() == cut_m.keys()
    for k in ref_m:
        assert cut_m[k] == pytest.approx(ref_m[k], abs=2e-3), k


def test_nan_loss_stops_training_naming_iteration_and_term(small_digits: Path, tmp_path: Path) -> None:
    opts = fast_train_options(max_epochs=3)
    opts["optim_wrapper.optimizer.lr"] = 1e12
    opts["optim_wrapper.clip_grad"] = None
    with pytest.raises(TrainingDiverged, match=r"training stopped: loss\w* is (nan|inf|-inf) at iteration \d+ \(epoch \d\)"):
        train(str(TINY_RETINANET), str(tmp_path), opts, str(small_digits))
