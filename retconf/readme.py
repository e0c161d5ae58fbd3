"""Numbers the README and docs quote from a report set, generated from the pages' data.

A report page writes its findings and key numbers beside its HTML (``NN_name.json``,
:func:`analysis.paper.findings.page_record`). Text that quotes them holds a generated block::

    <!-- results:begin -->
    ...
    <!-- results:end -->

``python -m retconf.readme`` rewrites every such block in README.md and docs/*.md from the
committed report set (default ``reports/tiny``); ``python -m retconf.readme --check`` exits 1,
naming the file and block, when a block differs from what the data gives (the test suite runs
the check, so a regeneration that moves a number fails until the text follows).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

from analysis.paper.findings import counted_here, verdict_label

CHECKOUT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(<!-- (?P<name>[a-z0-9-]+):begin -->\n)(?P<body>.*?)(<!-- (?P=name):end -->)", re.S)
DETECTOR_NAMES = {"retinanet": "RetinaNet", "iou_aware": "IoU-aware RetinaNet", "retinanet_conf": "RetinaNet-Conf"}


def load_page(reports: Path, page: str) -> dict:
    """The findings data of ``reports/page.json``; a missing or unreadable file is one clear
    error naming it."""
    path = reports / f"{page}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"retconf.readme: {path}: cannot read the page's findings data ({e}); "
                         f"regenerate the report set with `retconf report`") from e


def _spread(values: list) -> str:
    v = [x for x in values if x is not None and math.isfinite(x)]
    if not v:
        return "n/a"
    mean = sum(v) / len(v)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else None
    return _plus_minus(mean, sd)


def _plus_minus(mean: float, sd: float | None) -> str:
    """``mean ± sd`` (three decimals), or the mean alone without an sd."""
    return f"{mean:.3f} ± {sd:.3f}" if sd is not None else f"{mean:.3f}"


def _interval(f: dict, digits: int = 3) -> str:
    if f["mean"] is None:
        return "n/a"
    if f["lo"] is None:
        return f"{f['mean']:+.{digits}f}"
    return f"{f['mean']:+.{digits}f} ({f['lo']:+.{digits}f} … {f['hi']:+.{digits}f})"


def _measured(f: dict) -> str:
    """What a finding measured, in its evidence's words (the text before " = "), else its claim."""
    return f["evidence"].split(" = ")[0] if " = " in f["evidence"] else f["claim"]


def _decisive_set(reports: Path) -> Path:
    """The decisive run's report set beside ``reports`` (:data:`retconf.report.DECISIVE_SET`)."""
    from .report import DECISIVE_SET

    return reports.parent / DECISIVE_SET


def _link(target: Path, doc_dir: Path) -> str:
    """``target`` as a relative link from a document in ``doc_dir``."""
    return Path(os.path.relpath(target, doc_dir)).as_posix()


def results_block(reports: Path, doc_dir: Path = CHECKOUT) -> str:
    """The README's headline: each detector's AP (mean ± sd over seeds), then the paper claims
    page 04 counts with the paper's value, ours and the verdict."""
    data = load_page(reports, "04_main_results")
    ap, cls = data["numbers"]["AP"], data["numbers"]["AP cls-only"]
    n = len(next(iter(ap.values()))["values"]) if ap else 0
    lines = [f"COCO AP (0.50:0.95) on the embedded validation set, mean ± sd over {n} seeds "
             f"([page 04]({_link(reports / '04_main_results.html', doc_dir)})):", "",
             "| detector | AP, deployed score | AP, NMS on cls only |", "|---|---|---|"]
    for model, row in ap.items():
        lines.append(f"| {DETECTOR_NAMES.get(model, model)} | {_spread(row['values'])} | "
                     f"{_spread(cls.get(model, {}).get('values', []))} |")
    lines += ["", "The paper's claims this table tests (paired per seed; 95 % interval):", "",
              "| claim | the paper | ours | verdict |", "|---|---|---|---|"]
    for f in data["findings"]:
        if f["own"] or not f["claim_id"] or not counted_here(f["home"], data["page"]):
            continue
        if not f["claim"].startswith("AP("):
            continue
        paper = re.search(r"the paper's value: ([^;]+)", f["evidence"])
        verdict = verdict_label(f)
        lines.append(f"| `{f['claim_id']}`: {f['claim']} | {paper.group(1) if paper else ''} | {_interval(f)} | {verdict} |")
    return "\n".join(lines) + "\n"


