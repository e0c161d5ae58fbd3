"""``retconf reproduce --executor slurm``: the reproduction's trainings and dumps as Slurm jobs.

Built on submitit (facebookincubator/submitit, the usual way Python detection code reaches Slurm:
detectron2 and many research codebases use it): each (seed, detector) training with its dump is
one task of a Slurm job array, submitted from the machine that runs ``retconf reproduce``. The
dataset, the shared backbone pretraining (seconds to minutes on the tiny presets; the COCO
presets have none) and the reports run in the submitting process, before and after the array.
The run directory is the same as a local run's (:mod:`analysis.inputs.runs`), and so are its caching
and resume rules, because each task runs :func:`retconf.pipeline.run_job`:

- a finished training with the same inputs is not rerun, nor a dump of the same checkpoint;
- a task that Slurm preempts or that reaches its time limit is requeued by submitit (its
  ``checkpoint`` method, :class:`TrainingTask`) and resumes from its last checkpoint;
- a task that fails or is cancelled stops the run with one error naming the task, its Slurm job
  id and its log, and the last lines of that log; rerunning the same command resubmits only
  what is not finished, and a killed training resumes from its last checkpoint.

Where the tasks are is polled with ``squeue`` (every state a job passes through, also on a
cluster without Slurm accounting, where ``sacct`` does not answer) and, for jobs ``squeue`` has
forgotten, submitit's ``sacct`` view. ``RUN/slurm/jobs.json`` records each task's job id and log,
so ``retconf jobs RUN`` shows them later.

The sbatch settings come from the command line (``--slurm-partition`` …) or a TOML file
(``--slurm-config FILE``, a ``[slurm]`` table with the same names), the command line winning.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from .errors import RetconfError, UsageError
from .io import atomic_write_text

# Slurm job states after which a task will not run again by itself (squeue's long names).
FAILED_STATES = frozenset({"FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL",
                           "DEADLINE", "REVOKED", "SPECIAL_EXIT"})
JOBS_FILE = "jobs.json"


class SlurmError(RetconfError):
    """A Slurm task failed, or Slurm refused or lost it."""


@dataclass(frozen=True)
class SlurmOptions:
    """sbatch settings of every training task.

    ``partition`` and ``account`` are Slurm's (None: the cluster's default); ``gpus`` per task
    (0 on a CPU partition); ``cpus`` per task (also the task's torch threads); ``time_min``, the
    time limit in minutes; ``mem_gb`` per task (None: the partition's default); ``sbatch``,
    extra sbatch options as ``name=value`` (e.g. ``qos=high``, ``constraint=a100``);
    ``array_parallelism``, tasks of the array running at once; ``poll_s``, seconds between two
    looks at the queue."""

    partition: str | None = None
    account: str | None = None
    gpus: int = 0
    cpus: int = 1
    time_min: int = 24 * 60
    mem_gb: float | None = None
    sbatch: tuple[str, ...] = ()
    array_parallelism: int = 256
    poll_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("gpus", "cpus", "time_min", "array_parallelism"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "gpus" else 1):
                raise UsageError(f"--slurm-{name.replace('_', '-')}: must be an integer ≥ {0 if name == 'gpus' else 1}, "
                                 f"got {value!r}")
        if self.mem_gb is not None and not (isinstance(self.mem_gb, (int, float)) and self.mem_gb > 0):
            raise UsageError(f"--slurm-mem-gb: must be a positive number, got {self.mem_gb!r}")
        if not (isinstance(self.poll_s, (int, float)) and self.poll_s > 0):
            raise UsageError(f"--slurm-poll-s: must be a positive number, got {self.poll_s!r}")
        for opt in self.sbatch:
            if "=" not in opt or opt.startswith("-") or not opt.split("=", 1)[0]:
                raise UsageError(f"--slurm-sbatch {opt!r}: give an sbatch option as NAME=VALUE, e.g. qos=high")

    @classmethod
    def load(cls, path: str | Path) -> SlurmOptions:
        """The ``[slurm]`` table of a TOML file (keys as the fields of this class).

        Raises:
            UsageError: naming the file and the field that is unknown or of the wrong type."""
        import tomllib

        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except OSError as e:
            raise UsageError(f"--slurm-config {path}: {e.strerror or e}") from None
        except tomllib.TOMLDecodeError as e:
            raise UsageError(f"{path}: not TOML: {e}") from None
        table = data.get("slurm")
        if not isinstance(table, dict):
            raise UsageError(f"{path}: missing table [slurm]")
        known = {f.name for f in fields(cls)}
        for key in table:
            if key not in known:
                raise UsageError(f"{path}: field 'slurm.{key}' is not one of {', '.join(sorted(known))}")
        if "sbatch" in table:
            if not isinstance(table["sbatch"], list) or not all(isinstance(s, str) for s in table["sbatch"]):
                raise UsageError(f"{path}: field 'slurm.sbatch' must be a list of strings NAME=VALUE")
            table = {**table, "sbatch": tuple(table["sbatch"])}
        try:
            return cls(**table)
        except UsageError as e:
            raise UsageError(f"{path}: field 'slurm.{str(e).split(':')[0].removeprefix('--slurm-').replace('-', '_')}'"
                             f":{str(e).split(':', 1)[1]}") from None

    def with_overrides(self, **given: Any) -> SlurmOptions:
        """These options with every ``given`` value that is not None."""
        return replace(self, **{k: v for k, v in given.items() if v is not None})

    def executor_parameters(self) -> dict:
        """The options as submitit's ``AutoExecutor.update_parameters`` keywords."""
        params: dict[str, Any] = {"timeout_min": self.time_min, "cpus_per_task": self.cpus, "tasks_per_node": 1,
                                  "nodes": 1, "slurm_array_parallelism": self.array_parallelism}
        if self.gpus:
            params["gpus_per_node"] = self.gpus
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.account:
            params["slurm_account"] = self.account
        if self.mem_gb is not None:
            params["mem_gb"] = self.mem_gb
        if self.sbatch:
            params["slurm_additional_parameters"] = dict(opt.split("=", 1) for opt in self.sbatch)
        return params


class TrainingTask:
    """The callable each Slurm task runs: one job's training and dump
    (:func:`retconf.pipeline.run_job`) with ``threads`` torch threads and its data loaded in the
    task's own process, as a local worker does. submitit calls :meth:`checkpoint` when Slurm
    preempts the task or its time runs out; the resubmitted task resumes from the last
    checkpoint because :func:`~retconf.pipeline.run_job` always does."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __call__(self, job: Any, context: Any) -> Any:
        os.environ["OMP_NUM_THREADS"] = str(self.threads)
        os.environ["MKL_NUM_THREADS"] = str(self.threads)
        import torch

        from .jobs import IN_PROCESS_LOADING
        from .pipeline import run_job

        torch.set_num_threads(self.threads)
        print(f"retconf: {job.key} on {os.uname().nodename}, {self.threads} thread(s)", flush=True)
        return run_job(job, context, IN_PROCESS_LOADING)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def slurm_dir(run_dir: Path) -> Path:
    """Where submitit keeps a run's pickles and logs: ``RUN/slurm``."""
    return Path(run_dir) / "slurm"


def _submission_error(e: Exception, options: SlurmOptions) -> UsageError:
    """sbatch's own complaint in one line (an unknown partition, account, QOS …)."""
    text = str(getattr(e, "stderr", "") or e)
    if isinstance(getattr(e, "output", None), bytes):
        text += e.output.decode(errors="replace")  # type: ignore[attr-defined]
    lines = [ln.strip() for ln in text.splitlines() if "error" in ln.lower()] or [text.strip().splitlines()[-1]]
    first = next((ln for ln in lines if "sbatch: error:" in ln), lines[0])
    return UsageError(f"sbatch refused the jobs ({_settings(options)}): {first.split('sbatch: error:')[-1].strip()}")


def _settings(options: SlurmOptions) -> str:
    shown = {k: v for k, v in asdict(options).items() if v not in (None, (), 0) and k not in ("poll_s",
                                                                                            "array_parallelism")}
    return ", ".join(f"{k}={v}" for k, v in shown.items())


def submit(jobs: Sequence[Any], context: Any, options: SlurmOptions, run_dir: Path, name: str = "retconf") -> list:
    """Submit ``jobs`` as one Slurm job array; record their ids in ``RUN/slurm/jobs.json``.

    Raises:
        UsageError: sbatch refused the array (one line, sbatch's reason)."""
    import submitit

    folder = slurm_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    executor = submitit.AutoExecutor(folder=folder / "%j", cluster="slurm")
    executor.update_parameters(name=name, **options.executor_parameters())
    import contextlib
    import io

    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit echoes sbatch's complaint: said once, below
            submitted = executor.map_array(TrainingTask(options.cpus), list(jobs), [context] * len(jobs))
    except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError, OSError) as e:
        raise _submission_error(e, options) from None
    record = read_jobs(run_dir)
    for job, sj in zip(jobs, submitted):
        record[job.key] = {"job_id": sj.job_id, "log": str(sj.paths.stdout).replace("%j", sj.job_id),
                           "submitted": time.strftime("%Y-%m-%d %H:%M:%S")}
    atomic_write_text(folder / JOBS_FILE, json.dumps(record, indent=1, sort_keys=True))
    return submitted


def read_jobs(run_dir: Path) -> dict:
    """``RUN/slurm/jobs.json``: task key -> {job_id, log, submitted} ({} when none)."""
    path = slurm_dir(run_dir) / JOBS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise SlurmError(f"{path}: unreadable ({e})") from None


def queue_states(job_ids: Sequence[str]) -> dict[str, str]:
    """Job id -> Slurm state (``PENDING``, ``RUNNING``, ``COMPLETED``, ``FAILED`` …) of the jobs
    Slurm still holds (``squeue -r -t all``: one line per array task, ``ARRAYID_TASK``; finished
    jobs stay for the cluster's MinJobAge). Jobs squeue does not know are left out."""
    if not job_ids:
        return {}
    ids = sorted({j.split("_")[0] for j in job_ids})
    res = subprocess.run(["squeue", "-h", "-r", "-t", "all", "-o", "%i %T", "-j", ",".join(ids)],
                         capture_output=True, text=True, timeout=60)
    states: dict[str, str] = {}
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2:
            states[parts[0]] = parts[1]
    return states


def task_state(sj: Any, states: dict[str, str]) -> str:
    """One submitit job's state: ``DONE`` once its result is written, else what squeue says,
    else submitit's own (sacct) view, else ``UNKNOWN``."""
    if sj.paths.result_pickle.exists():
        return "DONE"
    if sj.job_id in states:
        return states[sj.job_id]
    try:
        return str(sj.state)
    except Exception:  # noqa: BLE001 (sacct absent or refusing: the state is unknown, not an error)
        return "UNKNOWN"


def log_tail(path: str | Path, lines: int = 15) -> str:
    """The last ``lines`` lines of a task's log ('' when it has none yet)."""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def wait_for(submitted: Sequence[Any], keys: Sequence[str], poll_s: float = 10.0,
             lost_after_s: float = 120.0) -> Iterator[Any]:
    """Yield each task's :class:`~retconf.pipeline.JobResult` as it finishes, printing a line
    whenever a task changes state.

    Raises:
        SlurmError: a task failed, was cancelled or timed out for good, or vanished from Slurm
            without a result for ``lost_after_s`` seconds: naming the task, its job id and log,
            with the log's last lines.
    """
    import submitit

    pending = dict(zip(keys, submitted))
    last: dict[str, str] = {}
    unknown_since: dict[str, float] = {}
    total, done_n = len(pending), 0
    while pending:
        states = queue_states([sj.job_id for sj in pending.values()])
        for key, sj in list(pending.items()):
            state = task_state(sj, states)
            log = str(sj.paths.stdout).replace("%j", sj.job_id)
            if state != last.get(key):
                last[key] = state
                if state != "DONE":
                    print(f"slurm    {key} (job {sj.job_id}): {state.lower()}", flush=True)
            if state == "DONE":
                try:
                    result = sj.result()
                except (submitit.core.utils.FailedJobError, submitit.core.utils.UncompletedJobError) as e:
                    raise SlurmError(f"{key} (Slurm job {sj.job_id}) failed; log {log}:\n"
                                     f"{log_tail(sj.paths.stderr) or str(e)[-2000:]}") from None
                done_n += 1
                print(f"finished {key} (job {sj.job_id}, {done_n}/{total})", flush=True)
                del pending[key]
                yield result
            elif state.split()[0] in FAILED_STATES:
                raise SlurmError(f"{key} (Slurm job {sj.job_id}) ended {state}; log {log}:\n"
                                 f"{log_tail(sj.paths.stderr) or log_tail(log)}")
            elif state == "UNKNOWN" and sj.job_id not in states:
                first = unknown_since.setdefault(key, time.time())
                if time.time() - first > lost_after_s:
                    raise SlurmError(f"{key} (Slurm job {sj.job_id}) left the queue without a result; log {log}:\n"
                                     f"{log_tail(sj.paths.stderr) or log_tail(log)}")
            else:
                unknown_since.pop(key, None)
        if pending:
            time.sleep(poll_s)


def run_slurm_jobs(jobs: Sequence[Any], context: Any, options: SlurmOptions, run_dir: Path) -> Iterator[Any]:
    """Submit ``jobs`` (:class:`retconf.pipeline.Job`) as one Slurm array and yield each
    :class:`~retconf.pipeline.JobResult` as it finishes. A failure stops the run (the other
    tasks are cancelled: their checkpoints stay, so the rerun resumes them)."""
    if not jobs:
        return
    submitted = submit(jobs, context, options, run_dir)
    ok = False
    try:
        yield from wait_for(submitted, [j.key for j in jobs], options.poll_s)
        ok = True
    finally:
        if not ok:
            cancel([sj.job_id for sj in submitted if not sj.paths.result_pickle.exists()])


def cancel(job_ids: Sequence[str]) -> None:
    """``scancel`` the given jobs (quietly: some may have ended)."""
    if job_ids:
        subprocess.run(["scancel", *job_ids], capture_output=True, text=True, timeout=60)


def job_rows(run_dir: Path) -> list[dict]:
    """Each recorded task of a run: key, job id, state, log, and the log's last line for a
    failed task (``retconf jobs RUN``)."""
    record = read_jobs(run_dir)
    states = queue_states([r["job_id"] for r in record.values()])
    rows = []
    for key, r in record.items():
        folder = slurm_dir(run_dir) / r["job_id"]
        result = next(folder.glob(f"{r['job_id']}_*_result.pkl"), None) if folder.is_dir() else None
        state = "DONE" if result else states.get(r["job_id"], "UNKNOWN (gone from squeue)")
        row = {"task": key, "job_id": r["job_id"], "state": state, "log": r["log"]}
        if state.split()[0] in FAILED_STATES:
            row["last_line"] = log_tail(r["log"].replace("_log.out", "_log.err"), 1) or log_tail(r["log"], 1)
        rows.append(row)
    return rows


def print_jobs(run_dir: Path, out: Any = sys.stdout) -> int:
    """Print a run's Slurm tasks as a table; return how many failed."""
    rows = job_rows(run_dir)
    if not rows:
        print(f"{run_dir}: no Slurm jobs recorded ({slurm_dir(run_dir) / JOBS_FILE} absent)", file=out)
        return 0
    width = max(len(r["task"]) for r in rows)
    print(f"{'task':<{width}}  {'job':>10}  state", file=out)
    failed = 0
    for r in rows:
        print(f"{r['task']:<{width}}  {r['job_id']:>10}  {r['state']}", file=out)
        if "last_line" in r:
            failed += 1
            print(f"{'':<{width}}  {'':>10}  log {r['log']}: {r['last_line']}", file=out)
    return failed
