"""Kill -9 during training, rerun with --resume: nothing lost beyond one checkpoint interval and
the same final result as an uninterrupted run (CPU, fixed seed); NaN losses stop training."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from retconf.apis import train
from retconf.checkpoint import load_checkpoint_file
from retconf.engine.hooks import TrainingDiverged
from tests.conftest import TINY_RETINANET, fast_train_options


def _cli_train(work: Path, data: Path, *extra: str) -> subprocess.Popen:
    opts = [f"{k}={v}" for k, v in fast_train_options(max_epochs=3).items() if k != "param_scheduler"]
    return subprocess.Popen(
        [sys.executable, "-m", "retconf.cli", "train", str(TINY_RETINANET), "--work-dir", str(work),
         "--data-root", str(data), *extra, "--cfg-options", *opts],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def test_kill_during_training_then_resume_matches_uninterrupted(small_digits: Path, tmp_path: Path) -> None:
    ref, cut = tmp_path / "ref", tmp_path / "cut"
    assert _cli_train(ref, small_digits).wait(timeout=300) == 0

    proc = _cli_train(cut, small_digits)
    deadline = time.time() + 300
    while not (cut / "epoch_1.pth").exists():
        assert proc.poll() is None and time.time() < deadline, "training ended before the kill"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (cut / "epoch_3.pth").exists()
    # whatever the kill interrupted, no half-written checkpoint carries a final name
    for ckpt in cut.glob("epoch_*.pth"):
        load_checkpoint_file(ckpt)

    resumed = _cli_train(cut, small_digits, "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-2000:]
    a = load_checkpoint_file(ref / "epoch_3.pth")["state_dict"]
    b = load_checkpoint_file(cut / "epoch_3.pth")["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    assert json.loads((ref / "metrics.json").read_text())["metrics"] == \
        json.loads((cut / "metrics.json").read_text())["metrics"]


def test_nan_loss_stops_training_naming_iteration_and_term(small_digits: Path, tmp_path: Path) -> None:
    opts = fast_train_options(max_epochs=3)
    opts["optim_wrapper.optimizer.lr"] = 1e12
    opts["optim_wrapper.clip_grad"] = None
    with pytest.raises(TrainingDiverged, match=r"training stopped: loss\w* is (nan|inf|-inf) at iteration \d+ \(epoch \d\)"):
        train(str(TINY_RETINANET), str(tmp_path), opts, str(small_digits))