def claims_block(reports: Path, number: str, doc_dir: Path = CHECKOUT) -> str:
    """The paper claims one page counts (``NN``: the page's number), one row each: the registry
    id, what was measured, ours (mean and 95 % interval over seeds) and the verdict."""
    pages = sorted(reports.glob(f"{number}_*.json"))
    if not pages:
        raise SystemExit(f"retconf.readme: {reports}: no page {number}_*.json (regenerate the report set)")
    data = json.loads(pages[0].read_text())
    rel = reports.relative_to(CHECKOUT).as_posix() if reports.is_relative_to(CHECKOUT) else str(reports)
    lines = [f"From [page {number}]({_link(pages[0].with_suffix('.html'), doc_dir)}) of `{rel}` (each claim's words and protocol: "
             "`analysis/paper/claims.csv`):", "", "| claim | measured | ours | verdict |", "|---|---|---|---|"]
    for f in data["findings"]:
        if f["own"] or not f["claim_id"] or not counted_here(f["home"], data["page"]):
            continue
        what = _measured(f)
        what = what.replace("](", "] (").replace("|", "\\|")  # text, not a markdown link or a cell break
        digits = 4 if f["mean"] is not None and abs(f["mean"]) < 0.01 else 3
        lines.append(f"| `{f['claim_id']}` | {what} | {_interval(f, digits)} | "
                     f"{verdict_label(f)} |")
    return "\n".join(lines) + "\n"


def _mean_sd(row: dict, key: str) -> str:
    """``mean ± sd`` of one metric of a page-06 row (NaN where the family has no such score)."""
    mean = row.get(key)
    return "NaN" if mean is None else _plus_minus(mean, row.get(f"{key}_sd"))


def families_block(reports: Path, doc_dir: Path = CHECKOUT) -> str:
    """Page 06 of ``reports/families`` (its ``families`` numbers): per detector the APs and the
    wrong-survivor rate, then the Spearman correlations with the IoU before NMS."""
    rows = load_page(reports.parent / "families", "06_families")["numbers"]["families"]
    lines = ["| model | quality score | ranks by | seeds | AP | AP cls only | AP IoU oracle | wrong-survivor rate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['quality score']} | {r['ranks by']} | {r['seeds']} | "
                     + " | ".join(_mean_sd(r, k) for k in ("AP", "AP cls only", "AP IoU oracle", "wrong-survivor rate")) + " |")
    corr = ("cls~IoU", "quality~IoU", "ranking~IoU", "cls~IoU (IoU-chosen)", "quality~IoU (IoU-chosen)",
            "ranking~IoU (IoU-chosen)")
    lines += ["", "| model | head | " + " | ".join(corr) + " |", "|---|---|" + "---|" * len(corr)]
    for r in rows:
        lines.append(f"| {r['model']} | {r['head']} | " + " | ".join(_mean_sd(r, k) for k in corr) + " |")
    return "\n".join(lines) + "\n"


def benchmark_data(name: str) -> dict:
    """``reports/benchmarks/<name>.json`` (written by ``benchmarks/<name>.py``); a missing or
    unreadable file stops the command with one line naming it and the benchmark to run."""
    path = CHECKOUT / "reports" / "benchmarks" / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SystemExit(f"retconf.readme: {path}: cannot read the benchmark's result ({e}); "
                         f"run benchmarks/{name}.py") from e


def numeric_path_block(reports: Path, doc_dir: Path = CHECKOUT) -> str:
    """The numeric-path benchmark's result (``reports/benchmarks/numeric_path.json``, written by
    ``benchmarks/numeric_path.py``): per pair and protocol the decomposition (seed, path on one
    machine, path across CPU families, evaluation images), then each pair of arms' per-seed
    changes, and the path shift the reports use."""
    data = benchmark_data("numeric_path")
    fmt = lambda v, n=None: "—" if v is None or not math.isfinite(v) else (  # noqa: E731
        f"{v:.4f}" + (f" ({n})" if n is not None else ""))
    name = lambda r: f"{DETECTOR_NAMES.get(r['model'], r['model'])} − RetinaNet"  # noqa: E731
    lines = ["| protocol | pair | seed sd (seeds) | path, one machine (changes) | path, across CPU families (changes) "
             "| evaluation sd |", "|---|---|---|---|---|---|"]
    for d in data["decomposition"]:
        lines.append(f"| {d['protocol']} | {name(d)} | {fmt(d['seed_sd'], d['seeds'])} | "
                     f"{fmt(d['within_rms'], d['within_n'])} | {fmt(d['across_rms'], d['across_n'])} | "
                     f"{fmt(d['eval_sd'])} |")
    lines += ["", "| protocol | pair | arms (second − first) | change per seed | corr. | systematic? |",
              "|---|---|---|---|---|---|"]
    for r in data["rows"]:
        for p in r["pairs"]:
            corr = f"{p['correlation']:+.2f}" if math.isfinite(p["correlation"]) else "—"
            lines.append(f"| {r['protocol']} | {name(r)} | {p['arms'][1]} − {p['arms'][0]} | "
                         f"{', '.join(f'{v:+.3f}' for v in p['change'])} | {corr} | "
                         f"{'yes' if p['systematic'] else 'no'} |")
    from analysis.paper.findings import NUMERIC_PATH_FILE

    used = json.loads(NUMERIC_PATH_FILE.read_text())
    same = math.isclose(used["path_shift_ap"], data["path_shift"], abs_tol=5e-6)
    return ("\n".join(lines) + f"\n\nPath shift (rms of the {data['changes']} per-seed changes): "
            f"**{data['path_shift']:.4f} AP**. "
            + ("The reports use it to mark verdicts fragile (`analysis/numeric_path.json`).\n" if same else
               f"The reports mark verdicts fragile with **{used['path_shift_ap']:.4f} AP** "
               f"(`analysis/numeric_path.json`: the rms of {used['changes']} changes between the arms "
               f"{', '.join(used['arms'])}).\n"))


