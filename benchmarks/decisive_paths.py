"""Do the decisive run's verdicts survive another numeric path? (issue 39, point 5)

The decisive run (``runs/tiny-decisive``, its pages ``reports/tiny-decisive``) was trained on one
numeric path: this machine's default oneDNN kernels. A second *arm* is the same recipe and seeds
trained under another path on the same machine, e.g. ``ONEDNN_MAX_CPU_ISA=AVX512_CORE`` with the
same pretrained backbone::

    mkdir -p runs/tiny-decisive-avx512core && cp -r runs/tiny-decisive/pretrain runs/tiny-decisive-avx512core/
    ONEDNN_MAX_CPU_ISA=AVX512_CORE retconf reproduce --seeds 3 --out runs/tiny-decisive-avx512core --no-reports

This script takes every seed for which the arm has all three detectors' dumps, puts those dumps in
place of the decisive run's own for that seed, keeps the decisive run's dumps for the other
seeds, writes the chosen pages again from that input set (``retconf report NAME@SEED=DUMP ...``)
and compares every finding of those pages with the committed set's:

- the verdict of each (unchanged, or from what to what), and whether the committed page had
  marked it *fragile* (the rule of :func:`analysis.paper.findings.fragility`, which uses the
  measured path shift): a verdict that changes without having been marked is what the rule missed;
- the mean and 95 % interval before and after;
- a consistency check: the per-seed values of the seeds that were *not* replaced must be equal in
  both (else the two sets were not computed alike and the comparison says nothing).

With every seed of the arm replaced this is the full check; with fewer it is the check of that
share of the seeds, and the report says so.

    python benchmarks/decisive_paths.py --arm "AVX512_CORE=runs/tiny-decisive-avx512core" \\
        --only 04 --out reports/benchmarks/decisive_paths
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODELS = ("retinanet", "iou_aware", "retinanet_conf")


def finished_seeds(run: Path, models: tuple[str, ...] = MODELS) -> list[int]:
    """Seeds of ``run`` whose dumps of every model are written (their ``metadata.json`` exists)."""
    from analysis.inputs.runs import dump_dir

    seeds = sorted(int(p.name.split("_", 1)[1]) for p in run.glob("seed_*") if p.name.split("_", 1)[1].isdigit())
    return [s for s in seeds if all((dump_dir(run, s, m) / "metadata.json").is_file() for m in models)]


def dump_inputs(run: Path, arm: Path, seeds: list[int], replaced: list[int],
                models: tuple[str, ...] = MODELS) -> list[str]:
    """``NAME@SEED=DUMP`` arguments of ``retconf report``: the arm's dumps for ``replaced`` seeds,
    the run's for the others."""
    from analysis.inputs.runs import dump_dir

    return [f"{m}@{s}={dump_dir(arm if s in replaced else run, s, m)}" for s in seeds for m in models]


def _key(page: str, f: dict) -> str:
    return f"{page}:{f.get('claim_id') or f['claim']}"


def page_findings(directory: Path, pages: list[str]) -> dict[str, dict]:
    """``page:claim`` -> finding record, from the ``NN_name.json`` files of ``pages`` in ``directory``."""
    out: dict[str, dict] = {}
    for nn in pages:
        for path in sorted(directory.glob(f"{nn}_*.json")):
            for f in json.loads(path.read_text()).get("findings", []):
                out.setdefault(_key(path.stem, f), f)
    return out


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def compare(before: dict[str, dict], after: dict[str, dict], replaced: list[int]) -> dict:
    """Per finding: verdicts, intervals, the fragile mark, and the unreplaced seeds' consistency."""
    rows, inconsistent = [], []
    for key in sorted(set(before) & set(after)):
        b, a = before[key], after[key]
        kept = [s for s in b.get("seeds", []) if s not in replaced]
        vb = dict(zip(b.get("seeds", []), b.get("values", [])))
        va = dict(zip(a.get("seeds", []), a.get("values", [])))
        if any(not _same(vb.get(s), va.get(s)) for s in kept):
            inconsistent.append(key)
        rows.append({"finding": key, "claim": b["claim"], "own": b.get("own", False),
                     "before": b["verdict"], "after": a["verdict"], "changed": b["verdict"] != a["verdict"],
                     "fragile_before": b.get("fragile", ""),
                     "mean_before": b.get("mean"), "lo_before": b.get("lo"), "hi_before": b.get("hi"),
                     "mean_after": a.get("mean"), "lo_after": a.get("lo"), "hi_after": a.get("hi"),
                     "replaced_values_before": [vb.get(s) for s in replaced],
                     "replaced_values_after": [va.get(s) for s in replaced]})
    return {"rows": rows, "inconsistent": inconsistent,
            "missing": sorted(set(before) ^ set(after)),
            "changed": sum(r["changed"] for r in rows),
            "changed_unmarked": sum(r["changed"] and not r["fragile_before"] for r in rows),
            "fragile_kept": sum((not r["changed"]) and bool(r["fragile_before"]) for r in rows)}


