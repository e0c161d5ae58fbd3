"""The decomposition of ``benchmarks/variance_sources.py``: reads ``runs/variance/*`` (each a
``retconf reproduce``-layout run of the tiny preset's three detectors plus ``variance.json``)
and writes ``OUT.json`` and ``OUT.md``.

Every AP is COCO AP (0.50:0.95) of a dump's deployed detections (what live inference returns),
computed by :func:`analysis.measures.bootstrap.weighted_ap` with unit weights (equal to faster-coco-eval).
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import write_results  # noqa: E402
from benchmarks.variance_sources import PAIRS  # noqa: E402

MODELS = ("retinanet", "iou_aware", "retinanet_conf")
TARGET = 0.01  # the goal for the 95 % paired half-width


def seeds_needed(sd: float, half_width: float = TARGET) -> int | None:
    """The fewest seeds whose 95 % paired half-width is below ``half_width`` at a seed-to-seed
    spread ``sd`` (:func:`analysis.measures.seeds.seeds_to_resolve`; None when ``sd`` is not finite)."""
    from analysis.measures.seeds import seeds_to_resolve

    return seeds_to_resolve(half_width, sd) if np.isfinite(sd) else None


def run_rows(run: Path, resamples: int) -> tuple[dict, list[dict]]:
    """(the run's ``variance.json`` + training seconds, one row per (seed, pair)) with the AP
    of each detector, the paired difference and its image-bootstrap sd."""
    from analysis.inputs.io import load_dump
    from analysis.inputs.runs import dump_dir, load_summary
    from analysis.measures.bootstrap import match_all, paired_bootstrap, weighted_ap
    from analysis.measures.quality import dump_ground_truth

    info = json.loads((run / "variance.json").read_text())
    summary = load_summary(run)
    secs = summary.get("seconds", {})
    info["train_s"] = {m: float(np.mean([v for k, v in secs.items() if k.endswith(f"/{m}/train")] or [np.nan]))
                       for m in MODELS}
    info["threads_per_job"], info["jobs"] = summary.get("threads_per_job"), summary.get("jobs")
    rows = []
    for seed in summary["seeds"]:
        matched = {}
        for m in MODELS:
            dump = load_dump(dump_dir(run, seed, m))
            matched[m] = match_all(dump.detections, dump_ground_truth(dump))
        ap = {m: weighted_ap(x, np.ones(len(x.image_ids))) for m, x in matched.items()}
        for a, b in PAIRS:
            bs = paired_bootstrap(matched[a], matched[b], resamples=resamples, seed=seed)
            rows.append({"run": run.name, "lever": info["lever"], "isa": info["isa"], "seed": int(seed),
                         "pair": f"{a} − {b}", "AP_a": ap[a], "AP_b": ap[b], "delta": bs["delta"],
                         "boot_sd": bs["sd"], "boot_sd_a": bs["sd_a"], "boot_sd_b": bs["sd_b"]})
    return info, rows


def decompose(rows: list[dict], infos: dict) -> list[dict]:
    """One row per (lever, pair): seed-to-seed sd of the paired difference (default numeric
    path), its 95 % half-width at the seeds run and the seeds a ±0.01 half-width needs, the mean
    bootstrap sd (evaluation sampling), the numeric-path change of the difference at a fixed
    seed, the sd of single detectors' AP over seeds, and the time per training."""
    from analysis.measures.seeds import interval

    out = []
    levers = sorted({r["lever"] for r in rows}, key=lambda s: (s != "default", s))
    for lever in levers:
        for a, b in PAIRS:
            pair = f"{a} − {b}"
            base = [r for r in rows if r["lever"] == lever and r["pair"] == pair and r["isa"] == "default"]
            other = [r for r in rows if r["lever"] == lever and r["pair"] == pair and r["isa"] != "default"]
            deltas = [r["delta"] for r in sorted(base, key=lambda r: r["seed"])]
            mean, sd, half, n = interval(deltas)
            numeric = [abs(o["delta"] - r["delta"]) for o in other for r in base if r["seed"] == o["seed"]]
            single = [abs(o[k] - r[k]) for o in other for r in base if r["seed"] == o["seed"] for k in ("AP_a", "AP_b")]
            ap_sd = {m: float(np.std([r[k] for r in base], ddof=1)) if len(base) > 1 else float("nan")
                     for m, k in ((a, "AP_a"), (b, "AP_b"))}
            info = next((i for i in infos.values() if i["lever"] == lever and i["isa"] == "default"), {})
            out.append({"lever": lever, "pair": pair, "seeds": n, "per_seed": deltas, "mean": mean,
                        "seed_sd": sd, "half_width": half, "seeds_for_0.01": seeds_needed(sd),
                        "boot_sd": float(np.mean([r["boot_sd"] for r in base])) if base else float("nan"),
                        "numeric_change": float(np.mean(numeric)) if numeric else float("nan"),
                        "numeric_single_change": float(np.max(single)) if single else float("nan"),
                        f"AP_sd {a}": ap_sd[a], f"AP_sd {b}": ap_sd[b],
                        f"AP {a}": float(np.mean([r["AP_a"] for r in base])) if base else float("nan"),
                        f"AP {b}": float(np.mean([r["AP_b"] for r in base])) if base else float("nan"),
                        "train_s": float(np.nanmean(list(info.get("train_s", {}).values()) or [np.nan]))})
    return out


def fmt(v: float | None, digits: int = 3) -> str:
    """A number to ``digits`` decimals, "–" when missing or not finite."""
    if v is None or not np.isfinite(v):
        return "–"
    return f"{v:.{digits}f}"


def markdown(table: list[dict], rows: list[dict], infos: dict, resamples: int) -> str:
    cpu = next(iter(infos.values()), {}).get("cpu", "?")
    paths = sorted({f"{i['isa']} ({i.get('onednn_isa', '?')})" for i in infos.values()})
    lines = ["# Where the variance of a detector difference comes from (tiny preset)", "",
             f"CPU: {cpu}. Numeric paths: {'; '.join(paths)}. Image bootstrap: {resamples} resamples "
             "of the validation images, paired (both detectors on the same draw).", "",
             "Per lever and pair: the paired AP difference over seeds (default path) — mean, seed-to-seed sd, "
             "95 % half-width at the seeds run and the seeds a ±0.01 half-width would need; the evaluation "
             "noise (bootstrap sd of the difference on fixed checkpoints, mean over seeds); the numeric "
             "noise (|change of the difference| when the same seed trains on the second path; and the "
             "largest change of a single detector's AP); the detectors' own AP sd over seeds; seconds per "
             "training (mean of the three, as the run scheduled them: the levers ran under different loads of the "
             "shared machine, so compare their cost by `variance_sources.py time`, which interleaves them, not by "
             "this column).", "",
             "| lever | pair | seeds | per seed | mean | seed sd | half-width | seeds for ±0.01 | eval sd (bootstrap) "
             "| numeric change (same seed) | single AP change | AP sd (a / b) | mean AP (a / b) | train s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in table:
        a, b = t["pair"].split(" − ")
        lines.append(f"| {t['lever']} | {t['pair']} | {t['seeds']} | {', '.join(f'{v:+.3f}' for v in t['per_seed'])} "
                     f"| {t['mean']:+.3f} | {fmt(t['seed_sd'])} | {fmt(t['half_width'])} | {t['seeds_for_0.01'] or '–'} "
                     f"| {fmt(t['boot_sd'])} | {fmt(t['numeric_change'])} | {fmt(t['numeric_single_change'])} "
                     f"| {fmt(t[f'AP_sd {a}'])} / {fmt(t[f'AP_sd {b}'])} | {fmt(t[f'AP {a}'])} / {fmt(t[f'AP {b}'])} "
                     f"| {fmt(t['train_s'], 0)} |")
    lines += ["", "Per run, seed and pair (AP of each detector, the difference, its bootstrap sd):", "",
              "| run | seed | pair | AP a | AP b | difference | bootstrap sd |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['run']} | {r['seed']} | {r['pair']} | {r['AP_a']:.4f} | {r['AP_b']:.4f} | {r['delta']:+.4f} "
              f"| {r['boot_sd']:.4f} |" for r in rows]
    return "\n".join(lines) + "\n"


def report(runs_dir: Path, out: str, resamples: int) -> int:
    t0 = time.time()
    runs = sorted(p.parent for p in Path(runs_dir).glob("*/variance.json"))
    if not runs:
        print(f"no finished run under {runs_dir} (run `train` first)")
        return 1
    infos, rows = {}, []
    for run in runs:
        print(f"{run.name}: matching and bootstrapping ({resamples} resamples)")
        infos[run.name], r = run_rows(run, resamples)
        rows += r
    table = decompose(rows, infos)
    write_results(out, {"runs": infos, "rows": rows, "decomposition": table, "resamples": resamples,
                        "seconds": round(time.time() - t0, 1)}, markdown(table, rows, infos, resamples))
    return 0