def decisive_paths_block(reports: Path, doc_dir: Path = CHECKOUT) -> str:
    """The cross-path check of the decisive verdicts (``reports/benchmarks/decisive_paths.json``,
    written by ``benchmarks/decisive_paths.py``): how many verdicts changed when the second
    path's seeds replaced the decisive run's own, and each change."""
    data = benchmark_data("decisive_paths")
    rows, n, k = data["rows"], len(data["seeds"]), len(data["replaced"])
    changed = [r for r in rows if r["changed"]]
    text = (f"Seeds {', '.join(map(str, data['replaced']))} ({k} of {n}) trained again under **{data['arm_name']}** "
            f"replace the decisive run's own; page{'s' * (len(data['pages']) > 1)} {', '.join(data['pages'])} "
            f"written again: **{len(changed)} of {len(rows)} verdicts changed**"
            + (f", {data['changed_unmarked']} of them not marked fragile before" if changed else "")
            + ". " + ("The seeds not replaced gave identical values in both sets."
                      if not data["inconsistent"] else "**The seeds not replaced differ: the check is not valid.**"))
    if not changed:
        return text + "\n"
    lines = [text, "", "| finding | decisive run | with the second path's seeds |", "|---|---|---|"]
    num = lambda v: "—" if v is None or not math.isfinite(v) else f"{v:+.4f}"  # noqa: E731
    for r in changed:
        lines.append(f"| `{r['finding']}` | {r['before']}{' (fragile)' if r['fragile_before'] else ''}, "
                     f"{num(r['mean_before'])} ({num(r['lo_before'])} … {num(r['hi_before'])}) | {r['after']}, "
                     f"{num(r['mean_after'])} ({num(r['lo_after'])} … {num(r['hi_after'])}) |")
    return "\n".join(lines) + "\n"


