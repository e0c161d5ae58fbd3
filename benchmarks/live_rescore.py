"""Live re-scoring (the JupyterLab sliders, :class:`analysis.studies.explorer.LiveRescorer`): seconds per
slider move, this checkout's code against an earlier revision's ``analysis/studies/explorer.py`` and the
``analysis/scoring/rescore.py`` it imports (read from git, default the ones before the speed-up), on the same dumps, the same moves, interleaved
move by move in one process so both see the same machine load. Every move's metrics must agree
between the two (checked, recorded). Also one move split into selection, NMS and evaluation,
and the explorer page's precomputed α × NMS-IoU grid (``slider_data``) by both.

    python benchmarks/live_rescore.py --run runs/tiny --seed 0 --out reports/benchmarks/live_rescore
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# (α, NMS IoU) per move: α moves, NMS moves, both, off the precomputed grid; the first is the
# widget's first draw (nothing cached)
MOVES: tuple[tuple[float, float], ...] = (
    (0.4, 0.5), (0.45, 0.5), (0.5, 0.5), (0.5, 0.55), (0.5, 0.6), (0.37, 0.6), (0.3, 0.6), (0.3, 0.45),
    (0.3, 0.4), (0.6, 0.4), (0.6, 0.7), (0.2, 0.7), (0.2, 0.5), (0.41, 0.5), (0.41, 0.52), (0.0, 0.52),
    (0.9, 0.52), (0.9, 0.3), (0.4, 0.3), (0.4, 0.5))


def module_at(rev: str, path: str = "analysis/studies/explorer.py", name: str = "analysis.explore_before"):
    """The module ``path`` as it was at git revision ``rev``, imported inside the ``analysis``
    package (its relative imports resolve against this checkout)."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{rev}:{path}"], check=True, capture_output=True,
                            text=True).stdout
    spec = importlib.util.spec_from_loader(name, loader=None, origin=f"{rev}:{path}")
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "analysis"
    sys.modules[name] = module
    exec(compile(source, f"{rev}:{path}", "exec"), module.__dict__)
    return module


def explore_at(rev: str):
    """``analysis/studies/explorer.py`` at ``rev`` bound to ``analysis/scoring/rescore.py`` at ``rev`` (its other
    imports from this checkout): the re-scoring as it was."""
    rescore = module_at(rev, "analysis/scoring/rescore.py", "analysis.rescore_before")
    current = sys.modules["analysis.scoring.rescore"]
    sys.modules["analysis.scoring.rescore"] = rescore
    try:
        return module_at(rev)
    finally:
        sys.modules["analysis.scoring.rescore"] = current


