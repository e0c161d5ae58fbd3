"""Trainings side by side (retconf/jobs.py): how many at once, progress from the logs, and a
``kill -9`` of the pipeline leaving no training behind (then a rerun resumes)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retconf.errors import UsageError
from retconf.jobs import balanced_jobs, resolve_jobs, where
from tests.conftest import ROOT


def test_balanced_jobs_leaves_no_core_idle_in_the_last_round() -> None:
    assert balanced_jobs(3, 2) == 3  # 2 at a time would run the third alone on one core
    assert balanced_jobs(9, 2) == 3  # 3 rounds of 3 (4.5 job-times) beat 5 rounds of 2 (5)
    assert balanced_jobs(20, 2) == 2  # 10 rounds of 2: no idle core
    assert balanced_jobs(1, 2) == 1 and balanced_jobs(2, 2) == 2


def test_resolve_jobs_single_threaded_jobs_without_cuda_and_one_with() -> None:
    assert resolve_jobs(None, 9, cpus=2, has_cuda=lambda: False) == (3, 1)
    assert resolve_jobs(None, 1, cpus=2, has_cuda=lambda: False) == (1, 1)  # one thread on any CPU: the bits depend on it
    assert resolve_jobs(None, 2, cpus=16, has_cuda=lambda: False) == (2, 1)
    assert resolve_jobs(None, 30, cpus=16, has_cuda=lambda: False) == (10, 1)  # 3 rounds on 8 cores
    assert resolve_jobs(None, 9, cpus=16, has_cuda=lambda: True) == (1, 16)
    assert resolve_jobs(3, 9, cpus=2, has_cuda=lambda: False) == (3, 1)
    with pytest.raises(UsageError, match="--jobs: must be at least 1, got 0"):
        resolve_jobs(0, 9, cpus=2)


def test_where_reads_the_last_training_line(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    assert where(log) == ""
    log.write_text("x\n11/26 - mmengine - INFO - Epoch(train) [1][ 20/122]  lr: 1e-3\n"
                   "11/26 - mmengine - INFO - Epoch(train) [3][100/122]  lr: 1e-3\n")
    assert where(log) == "epoch 3 it 100/122"


def _children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
@pytest.mark.timeout(1800)  # up to 600 s until a training starts, then a rerun of up to 900 s
def test_kill_9_of_the_pipeline_kills_its_trainings_and_a_rerun_finishes(tmp_path: Path) -> None:
    # one seed: three trainings, two at a time, are enough to kill a pipeline with its jobs running;
    # no reports (two seeds and the report stage cost the suite a minute and checked nothing here)
    args = [sys.executable, "-m", "retconf.cli", "reproduce", "--preset", "quick", "--seeds", "1", "--jobs", "2",
            "--out", str(tmp_path / "run"), "--data-root", str(tmp_path / "data"),
            "--reports", str(tmp_path / "reports"), "--no-reports", "--cfg-options", "train_cfg.max_epochs=2",
            "train_cfg.val_interval=2", "param_scheduler.1.end=2", "param_scheduler.1.T_max=2"]
    log = tmp_path / "first.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 600
    training = []
    while time.monotonic() < deadline and proc.poll() is None:
        training = [p for p in (tmp_path / "run" / "logs").glob("*.log") if "Epoch(train)" in p.read_text()]
        if training:
            break
        time.sleep(0.2)
    assert training, f"no training started: {log.read_text()[-3000:]}"
    workers = _children(proc.pid)
    assert len(workers) >= 2  # the job processes (and their resource tracker)
    os.kill(proc.pid, signal.SIGKILL)  # the pipeline alone, as a crash would
    proc.wait()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)], "trainings kept running after the pipeline died"

    again = subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert again.returncode == 0, again.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["jobs"] == 2 and summary["threads_per_job"] >= 1
    assert set(summary["metrics"]["0"]) == {"retinanet", "iou_aware", "retinanet_conf"}
    assert not (tmp_path / "reports").exists() and "reports: left out (--no-reports)" in again.stdout
    table = again.stdout[again.stdout.index("== summary"):]
    assert table.index("\nretinanet ") < table.index("\niou_aware ") < table.index("\nretinanet_conf ")  # plan order