def seed_cost_block(reports: Path, doc_dir: Path = CHECKOUT) -> str:
    """The frozen-backbone caches' benchmark (``reports/benchmarks/seed_cost.json``, written by
    ``benchmarks/seed_cost.py``): per training the CPU-seconds with and without the caches and
    whether the weights agree bit for bit."""
    data = benchmark_data("seed_cost")
    plain, cached = "without caches", "with caches"
    lines = ["| training | CPU-s without caches | CPU-s with caches | ratio | s/iter, epochs 2–8 (without / with) "
             "| peak MB (without / with) | weights with = without | both = the run's checkpoint |",
             "|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        a, b = r["arms"][plain], r["arms"][cached]
        as_run = list(r["same_bits_as_run"].values())
        run_cell = "—" if None in as_run else ("yes" if all(as_run) else "no")
        lines.append(f"| {r['job']} | {a['cpu']:.0f} | {b['cpu']:.0f} | {r['cpu_ratio']:.2f} | "
                     f"{a['s_per_iter_later_epochs']:.3f} / {b['s_per_iter_later_epochs']:.3f} | "
                     f"{a['maxrss_kb'] / 1024:.0f} / {b['maxrss_kb'] / 1024:.0f} | "
                     f"{'yes' if r['same_bits_between_arms'] else 'no'} | {run_cell} |")
    per = data["cpu_per_seed"]
    return ("\n".join(lines) + f"\n\nOne seed (these {len(data['rows'])} trainings): **{per[plain]:.0f} → "
            f"{per[cached]:.0f} CPU-seconds** ({per[cached] / per[plain]:.2f}×), on {data['machine'].get('cpu')} "
            f"(`reports/benchmarks/seed_cost.md`).\n")


# a comparison of two detectors' AP on page 04 (the decisive run's target: a half-width ≤ the paper's effects)
DETECTOR_AP = re.compile(r"AP\([a-z_]+(, cls)?\) − AP\([a-z_]+(, cls)?\)")
DECISIVE_TARGET = 0.005  # issue 39: the paper's effect size


def decisive_block(reports: Path, doc_dir: Path = CHECKOUT) -> str:
    """What the decisive run (the sibling set ``tiny-decisive``) resolves: its seed count, the
    paired 95 % half-widths of page 04's AP comparisons between detectors (each quantity once)
    against :data:`DECISIVE_TARGET` and of all page 04's claims, and its registry tally."""
    from .report import _tally, registry_tally

    decisive = _decisive_set(reports)
    data = load_page(decisive, "04_main_results")
    counted = [f for f in data["findings"] if not f["own"] and f["claim_id"] and counted_here(f["home"], data["page"])
               and f["lo"] is not None]
    if not counted:
        raise SystemExit(f"retconf.readme: {decisive}: page 04 has no claim with an interval")
    half = {_measured(f): (f["hi"] - f["lo"]) / 2 for f in counted}
    ap = {w: h for w, h in half.items() if DETECTOR_AP.fullmatch(w)}
    n = max(len(f["seeds"]) for f in counted)
    within = sum(h <= DECISIVE_TARGET for h in ap.values())
    resolved = {_measured(f) for f in counted if not f["verdict"].startswith("inconclusive")}
    return (f"The decisive run trains the same recipe on **{n} seeds** "
            f"([`reports/tiny-decisive`]({_link(decisive / 'index.html', doc_dir)})). Its paired 95 % half-widths "
            f"of the {len(ap)} comparisons of one detector's AP with another's are ±{min(ap.values()):.4f} to ±{max(ap.values()):.4f} "
            f"({within} of {len(ap)} within ±{DECISIVE_TARGET:g}, the size of the paper's effects; "
            f"{len(resolved & set(ap))} of {len(ap)} resolved), and "
            f"±{min(half.values()):.4f} to ±{max(half.values()):.4f} over all {len(half)} quantities of page 04. "
            f"The paper's claims there: {_tally(registry_tally(decisive))}.\n")


GENERATORS: dict[str, Callable[[Path, Path], str]] = {"results": results_block, "numeric-path": numeric_path_block,
                                                      "seed-cost": seed_cost_block, "families-06": families_block}
for _number in ("01", "02", "03", "04"):
    GENERATORS[f"claims-{_number}"] = lambda reports, doc_dir, n=_number: claims_block(reports, n, doc_dir)
# the decisive run's page 04 (more seeds), whatever set the other blocks come from
GENERATORS["decisive-04"] = lambda reports, doc_dir: claims_block(_decisive_set(reports), "04", doc_dir)
GENERATORS["decisive"] = decisive_block
GENERATORS["decisive-paths"] = decisive_paths_block


def render_blocks(text: str, reports: Path, source: str = "", doc_dir: Path = CHECKOUT) -> str:
    """``text`` with every known generated block rewritten from ``reports`` (links relative to
    ``doc_dir``, the document's folder); an unknown block name is an error naming ``source`` and
    the block."""
    def one(m: re.Match) -> str:
        name = m.group("name")
        if name not in GENERATORS:
            raise SystemExit(f"retconf.readme: {source}: unknown generated block {name!r} "
                             f"(known: {', '.join(GENERATORS)})")
        return m.group(1) + GENERATORS[name](reports, doc_dir) + m.group(4)
    return BLOCK.sub(one, text)


def documents(root: Path = CHECKOUT) -> list[Path]:
    """The files that may hold generated blocks: README.md and docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retconf.readme", description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", default=str(CHECKOUT / "reports" / "tiny"),
                        help="the report set the numbers come from (default reports/tiny)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 where a block is out of date")
    args = parser.parse_args(argv)
    reports = Path(args.reports).resolve()
    stale = []
    for doc in documents():
        text = doc.read_text()
        if not BLOCK.search(text):
            continue
        new = render_blocks(text, reports, str(doc), doc.parent)
        if new != text:
            stale.append(doc)
            if not args.check:
                doc.write_text(new)
    for doc in stale:
        print(f"{doc.relative_to(CHECKOUT)}: {'out of date with' if args.check else 'rewritten from'} "
              f"{reports.relative_to(CHECKOUT) if reports.is_relative_to(CHECKOUT) else reports}")
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