def split_move(ex, dumps: dict, gts: dict, alpha: float, nms_iou: float) -> dict:
    """Seconds of selection, NMS and evaluation per detector for one cold move (no hints)."""
    from analysis.scoring import fast

    out = {}
    with fast.one_torch_thread():
        for name, dump in dumps.items():
            prep = fast.prepare(dump.candidates, dump.meta)
            t0 = time.perf_counter()
            rows, score = fast.nms_inputs(prep, ex.alpha_rule(dump.meta, alpha))
            t1 = time.perf_counter()
            kept, kscore = fast.nms_rows(prep, rows, score, nms_iou)
            t2 = time.perf_counter()
            ex.grid_cell(gts[name], prep.candidates.iloc[kept].assign(score=kscore))
            t3 = time.perf_counter()
            out[name] = {"candidates": int(len(prep.cls)), "selected": int(len(rows)), "detections": int(len(kept)),
                         "select_s": round(t1 - t0, 3), "nms_s": round(t2 - t1, 3), "eval_s": round(t3 - t2, 3)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/tiny", help="a run directory (default runs/tiny)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--detectors", nargs="+", default=["retinanet", "iou_aware", "retinanet_conf"])
    p.add_argument("--before", default="cd14501", help="git revision of the code to compare with (default cd14501)")
    p.add_argument("--out", help="write OUT.json and OUT.md")
    args = p.parse_args(argv)

    from analysis.measures.seeds import load_seed_dump
    from analysis.scoring import fast
    from analysis.studies import explorer as ex
    from retconf.machine import cpu_name

    old = explore_at(args.before)
    dumps = {m: load_seed_dump(args.run, args.seed, m) for m in args.detectors}
    load_start = os.getloadavg()
    t = time.perf_counter()
    new_live = ex.LiveRescorer(dumps)
    setup_new = time.perf_counter() - t
    t = time.perf_counter()
    old_live = old.LiveRescorer(dumps)
    setup_old = time.perf_counter() - t
    rows, agree = [], True
    for i, (a, n) in enumerate(MOVES):
        first, second = (new_live, old_live) if i % 2 == 0 else (old_live, new_live)  # alternate who goes first
        r1, s1 = first.update(a, n)
        r2, s2 = second.update(a, n)
        cells_new, s_new, cells_old, s_old = (r1, s1, r2, s2) if first is new_live else (r2, s2, r1, s1)
        same = all(cells_new[d][m] == cells_old[d][m] for d in cells_new for m in ex.GRID_METRICS) and all(
            cells_new[d][c] == cells_old[d][c] for d in cells_new for c in ("iou50", "mean"))
        agree &= same
        rows.append({"alpha": a, "nms_iou": n, "new_s": round(s_new, 3), "before_s": round(s_old, 3), "same_metrics": same,
                     "AP": {d: round(c["AP"], 4) for d, c in cells_new.items()}})
        print(f"move {i + 1:2d} α {a:.2f} NMS {n:.2f}: {s_new:.3f} s (before {s_old:.3f} s) same={same}", flush=True)
    later = rows[1:]
    result = {
        "machine": platform.machine(), "cpu": cpu_name(), "cpus": os.cpu_count(),
        "load_average_start": [round(x, 2) for x in load_start], "load_average_end": [round(x, 2) for x in os.getloadavg()],
        "run": args.run, "seed": args.seed, "detectors": args.detectors, "before": args.before,
        "candidates": {m: int(len(d.candidates)) for m, d in dumps.items()},
        "setup_s": {"new": round(setup_new, 2), "before": round(setup_old, 2)},
        "first_draw_s": {"new": rows[0]["new_s"], "before": rows[0]["before_s"]},
        "later_moves": len(later),
        "median_s": {"new": statistics.median(r["new_s"] for r in later), "before": statistics.median(r["before_s"] for r in later)},
        "max_s": {"new": max(r["new_s"] for r in later), "before": max(r["before_s"] for r in later)},
        "all_moves_same_metrics": agree, "moves": rows,
        "one_cold_move": {"new": split_move(ex, dumps, new_live.gts, 0.45, 0.55),
                          "before": split_move(old, dumps, old_live.gts, 0.45, 0.55)}}
    result["median_speedup"] = round(result["median_s"]["before"] / result["median_s"]["new"], 1)
    with fast.one_torch_thread():
        t = time.perf_counter()
        grid_new = ex.slider_data(dumps)
        t1 = time.perf_counter()
        grid_old = old.slider_data(dumps)
        t2 = time.perf_counter()
    result["explorer_grid"] = {"cells": len(ex.ALPHAS) * len(ex.NMS_IOUS), "new_s": round(t1 - t, 1),
                               "before_s": round(t2 - t1, 1), "same": grid_new == grid_old}
    agree &= result["explorer_grid"]["same"]
    print(json.dumps({k: v for k, v in result.items() if k != "moves"}, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".json").write_text(json.dumps(result, indent=1))
        Path(args.out + ".md").write_text(markdown(result))
    return 0 if agree else 1


def markdown(r: dict) -> str:
    """The result as the markdown summary."""
    split = "".join(
        f"| {d} | {r['one_cold_move'][k][d]['select_s']} | {r['one_cold_move'][k][d]['nms_s']} | "
        f"{r['one_cold_move'][k][d]['eval_s']} | {k} |\n"
        for d in r["detectors"] for k in ("before", "new"))
    moves = "".join(f"| {i + 1} | {m['alpha']} | {m['nms_iou']} | {m['before_s']} | {m['new_s']} | {m['same_metrics']} |\n"
                    for i, m in enumerate(r["moves"]))
    return (
        "# Live re-scoring: seconds per slider move\n\n"
        f"`{r['run']}` seed {r['seed']}, detectors {', '.join(r['detectors'])} "
        f"({', '.join(f'{v:,}' for v in r['candidates'].values())} candidates); {r['cpu']}, {r['cpus']} CPUs, "
        f"load average {r['load_average_start'][0]} at the start, {r['load_average_end'][0]} at the end. "
        f"\"before\": `analysis/studies/explorer.py` and `analysis/scoring/rescore.py` at {r['before']}, run in the same process, move by move alternately.\n\n"
        "| | before | this code |\n|---|---|---|\n"
        f"| first draw (nothing cached) | {r['first_draw_s']['before']} s | {r['first_draw_s']['new']} s |\n"
        f"| median of the next {r['later_moves']} moves | {r['median_s']['before']} s | **{r['median_s']['new']} s** |\n"
        f"| slowest of them | {r['max_s']['before']} s | {r['max_s']['new']} s |\n\n"
        f"Median speed-up {r['median_speedup']}×; every move's AP, AP50, AP75, AR and PR curves equal between "
        f"the two: {r['all_moves_same_metrics']}. An α move re-scores the detectors with a quality score, an NMS "
        "move every detector.\n\n"
        f"The explorer page's grid ({r['explorer_grid']['cells']} α × NMS IoU cells per detector, "
        "`analysis.studies.explorer.slider_data`): "
        f"{r['explorer_grid']['before_s']} s before, {r['explorer_grid']['new_s']} s now, the same data: "
        f"{r['explorer_grid']['same']}.\n\n"
        "One cold move (α 0.45, NMS IoU 0.55), seconds:\n\n| detector | selection | NMS | evaluation | code |\n"
        "|---|---|---|---|---|\n" + split +
        "\nEvery move:\n\n| move | α | NMS IoU | before (s) | this code (s) | same metrics |\n|---|---|---|---|---|---|\n"
        + moves)


if __name__ == "__main__":
    raise SystemExit(main())
