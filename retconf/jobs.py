"""Running independent trainings side by side, each in its own process with its own threads.

On a CPU the tiny detectors scale poorly past one thread per process (small convolutions:
``benchmarks/train_profile.py`` measures one process with 2 threads at 1.6x one thread, not 2x),
and a training with 2 compute threads plus a data-loading worker on 2 cores oversubscribes the
machine (OpenMP threads spin-wait while the worker holds a core: the system time seen on slow
machines). So on a machine without CUDA ``retconf reproduce`` runs several single-threaded
trainings at once (:func:`balanced_jobs`: about one per core, a few more when that keeps a core
from idling in the last round), data loaded in each job's own thread: no spin-waiting threads.
Without CUDA each job gets one compute thread, on any machine (:func:`resolve_jobs`): a
training's bits change with its thread count (measured: docs/reproducibility.md), so a fixed
count keeps a seed's numbers independent of the core count. With CUDA the device computes and
the job gets ``cpus // jobs`` threads for its data.

Each job's console output goes to ``RUN/logs/<seed>-<model>.log``; the parent prints a line
when a job starts or ends and, every ``heartbeat_s`` seconds, where each running job is.
Workers die with the parent (Linux ``PR_SET_PDEATHSIG``), so a ``kill -9`` of the pipeline
leaves no training running behind; the rerun resumes each from its last checkpoint.
"""
from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

from .errors import UsageError

# Overrides applied to each job's configs inside a worker (not part of its recorded inputs: they
# change how data reaches the model, not which data or in what order).
IN_PROCESS_LOADING = {
    f"{split}_dataloader.{key}": value
    for split in ("train", "val", "test")
    for key, value in (("num_workers", 0), ("persistent_workers", False))
}
_EPOCH = re.compile(r"Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


# One compute thread per CPU training and for the shared pretraining, whatever the core count:
# the summation order, and so the weights' last bits, change with the thread count.
CPU_TRAINING_THREADS = 1


def resolve_jobs(requested: int | None, n_pending: int, cpus: int | None = None,
                 has_cuda: Callable[[], bool] | None = None) -> tuple[int, int]:
    """(jobs, threads per job) for ``n_pending`` trainings.

    ``requested`` None means automatic: 1 with CUDA (one device), else :func:`balanced_jobs`
    on up to 8 cores. Threads per job: :data:`CPU_TRAINING_THREADS` without CUDA (a training's
    bits depend on its thread count, so it must not follow the core count); with CUDA
    ``cpus // jobs`` (at least 1).
    """
    cpus = cpus or os.cpu_count() or 1
    if requested is not None and requested < 1:
        raise UsageError(f"--jobs: must be at least 1, got {requested}")
    cuda = (has_cuda or cuda_available)()
    if requested is None:
        requested = 1 if cuda else balanced_jobs(n_pending, min(cpus, 8))
    jobs = max(1, min(requested, n_pending))
    return jobs, (max(1, cpus // jobs) if cuda else CPU_TRAINING_THREADS)


def balanced_jobs(n: int, cores: int) -> int:
    """How many single-threaded jobs to run at once on ``cores`` so that ``n`` equal jobs end
    soonest: J in [cores, 2·cores] minimising rounds · J / cores (ceil(n / J) rounds, each
    taking J / cores job-times when the J processes share the cores), the smallest J on ties.
    E.g. 3 or 9 trainings on 2 cores: 3 at a time (no round with a core idle); 20: 2."""
    if n <= cores:
        return max(1, n)
    best = min(range(cores, 2 * cores + 1), key=lambda j: (-(-n // j) * j / cores, j))
    return min(best, n)


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _worker_init(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    os.environ["MKL_NUM_THREADS"] = str(threads)
    _die_with_parent()
    import torch

    torch.set_num_threads(threads)


def _run_logged(func: Callable[..., Any], log: str, args: tuple) -> Any:
    """Call ``func(*args)`` with this process's stdout and stderr (fds 1 and 2) sent to ``log``."""
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    saved = sys.stdout, sys.stderr, os.dup(1), os.dup(2)
    with open(log, "w", buffering=1) as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        sys.stdout = sys.stderr = f
        try:
            return func(*args)
        finally:
            f.flush()
            sys.stdout, sys.stderr = saved[0], saved[1]
            os.dup2(saved[2], 1)
            os.dup2(saved[3], 2)
            os.close(saved[2])
            os.close(saved[3])


def where(log: Path) -> str:
    """'epoch E it I/N' from the last mmengine training line of ``log`` ('' when none yet)."""
    try:
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 20000))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    found = _EPOCH.findall(tail)
    if not found:
        return "dumping" if "dump" in tail.lower() and "Epoch(val)" in tail else ""
    epoch, it, n = found[-1]
    return f"epoch {epoch} it {it}/{n}"


def run_parallel(func: Callable[..., Any], items: Sequence[Any], keys: Sequence[str], args: tuple,
                 jobs: int, threads: int, log_dir: Path, heartbeat_s: float = 60.0) -> Iterator[Any]:
    """Yield ``func(item, *args)`` for every item as each finishes, ``jobs`` processes at a
    time, each with ``threads`` threads and its output in ``log_dir/<key>.log``.

    The first failure stops the rest (running jobs are killed; their checkpoints stay, so a
    rerun resumes them) and is re-raised after naming the job's log.
    """
    import multiprocessing

    log_dir.mkdir(parents=True, exist_ok=True)
    logs = {key: log_dir / (key.replace("/", "-") + ".log") for key in keys}
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(threads,))
    running: dict[Future, str] = {}
    started: dict[str, float] = {}
    ok = False
    try:
        for item, key in zip(items, keys):
            logs[key].unlink(missing_ok=True)  # its existence says the job has started
            running[pool.submit(_run_logged, func, str(logs[key]), (item, *args))] = key
        done_n, total = 0, len(running)
        last_beat = time.time()
        while running:
            finished, _ = wait(running, timeout=5, return_when=FIRST_COMPLETED)
            for fut in finished:
                key = running.pop(fut)
                error = fut.exception()
                if error is not None:
                    print(f"failed   {key}: see {logs[key]}", file=sys.stderr, flush=True)
                    raise error
                done_n += 1
                result = fut.result()
                print(f"finished {key} in {max(0.0, time.time() - started.get(key, time.time())):.0f} s "
                      f"({done_n}/{total})", flush=True)
                yield result
            for fut in list(running):
                key = running[fut]
                if key not in started and (logs[key].exists() or fut.done()):
                    started[key] = time.time()
                    print(f"started  {key} (log: {logs[key]})", flush=True)
            if running and time.time() - last_beat >= heartbeat_s:
                last_beat = time.time()
                states = [f"{k}: {where(logs[k]) or 'starting'}" for k in running.values() if k in started]
                if states:
                    print("running  " + "; ".join(states), flush=True)
        ok = True
    finally:
        if not ok:
            for proc in list(getattr(pool, "_processes", {}).values()):
                proc.kill()
        pool.shutdown(wait=ok, cancel_futures=True)
