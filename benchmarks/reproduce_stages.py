"""Wall time of the ``retconf reproduce`` pipeline per stage.

Either runs the preset now (``--preset``, optionally into ``--out``) or formats the stage times
that a real earlier run recorded in its ``summary.json`` (``--summary``). Writes JSON + markdown.

    python benchmarks/reproduce_stages.py --summary runs/tiny/summary.json \\
        --out reports/benchmarks/reproduce_stages
"""
from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def markdown(summary: dict, wall_s: float | None) -> str:
    sec = summary["seconds"]
    total = sum(sec.values())
    lines = [f"# `retconf reproduce --preset {summary['preset']}` per stage", "",
             f"Machine: {platform.machine()}, {summary.get('cpus', '?')} CPUs; run dir `{summary['run_dir']}`.", "",
             "| stage | seconds | share |", "|---|---|---|"]
    lines += [f"| {k} | {v:.1f} | {v / total:.0%} |" for k, v in sec.items()]
    lines.append(f"| **total of stages** | **{total:.1f}** | |")
    lines.append("\nCached stages keep the seconds of the run that did them; a stage resumed after an "
                 "interruption records only the part that finished it.")
    if wall_s is None and summary.get("wall_seconds") is not None:
        wall_s = summary["wall_seconds"]
    if summary.get("jobs"):
        lines.append(f"\nTrainings ran {summary['jobs']} at a time with {summary.get('threads_per_job')} thread(s) "
                     f"each (their stage seconds overlap); trainings and dumps together took "
                     f"{summary.get('train_and_dump_wall_seconds')} s of wall time.")
    if wall_s is not None:
        lines.append(f"\nWall time of the command: {wall_s:.1f} s.")
    metrics = summary.get("metrics", {})  # seed -> model -> metrics
    if metrics:
        seeds = sorted(metrics, key=int)
        models = list(dict.fromkeys([*summary.get("detectors", []), *(m for s in seeds for m in metrics[s])]))
        lines += ["", "| model | " + " | ".join(f"AP seed {s}" for s in seeds) + " |",
                  "|---|" + "---|" * len(seeds)]
        lines += [f"| {n} | " + " | ".join(f"{metrics[s].get(n, {}).get('coco/bbox_mAP', float('nan')):.3f}"
                                          for s in seeds) + " |" for n in models]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import os

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--summary", help="summary.json of an earlier real run")
    g.add_argument("--preset", help="run this preset now")
    p.add_argument("--run-out", help="run directory for --preset (default: runs/<preset>)")
    p.add_argument("--out", help="output prefix for .json and .md")
    args = p.parse_args(argv)
    wall = None
    if args.preset:
        cmd = [sys.executable, "-m", "retconf.cli", "reproduce", "--preset", args.preset]
        if args.run_out:
            cmd += ["--out", args.run_out]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT)
        wall = time.perf_counter() - start
        summary_path = Path(args.run_out or ROOT / "runs" / args.preset) / "summary.json"
    else:
        summary_path = Path(args.summary)
    summary = json.loads(summary_path.read_text())
    summary.setdefault("cpus", os.cpu_count())
    text = markdown(summary, wall)
    print(text)
    if args.out:
        from retconf.io import write_json_and_markdown

        write_json_and_markdown(args.out, {"summary": summary, "wall_s": wall}, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
