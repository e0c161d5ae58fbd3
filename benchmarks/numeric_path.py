"""The numeric path as a source of variance: the same seeds trained on two or more numeric paths.

A numeric path is the order in which the CPU sums bfloat16 convolutions: it differs between CPU
families (Intel AMX, AMD AVX512-BF16) and between ``ONEDNN_MAX_CPU_ISA`` caps on one machine.
Each *arm* is one path: a run directory (the per-seed APs are computed from its dumps) or a
report page 04 of one (``04_main_results.json``, or the HTML of a page written before pages
carried their data; ``git:REV:PATH`` reads a committed one). For every detector pair (each
detector − RetinaNet) and both protocols (deployed fusion; NMS on cls only, Table 1) it writes:

- each arm's per-seed paired AP differences;
- per seed present in two arms, the change of the paired difference between them, and its sd
  (``path sd``: one seed's shift between two paths);
- the seed-to-seed sd of each arm (the arm with the most seeds is the reference);
- whether the path acts like a fresh random draw per seed (the correlation of the per-seed
  differences across arms near 0, the changes' mean within its interval) or a systematic shift
  (the changes' mean resolved away from 0);
- ``path_shift``: the pooled path sd over every pair and protocol, which the reports use to mark
  a verdict fragile (:func:`analysis.paper.findings.fragility`); written to ``analysis/numeric_path.json``
  with ``--write-shift``.

    python benchmarks/numeric_path.py --arm "Intel Xeon AMX=git:507da43:reports/tiny/04_main_results.html" \\
        --arm "AMD EPYC default=runs/tiny-decisive" --arm "AMD EPYC AVX512_CORE=runs/variance/frozen-AVX512_CORE" \\
        --out reports/benchmarks/numeric_path --write-shift
"""
from __future__ import annotations

import argparse
import html
import itertools
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BASE = "retinanet"
PROTOCOLS = {"deployed": "AP({m}) − AP(RetinaNet)", "cls only": "AP({m}, cls) − AP(RetinaNet)"}
ALIASES = {"IoU-aware": "iou_aware"}  # an older page's spelling of a detector


def _from_run(run: Path) -> dict[tuple[str, str], dict[int, float]]:
    """(protocol, model) -> seed -> AP(model) − AP(RetinaNet), from a run directory's dumps: the
    paper's three detectors on every seed whose three dumps are finished (a run still training
    has no summary.json yet)."""
    from analysis.inputs.io import load_dump
    from analysis.inputs.runs import dump_dir
    from analysis.studies.tables import cls_only_ap, live_ap

    models = ["retinanet", "iou_aware", "retinanet_conf"]
    seeds = sorted(int(p.name.split("_")[1]) for p in run.glob("seed_*")
                   if all((dump_dir(run, int(p.name.split("_")[1]), m) / "metadata.json").is_file() for m in models))
    out: dict[tuple[str, str], dict[int, float]] = {}
    for protocol, fn in (("deployed", live_ap), ("cls only", cls_only_ap)):
        for seed in seeds:
            ap = {m: fn(m, load_dump(dump_dir(run, seed, m)))["AP"] for m in models}
            for m in models[1:]:
                out.setdefault((protocol, m), {})[seed] = float(ap[m] - ap[BASE])
    return out


