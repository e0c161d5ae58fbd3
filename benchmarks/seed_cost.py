"""CPU-seconds of one tiny training with and without the frozen-backbone caches, and whether the bits agree.

Issue 39, point 2 (cheaper seeds). With the recipe's frozen backbone and deterministic pipeline,
``retconf.engine.FrozenFeatureCacheHook`` keeps each training image as the pipeline made it and its
backbone features after the first epoch (``retconf train --feature-cache``; ``retconf reproduce``
uses it unless ``--no-feature-cache``). This benchmark trains the same jobs of a run twice, with
and without the caches, each training in its own process with one compute thread (as the
pipeline's jobs run), and records for each:

- CPU-seconds (user + system, from the child's rusage) and wall seconds of the training alone
  (no dump), and the median seconds per iteration of epochs 2-8 from mmengine's log;
- the peak resident memory of the training process;
- whether its final weights equal the other arm's bit for bit, and equal the run's own
  checkpoint of that job (trained earlier by ``retconf reproduce`` on this machine).

The two arms of a job run at the same time (``--parallel 2``, default), so that a change of the
machine's load falls on both; ratios mean something within one run only.

    python benchmarks/seed_cost.py --run runs/tiny --seed 0 --out reports/benchmarks/seed_cost
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = {"without caches": False, "with caches": True}

_CHILD = """import json, resource, sys, time
from retconf.apis import train
config, work, options, data, cache = json.loads(sys.argv[1])
t = time.time()
train(config, work, options, data, feature_cache=cache)
r = resource.getrusage(resource.RUSAGE_SELF)
print("RESULT " + json.dumps({"wall": time.time() - t, "cpu": r.ru_utime + r.ru_stime, "maxrss_kb": r.ru_maxrss}))
"""
_ITER = re.compile(r"Epoch\(train\)\s*\[(\d+)\]\[\s*\d+/\d+\].*?\btime: ([0-9.]+)")


def train_arm(config: str, work: Path, options: dict, data: str, cache: bool) -> dict:
    """Train in a fresh one-thread process; its CPU and wall seconds, peak memory and log."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    args = json.dumps([config, str(work), options, data, cache])
    proc = subprocess.run([sys.executable, "-c", _CHILD, args], capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"training in {work} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(next(line[7:] for line in proc.stdout.splitlines() if line.startswith("RESULT ")))
    log = "\n".join(p.read_text() for p in sorted(work.rglob("*.log")))
    later = [float(t) for e, t in _ITER.findall(log) if int(e) >= 2]
    result["s_per_iter_later_epochs"] = statistics.median(later) if later else None
    result["cache_lines"] = [line.split(" - ")[-1] for line in log.splitlines()
                             if "cache" in line and " - mmengine - " in line][-4:]
    return result


def same_weights(a: Path, b: Path) -> bool:
    import torch

    from retconf.checkpoint import load_checkpoint_file

    sa, sb = (load_checkpoint_file(p)["state_dict"] for p in (a, b))
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", default="runs/tiny", help="a tiny run trained by retconf reproduce")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--detectors", nargs="+", default=["retinanet", "iou_aware", "retinanet_conf"])
    ap.add_argument("--work", default="/tmp/seed_cost")
    ap.add_argument("--parallel", type=int, default=2, help="trainings at once (default 2: both arms of a job)")
    ap.add_argument("--out", default="reports/benchmarks/seed_cost")
    args = ap.parse_args()

    from retconf.jobs import IN_PROCESS_LOADING
    from retconf.machine import machine_record
    from retconf.pipeline import plan_run

    run = plan_run("tiny", args.run, None, None, args.seed + 1, False, None, args.detectors)
    jobs = [j for j in run.jobs if j.seed == args.seed]
    tasks = [(job, arm, cache) for job in jobs for arm, cache in ARMS.items()]

    def one(task: tuple) -> tuple:
        job, arm, cache = task
        work = Path(args.work) / f"seed_{job.seed}" / job.name / ("cached" if cache else "plain")
        if work.exists():
            import shutil

            shutil.rmtree(work)
        t = time.strftime("%H:%M:%S")
        print(f"{t} {job.key} {arm}: training", flush=True)
        result = train_arm(job.config, work, {**job.options, **IN_PROCESS_LOADING}, str(run.data_dir), cache)
        print(f"{time.strftime('%H:%M:%S')} {job.key} {arm}: {result['cpu']:.0f} CPU-s", flush=True)
        return job, arm, work, result

    with ThreadPoolExecutor(args.parallel) as pool:
        done = list(pool.map(one, tasks))
    rows = []
    for job in jobs:
        arms = {arm: (work, result) for j, arm, work, result in done if j is job}
        final = f"epoch_{8}.pth"
        ckpts = {arm: work / final for arm, (work, _) in arms.items()}
        reference = job.work_dir / final
        row = {"job": job.key, "arms": {arm: r for arm, (_, r) in arms.items()},
               "same_bits_between_arms": same_weights(*ckpts.values()),
               "same_bits_as_run": {arm: (same_weights(c, reference) if reference.is_file() else None)
                                    for arm, c in ckpts.items()}}
        plain, cached = (arms[a][1] for a in ARMS)
        row["cpu_ratio"] = cached["cpu"] / plain["cpu"]
        rows.append(row)
    record = {"machine": machine_record(), "platform": platform.platform(), "run": args.run, "seed": args.seed,
              "rows": rows, "cpu_per_seed": {arm: sum(r["arms"][arm]["cpu"] for r in rows) for arm in ARMS}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))


def markdown(record: dict) -> str:
    arms = list(ARMS)
    lines = [f"# CPU-seconds of a tiny training with and without the frozen-backbone caches (seed {record['seed']})", "",
             f"{record['machine'].get('cpu', '')}; one compute thread per training, both arms of a job at once; "
             f"run `{record['run']}`.", "",
             "| training | " + " | ".join(f"{a}: CPU-s" for a in arms) + " | ratio | "
             + " | ".join(f"{a}: s/iter (epochs 2-8)" for a in arms) + " | "
             + " | ".join(f"{a}: peak MB" for a in arms) + " | same bits (arms) | same bits as the run |",
             "|---" * (4 + 3 * len(arms)) + "|"]
    for r in record["rows"]:
        a = [r["arms"][x] for x in arms]
        run_bits = ", ".join(f"{x}: {'yes' if v else 'no' if v is not None else '-'}" for x, v in r["same_bits_as_run"].items())
        lines.append(f"| {r['job']} | " + " | ".join(f"{v['cpu']:.0f}" for v in a) + f" | {r['cpu_ratio']:.2f} | "
                     + " | ".join(f"{v['s_per_iter_later_epochs']:.3f}" for v in a) + " | "
                     + " | ".join(f"{v['maxrss_kb'] / 1024:.0f}" for v in a) + " | "
                     + ("yes" if r["same_bits_between_arms"] else "no") + f" | {run_bits} |")
    per = record["cpu_per_seed"]
    lines += ["", "CPU-seconds per seed (the trainings above): " + "; ".join(f"{a} {per[a]:.0f}" for a in arms)
              + f"; ratio {per[arms[1]] / per[arms[0]]:.2f}.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