def _num(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:+.4f}"


def markdown(result: dict, meta: dict) -> str:
    """The comparison as a markdown report."""
    n, k = len(meta["seeds"]), len(meta["replaced"])
    lines = ["# The decisive run's verdicts under a second numeric path", "",
             f"Reference: `{meta['reference']}` ({n} seeds, {meta['reference_path']}). "
             f"Arm **{meta['arm_name']}**: `{meta['arm']}`, seeds {', '.join(map(str, meta['replaced']))} "
             f"({k} of {n}) trained under it; their dumps replace the reference's, the other seeds keep the "
             f"reference's dumps. Pages compared: {', '.join(meta['pages'])}. Machine: {meta['cpu']}. "
             f"Written in {meta['report_seconds']:.0f} s by `{meta['command']}`.", ""]
    if k < n:
        lines += [f"Only {k} of the {n} seeds come from the second path, so this is the check of that share "
                  "of the seeds, not of a whole run on it.", ""]
    rows = result["rows"]
    lines += [f"**{result['changed']} of {len(rows)} verdicts changed**; "
              f"{result['changed_unmarked']} of those had not been marked fragile; "
              f"{result['fragile_kept']} marked fragile kept their verdict. "
              + ("The seeds that were not replaced gave identical per-seed values in both sets."
                 if not result["inconsistent"] else
                 f"**Inconsistent**: {len(result['inconsistent'])} findings differ on seeds that were not replaced "
                 f"({', '.join(result['inconsistent'][:5])}); the comparison is not valid."), ""]
    lines += ["| finding | reference: mean (95 % interval) | verdict | second path: mean (95 % interval) | verdict | "
              "replaced seeds, before → after |", "|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (not r["changed"], r["finding"])):
        per = ", ".join(f"{_num(x)} → {_num(y)}" for x, y in zip(r["replaced_values_before"], r["replaced_values_after"]))
        mark = " (fragile)" if r["fragile_before"] else ""
        after = f"**{r['after']}**" if r["changed"] else r["after"]
        lines.append(f"| `{r['finding']}` | {_num(r['mean_before'])} ({_num(r['lo_before'])} … {_num(r['hi_before'])}) | "
                     f"{r['before']}{mark} | {_num(r['mean_after'])} ({_num(r['lo_after'])} … {_num(r['hi_after'])}) | "
                     f"{after} | {per} |")
    if result["missing"]:
        lines += ["", f"Findings in one set only: {', '.join(result['missing'])}."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm", required=True, metavar="NAME=RUN",
                        help="the second path's run directory (the same recipe, seeds and pretrained backbone)")
    parser.add_argument("--run", default="runs/tiny-decisive", help="the decisive run (default %(default)s)")
    parser.add_argument("--reference", default="reports/tiny-decisive",
                        help="its committed pages (default %(default)s)")
    parser.add_argument("--only", nargs="+", default=["04"], metavar="NN", help="pages to compare (default 04)")
    parser.add_argument("--work", default="/tmp/decisive_paths", help="where the pages are written again")
    parser.add_argument("--jobs", type=int, default=None, help="retconf report --jobs")
    parser.add_argument("--out", required=True, help="output stem: writes OUT.json and OUT.md")
    args = parser.parse_args(argv)

    from analysis.inputs.runs import load_summary
    from retconf.machine import cpu_name

    name, arm = args.arm.split("=", 1)
    run, reference, work = Path(args.run), Path(args.reference), Path(args.work)
    seeds = [int(s) for s in load_summary(run)["seeds"]]
    replaced = [s for s in finished_seeds(Path(arm)) if s in seeds]
    if not replaced:
        raise SystemExit(f"decisive_paths: {arm}: no seed of {seeds} has all of {', '.join(MODELS)} dumped")
    cmd = [sys.executable, "-m", "retconf", "report", *dump_inputs(run, Path(arm), seeds, replaced),
           "--out", str(work), "--only", *args.only, "--no-explore"]
    if args.jobs:
        cmd += ["--jobs", str(args.jobs)]
    t = time.time()
    subprocess.run(cmd, check=True, cwd=ROOT)
    seconds = time.time() - t
    result = compare(page_findings(reference, args.only), page_findings(work, args.only), replaced)
    meta = {"reference": str(reference), "reference_path": "this machine's default oneDNN path",
            "arm_name": name, "arm": arm, "seeds": seeds, "replaced": replaced, "pages": args.only,
            "cpu": cpu_name(), "report_seconds": round(seconds, 1),
            "command": "python benchmarks/decisive_paths.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(json.dumps({**meta, **result}, indent=1, default=str) + "\n")
    Path(f"{out}.md").write_text(markdown(result, meta))
    print(Path(f"{out}.md").read_text())
    return 1 if result["inconsistent"] else 0


if __name__ == "__main__":
    sys.exit(main())
