"""``retconf reproduce --executor slurm`` (retconf/slurm.py): the options and their errors, and the
quick preset through a real single-node Slurm (tests/slurm_cluster.py) against the local run of
the same preset (the session's ``quick_run``): the same dumps bit for bit, a training killed
mid-run resumed by rerunning the command, an unknown partition refused with one line."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from retconf.cli import main
from retconf.errors import UsageError
from retconf.slurm import FAILED_STATES, SlurmOptions, _submission_error, queue_states
from tests.conftest import ROOT
from tests.slurm_cluster import Cluster, start, stop


# ------------------------------------------------------------------ options (no Slurm needed)
def test_options_become_submitit_parameters() -> None:
    opts = SlurmOptions(partition="gpu", account="det", gpus=1, cpus=8, time_min=120, mem_gb=32,
                        sbatch=("qos=high", "constraint=a100"))
    assert opts.executor_parameters() == {
        "timeout_min": 120, "cpus_per_task": 8, "tasks_per_node": 1, "nodes": 1, "slurm_array_parallelism": 256,
        "gpus_per_node": 1, "slurm_partition": "gpu", "slurm_account": "det", "mem_gb": 32,
        "slurm_additional_parameters": {"qos": "high", "constraint": "a100"}}
    assert "gpus_per_node" not in SlurmOptions().executor_parameters()
    assert opts.with_overrides(partition="cpu", gpus=None).partition == "cpu"


@pytest.mark.parametrize("kwargs, message", [
    ({"cpus": 0}, "--slurm-cpus: must be an integer ≥ 1, got 0"),
    ({"gpus": -1}, "--slurm-gpus: must be an integer ≥ 0, got -1"),
    ({"time_min": 1.5}, "--slurm-time-min: must be an integer ≥ 1, got 1.5"),
    ({"mem_gb": 0}, "--slurm-mem-gb: must be a positive number, got 0"),
    ({"sbatch": ("--qos=high",)}, "--slurm-sbatch '--qos=high': give an sbatch option as NAME=VALUE"),
])
def test_bad_options_are_refused_naming_the_option(kwargs: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SlurmOptions(**kwargs)


def test_a_config_file_sets_options_and_names_its_bad_fields(tmp_path: Path) -> None:
    good = tmp_path / "slurm.toml"
    good.write_text('[slurm]\npartition = "gpu"\ngpus = 1\ntime_min = 600\nsbatch = ["qos=high"]\n')
    assert SlurmOptions.load(good) == SlurmOptions(partition="gpu", gpus=1, time_min=600, sbatch=("qos=high",))
    cases = {'[slurm]\npartion = "gpu"\n': "field 'slurm.partion' is not one of",
             '[slurm]\ncpus = 0\n': "field 'slurm.cpus': must be an integer ≥ 1, got 0",
             '[slurm]\nsbatch = "qos=high"\n': "field 'slurm.sbatch' must be a list of strings",
             'partition = "gpu"\n': "missing table [slurm]",
             '[slurm\n': "not TOML"}
    for text, message in cases.items():
        bad = tmp_path / "bad.toml"
        bad.write_text(text)
        with pytest.raises(UsageError) as e:
            SlurmOptions.load(bad)
        assert str(e.value).startswith(f"{bad}: ") and message in str(e.value), (text, str(e.value))


def test_the_cli_refuses_slurm_options_without_the_slurm_executor(tmp_path: Path, capsys: pytest.CaptureFixture,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["reproduce", "--preset", "quick", "--slurm-partition", "gpu", "--out", str(tmp_path / "r")]) == 2
    assert "--slurm-partition: needs --executor slurm" in capsys.readouterr().err
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    assert main(["reproduce", "--preset", "quick", "--executor", "slurm", "--out", str(tmp_path / "r")]) == 2
    assert "--executor slurm: sbatch is not on PATH" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_sbatchs_complaint_becomes_one_line() -> None:
    err = subprocess.CalledProcessError(1, ["sbatch"], output=b"sbatch: error: invalid partition specified: nope\n"
                                        b"sbatch: error: Batch job submission failed: Invalid partition name specified\n")
    assert str(_submission_error(err, SlurmOptions(partition="nope"))) == \
        "sbatch refused the jobs (partition=nope, cpus=1, time_min=1440): invalid partition specified: nope"


# ------------------------------------------------------------------ a real single-node Slurm
@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    started = start(tmp_path_factory.mktemp("slurm"))
    if isinstance(started, str):
        pytest.skip(started)
    yield started
    stop(started)


def _reproduce(cluster: Cluster, quick_run: dict, run: Path, *extra: str, wait: bool = True):
    # the options through a config file: a look at the queue every second, two tasks at a time on
    # the two cores (the third starts when one has finished)
    config = run.parent / "slurm.toml"
    config.write_text("[slurm]\ncpus = 1\npoll_s = 1\narray_parallelism = 2\n")
    args = [sys.executable, "-m", "retconf.cli", "reproduce", "--preset", "quick", "--seeds", "1",
            "--executor", "slurm", "--slurm-config", str(config),
            "--out", str(run), "--data-root", str(quick_run["data"]), "--reports", str(run.parent / "reports"), *extra]
    env = cluster.env()
    if wait:
        return subprocess.run(args, capture_output=True, text=True, timeout=900, cwd=ROOT, env=env)
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT, env=env)


def _shards(dump: Path) -> list:
    return [r["sha256"] for r in json.loads((dump / "metadata.json").read_text())["shards"]]


def test_an_unknown_partition_is_refused_with_one_line(cluster: Cluster, quick_run: dict, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(quick_run["run"] / "pretrain", run / "pretrain")
    res = _reproduce(cluster, quick_run, run, "--slurm-partition", "nope")
    assert res.returncode == 2, res.stderr[-2000:]
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("retconf reproduce: error:")]
    assert errors == ["retconf reproduce: error: sbatch refused the jobs (partition=nope, cpus=1, time_min=1440): "
                      "invalid partition specified: nope"], res.stderr[-2000:]


@pytest.mark.timeout(1800)
def test_the_quick_preset_through_slurm_equals_the_local_run_and_resumes_a_cancelled_training(
        cluster: Cluster, quick_run: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quick preset's three trainings (seed 0) as a Slurm array, two at a time. Once one has
    finished, a task that has not is killed while it trains (``scancel --signal=KILL``): the run
    stops naming the task, its job and its log, and cancels the rest. The same command again does
    not submit the finished task (its training and dump are reused) and resubmits the others; the
    killed training resumes from its last checkpoint (the quick preset trains one epoch, so from
    its start). The dumps equal the local run's shard by shard (1 thread per training in both: the
    local run's 2 jobs on 2 cores, Slurm's cpus = 1), and the reports are written."""
    monkeypatch.setenv("SLURM_CONF", str(cluster.conf))  # this process's squeue (queue_states) asks the test cluster
    run = tmp_path / "run"
    shutil.copytree(quick_run["run"] / "pretrain", run / "pretrain")  # the shared backbone, reused
    proc = _reproduce(cluster, quick_run, run, wait=False)
    # once a task has finished, kill a running one as soon as its log says it began (a
    # quick-preset training takes seconds: the check below shows it had not finished)
    victim, deadline, early = None, time.time() + 600, set()
    while victim is None and time.time() < deadline and proc.poll() is None:
        record = run / "slurm" / "jobs.json"
        if record.is_file():
            jobs = json.loads(record.read_text())
            states = queue_states([j["job_id"] for j in jobs.values()])
            done = [k for k, j in jobs.items() if any((run / "slurm" / j["job_id"]).glob("*_result.pkl"))]
            for key, j in jobs.items():
                log = Path(j["log"])
                began = states.get(j["job_id"]) == "RUNNING" and log.is_file() and f"retconf: {key} on " in log.read_text()
                if began and not done:
                    early.add(key)  # began beside the first: it may be past its training already
                # a task that began after one finished (and has not written its result: Slurm
                # shows a finished task RUNNING a moment longer)
                if done and began and key not in done and key not in early:
                    # SIGKILL to the task's step at once: a plain scancel sends SIGTERM, which
                    # submitit's task ignores until Slurm's KillWait ends, time enough to finish
                    subprocess.run(["scancel", "--signal=KILL", j["job_id"]], env=cluster.env(), check=True)
                    victim = (key, j["job_id"])
                    break
        time.sleep(0.1)
    assert victim is not None, proc.stdout.read()[-3000:] if proc.stdout else ""
    out, _ = proc.communicate(timeout=600)
    artefacts = ROOT / "test-artefacts" / "slurm"  # the console of each step, kept for docs/cluster.md
    artefacts.mkdir(parents=True, exist_ok=True)
    (artefacts / "1-killed.log").write_text(out)
    work = run / victim[0]
    assert not (work / "metrics.json").exists()  # killed before its training finished
    assert proc.returncode != 0
    errors = [ln for ln in out.splitlines() if ln.startswith("retconf reproduce: error:")]
    assert len(errors) == 1 and f"{victim[0]} (Slurm job {victim[1]}) ended " in errors[0], out[-3000:]
    ended = errors[0].split(" ended ", 1)[1].split(";")[0]
    assert ended in FAILED_STATES, errors[0]  # FAILED or CANCELLED, as Slurm records a killed step
    assert f"log {run / 'slurm'}" in errors[0]
    shown = subprocess.run([sys.executable, "-m", "retconf.cli", "jobs", str(run)], capture_output=True, text=True,
                           env=cluster.env(), cwd=ROOT)
    assert shown.returncode == 1 and victim[1] in shown.stdout and ended in shown.stdout, shown.stdout
    (artefacts / "2-jobs.txt").write_text(shown.stdout)
    assert not (run / "summary.json").exists()  # nothing claims the run finished

    first_ids = json.loads((run / "slurm" / "jobs.json").read_text())
    finished = [k for k, j in first_ids.items() if any((run / "slurm" / j["job_id"]).glob("*_result.pkl"))]
    assert finished  # the task that finished before the cancel
    res = _reproduce(cluster, quick_run, run)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (artefacts / "3-rerun.log").write_text(res.stdout)
    ids = json.loads((run / "slurm" / "jobs.json").read_text())
    assert ids[victim[0]]["job_id"] != first_ids[victim[0]]["job_id"]  # resubmitted
    for k in finished:  # a finished training and dump are not submitted again
        assert ids[k]["job_id"] == first_ids[k]["job_id"] and f"{k}: finished earlier" in res.stdout, k
        assert f"slurm    {k} " not in res.stdout, k
    summary = json.loads((run / "summary.json").read_text())
    assert summary["executor"]["kind"] == "slurm" and summary["executor"]["options"]["cpus"] == 1
    local = json.loads((quick_run["run"] / "summary.json").read_text())
    for name in ("retinanet", "iou_aware", "retinanet_conf"):
        assert _shards(run / "seed_0" / "dumps" / name) == _shards(quick_run["run"] / "seed_0" / "dumps" / name), name
        assert summary["metrics"]["0"][name] == local["metrics"]["0"][name], name
    assert os.path.isfile(run.parent / "reports" / "index.html")