def _from_page(text: str) -> dict[tuple[str, str], dict[int, float]]:
    """The same from page 04's findings: its JSON data, or the evidence text of an older HTML page
    ("… per seed: 0 +0.0039, 1 +0.0152, …")."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if data is not None:
        for f in data["findings"]:
            for protocol, pattern in PROTOCOLS.items():
                m = re.fullmatch(re.escape(pattern).replace(r"\{m\}", "(?P<m>[a-z_]+)"), f["claim"]) or \
                    re.search(re.escape(pattern).replace(r"\{m\}", "(?P<m>[a-z_]+)") + "$", f["evidence"].split(" = ")[0])
                if m:
                    out[(protocol, m.group("m"))] = {s: v for s, v in zip(f["seeds"], f["values"]) if v is not None}
        return out
    block = re.search(r'<div class="findings">(.*?)</div>', text, re.S)
    for item in re.findall(r"<li>(.*?)</li>", block.group(1) if block else ""):
        item = html.unescape(re.sub(r"<[^>]+>", "", item))
        for protocol, pattern in PROTOCOLS.items():
            m = re.search(": " + re.escape(pattern).replace(r"\{m\}", "(?P<m>[A-Za-z_-]+)") + " = ", item)
            seeds = re.search(r"per seed: ([^;]+)", item)
            if m and seeds:
                vals = dict(pair.split() for pair in seeds.group(1).split(", "))
                out[(protocol, ALIASES.get(m.group("m"), m.group("m")))] = {
                    int(s): float(v) for s, v in vals.items() if v != "undefined"}
    return out


def load_arm(spec: str) -> dict[tuple[str, str], dict[int, float]]:
    """One arm: a run directory, a page file, or ``git:REV:PATH``."""
    if spec.startswith("git:"):
        _, rev, path = spec.split(":", 2)
        return _from_page(subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                                         capture_output=True, text=True).stdout)
    p = Path(spec)
    if p.is_dir():
        return _from_run(p)
    return _from_page(p.read_text())


def compare(arms: dict[str, dict[tuple[str, str], dict[int, float]]], families: dict[str, str] | None = None) -> dict:
    """Per (protocol, model): each arm's values, seed sd, and per pair of arms the per-seed
    changes, their mean, sd, t interval and the across-seed correlation; ``path_shift`` pooled.
    ``families`` (arm -> CPU family; default each arm its own) says which pairs of arms ran on
    one machine (``within``: the same family) and which across CPU families."""
    from analysis.measures.seeds import interval

    families = {name: (families or {}).get(name, name) for name in arms}

    rows, changes_all = [], []
    keys = sorted(set().union(*[set(a) for a in arms.values()]))
    for key in keys:
        row: dict = {"protocol": key[0], "model": key[1], "arms": {}, "pairs": []}
        for name, arm in arms.items():
            vals = arm.get(key, {})
            mean, sd, half, n = interval(list(vals.values()))
            row["arms"][name] = {"per_seed": vals, "mean": mean, "seed_sd": sd, "half_width": half, "n": n}
        for a, b in itertools.combinations(arms, 2):
            common = sorted(set(arms[a].get(key, {})) & set(arms[b].get(key, {})))
            if not common:
                continue
            x = [arms[a][key][s] for s in common]
            y = [arms[b][key][s] for s in common]
            d = [v - u for u, v in zip(x, y)]
            mean, sd, half, n = interval(d)
            changes_all.extend(d)
            row["pairs"].append({"arms": [a, b], "within": families[a] == families[b],
                                 "seeds": common, "change": d, "mean_change": mean,
                                 "change_sd": sd, "half_width": half, "max_abs_change": max(abs(v) for v in d),
                                 "correlation": float(np.corrcoef(x, y)[0, 1]) if n > 2 else float("nan"),
                                 "systematic": bool(n > 1 and abs(mean) > half)})
        rows.append(row)
    # one seed's change between two paths: the rms of every per-seed change (mean change 0 if random)
    shift = float(math.sqrt(np.mean(np.square(changes_all)))) if changes_all else float("nan")
    return {"rows": rows, "path_shift": shift, "changes": len(changes_all), "families": families}


def _rms(values: list[float]) -> float:
    return float(math.sqrt(np.mean(np.square(values)))) if values else float("nan")


def decomposition(result: dict, eval_sd: dict[str, float] | None = None) -> list[dict]:
    """Per (protocol, model): the seed-to-seed sd (the arm with the most seeds), the rms change of
    one seed's paired difference between two paths on one machine and across CPU families, and
    the evaluation sd (image bootstrap of the difference on fixed checkpoints; deployed protocol
    only, where measured)."""
    out = []
    for r in result["rows"]:
        ref = max(r["arms"].items(), key=lambda kv: kv[1]["n"])
        within = [v for p in r["pairs"] if p["within"] for v in p["change"]]
        across = [v for p in r["pairs"] if not p["within"] for v in p["change"]]
        out.append({"protocol": r["protocol"], "model": r["model"], "seed_sd": ref[1]["seed_sd"], "seed_arm": ref[0],
                    "seeds": ref[1]["n"], "within_rms": _rms(within), "within_n": len(within),
                    "across_rms": _rms(across), "across_n": len(across),
                    "eval_sd": (eval_sd or {}).get(r["model"]) if r["protocol"] == "deployed" else None})
    return out


def bootstrap_eval_sd(run: Path, seeds: list[int], resamples: int) -> dict[str, float]:
    """Per detector: the root mean square over ``seeds`` of the image-bootstrap sd of
    AP(detector) − AP(RetinaNet) on the run's dumps (live detections: the deployed protocol)."""
    from analysis.inputs.io import load_dump
    from analysis.inputs.runs import dump_dir
    from analysis.measures.bootstrap import match_all, paired_bootstrap
    from analysis.measures.quality import dump_ground_truth

    sds: dict[str, list[float]] = {}
    for seed in seeds:
        dumps = {m: load_dump(dump_dir(run, seed, m)) for m in ("retinanet", "iou_aware", "retinanet_conf")}
        gt = dump_ground_truth(dumps[BASE])
        matched = {m: match_all(d.detections, gt) for m, d in dumps.items()}
        for m in ("iou_aware", "retinanet_conf"):
            sds.setdefault(m, []).append(paired_bootstrap(matched[m], matched[BASE], resamples, seed=seed)["sd"])
    return {m: _rms(v) for m, v in sds.items()}


def markdown(result: dict, arms: dict[str, str]) -> str:
    """The result as a markdown report."""
    lines = ["# The numeric path as a source of variance", "",
             "Arms (each a numeric path; the same seeds):", ""]
    lines += [f"- **{name}**: `{spec}`" for name, spec in arms.items()]
    lines += ["", "Paired AP difference to RetinaNet per seed, per arm (mean, seed sd, 95 % half-width, n):", "",
              "| protocol | detector | arm | per seed | mean | seed sd | half-width | n |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        for name, a in r["arms"].items():
            per = ", ".join(f"{s}: {v:+.4f}" for s, v in sorted(a["per_seed"].items(), key=lambda kv: int(kv[0])))
            lines.append(f"| {r['protocol']} | {r['model']} | {name} | {per} | {a['mean']:+.4f} | {a['seed_sd']:.4f} | "
                         f"{a['half_width']:.4f} | {a['n']} |")
    lines += ["", "Change of one seed's paired difference between two paths (second arm − first):", "",
              "| protocol | detector | arms | seeds | per-seed change | mean (95 % half-width) | sd | max abs | corr. across seeds | systematic? |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        for p in r["pairs"]:
            lines.append(f"| {r['protocol']} | {r['model']} | {p['arms'][1]} − {p['arms'][0]}"
                         f"{' (one machine)' if p.get('within') else ''} | {len(p['seeds'])} | "
                         f"{', '.join(f'{v:+.4f}' for v in p['change'])} | {p['mean_change']:+.4f} (±{p['half_width']:.4f}) | "
                         f"{p['change_sd']:.4f} | {p['max_abs_change']:.4f} | "
                         f"{'—' if math.isnan(p['correlation']) else format(p['correlation'], '+.2f')} | "
                         f"{'yes' if p['systematic'] else 'no'} |")
    if result.get("decomposition"):
        lines += ["", "Decomposition: one seed's paired difference moves by the seed (sd over seeds of the arm with the "
                  "most), by the numeric path on one machine and across CPU families (rms of the per-seed changes, with "
                  "their count), and by the evaluation images (image-bootstrap sd on fixed checkpoints):", "",
                  "| protocol | detector | seed sd (seeds) | path, one machine (changes) | path, across families (changes) | "
                  "evaluation sd |", "|---|---|---|---|---|---|"]
        fmt = lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4f}"  # noqa: E731
        for d in result["decomposition"]:
            lines.append(f"| {d['protocol']} | {d['model']} | {fmt(d['seed_sd'])} ({d['seeds']}) | "
                         f"{fmt(d['within_rms'])} ({d['within_n']}) | {fmt(d['across_rms'])} ({d['across_n']}) | "
                         f"{fmt(d['eval_sd'])} |")
    lines += ["", f"**Path shift** (rms of all {result['changes']} per-seed changes): {result['path_shift']:.4f} AP. "
              "If the path acted as a fresh draw per seed, the changes would average 0 and the per-seed values of two "
              "arms would be uncorrelated; `systematic` says where the mean change is resolved away from 0.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm", action="append", required=True, metavar="NAME=SOURCE",
                        help="a numeric path: a run directory, a page 04 (.json or .html), or git:REV:PATH")
    parser.add_argument("--family", action="append", default=[], metavar="NAME=FAMILY",
                        help="the CPU family an arm ran on; arms of one family are paths on one machine")
    parser.add_argument("--bootstrap", metavar="RUN", help="a run directory whose dumps give the evaluation sd")
    parser.add_argument("--bootstrap-seeds", default="0,1,2", help="its seeds to bootstrap (default %(default)s)")
    parser.add_argument("--resamples", type=int, default=200, help="bootstrap resamples (default %(default)s)")
    parser.add_argument("--out", required=True, help="output stem: writes OUT.json and OUT.md")
    parser.add_argument("--write-shift", action="store_true",
                        help="also write the pooled path shift to analysis/numeric_path.json (used by the reports)")
    args = parser.parse_args(argv)
    specs = dict(a.split("=", 1) for a in args.arm)
    arms = {name: load_arm(spec) for name, spec in specs.items()}
    for name, arm in arms.items():
        if not arm:
            raise SystemExit(f"numeric_path: arm {name!r} ({specs[name]}): no per-seed paired AP difference found")
    result = compare(arms, dict(f.split("=", 1) for f in args.family))
    eval_sd = (bootstrap_eval_sd(Path(args.bootstrap), [int(x) for x in args.bootstrap_seeds.split(",")], args.resamples)
               if args.bootstrap else None)
    result["decomposition"] = decomposition(result, eval_sd)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps({"arms": specs, **result}, indent=1, default=str) + "\n")
    Path(f"{out}.md").write_text(markdown(result, specs))
    print(Path(f"{out}.md").read_text())
    if args.write_shift:
        target = ROOT / "analysis" / "numeric_path.json"
        target.write_text(json.dumps({"path_shift_ap": round(result["path_shift"], 5), "arms": specs,
                                      "changes": result["changes"],
                                      "source": f"benchmarks/numeric_path.py -> {out}.md"}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
