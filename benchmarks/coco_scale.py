"""`retconf report` on a COCO-shaped input set of dumps: time and peak memory per page as the
set grows (issue 40). The input set is made from a finished run's dumps of one seed by tiling:
tile ``t`` copies every image of the run's test set under a new image id and file name, and
moves every label (dumps and annotations alike) to ``label + K·(t mod G)``, so that ``G·K``
classes are in use (10 · 8 = 80 for the tiny preset: COCO's count). Every shard record,
SHA-256 and the annotation file's hash are rewritten, so the tiled dumps pass
:func:`analysis.inputs.io.load_dump`'s checks like real ones. Each page then runs alone
(``retconf report ... --only NN --jobs 1 --no-explore``), then the explorer alone, while a
sampler adds up the resident memory of the command and all its child processes every 0.2 s.

    python benchmarks/coco_scale.py make --run runs/tiny --images 1200 --out runs/coco-scale-1200
    python benchmarks/coco_scale.py measure --sets runs/coco-scale-300 runs/coco-scale-1200 \
        --result reports/benchmarks/coco_scale

``measure`` writes RESULT.json and RESULT.md: per set and page the wall seconds and the peak
memory, and per page how both grow from the smallest set to the largest (the ratio per image).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = ("retinanet", "iou_aware", "retinanet_conf")
GROUPS = 8  # label groups: K classes become GROUPS·K (80 for the tiny preset's 10)
# the pages the tiled set of the paper's three detectors gets (retconf.inputset.input_pages; 08 is
# for results files). 04 and 06 were added after the committed per-page rows were measured.
PAGES = ("01", "02", "03", "04", "05", "06", "07")
WHOLE = "all"  # ``--pages all``: the whole ``retconf report`` in one command
TARGET_IMAGES = 5000  # the COCO val2017 size


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tile_annotations(ann: dict, tiles: int, images: int) -> tuple[dict, dict[int, tuple[int, int]]]:
    """The annotation file tiled (see the module docstring) to ``images`` images; returns it
    and ``new image id -> (tile, old image id)``."""
    k = len(ann["categories"])
    old_cat = {c["id"]: i for i, c in enumerate(ann["categories"])}  # category id -> label (file order)
    cats = [{"id": j + 1, "name": f"c{j}", "supercategory": "tiled"} for j in range(k * GROUPS)]
    step = max(im["id"] for im in ann["images"]) + 1
    out_images, where, anns = [], {}, []
    by_image: dict[int, list[dict]] = {}
    for a in ann["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    next_ann = 1
    for t in range(tiles):
        for im in ann["images"]:
            if len(out_images) == images:
                break
            new_id = t * step + im["id"]
            out_images.append({**im, "id": new_id, "file_name": f"tile{t:03d}_{im['file_name']}"})
            where[new_id] = (t, im["id"])
            for a in by_image.get(im["id"], []):
                label = old_cat[a["category_id"]] + k * (t % GROUPS)
                anns.append({**a, "id": next_ann, "image_id": new_id, "category_id": label + 1})
                next_ann += 1
    return {**ann, "images": out_images, "annotations": anns, "categories": cats}, where


def tile_dump(src: Path, dst: Path, where: dict[int, tuple[int, int]], k: int,
              ann_file: Path, shard_images: int) -> int:
    """Write the tiled copy of the dump ``src`` to ``dst`` (shards of ``shard_images`` images);
    returns its candidate rows."""
    from analysis.inputs.io import load_dump

    meta = json.loads((src / "metadata.json").read_text())
    frames = {}
    for kind in ("images", "candidates", "detections"):
        frames[kind] = pd.concat([pd.read_parquet(src / f"{kind}-{s:05d}.parquet") for s in range(meta["num_shards"])],
                                 ignore_index=True)
    groups = {kind: frame.groupby("image_id", sort=False).indices for kind, frame in frames.items()}
    ids = sorted(where)
    dst.mkdir(parents=True, exist_ok=True)
    records, rows = [], 0
    for s, start in enumerate(range(0, len(ids), shard_images)):
        chunk = ids[start:start + shard_images]
        record = {"image_ids": chunk, "sha256": {}}
        for kind, frame in frames.items():
            parts = []
            for new_id in chunk:
                t, old = where[new_id]
                part = frame.take(groups[kind].get(old, []))
                part = part.assign(image_id=np.full(len(part), new_id, np.int64))
                if "label" in part:
                    part["label"] = (part["label"].astype("int64") + k * (t % GROUPS)).astype(part["label"].dtype)
                parts.append(part)
            shard = pd.concat(parts, ignore_index=True).astype({c: str(d) for c, d in frame.dtypes.items()})
            f = dst / f"{kind}-{s:05d}.parquet"
            shard.to_parquet(f, index=False)
            record["sha256"][kind] = _sha256(f)
            rows += len(shard) if kind == "candidates" else 0
        records.append(record)
    meta.update(num_images=len(ids), num_shards=len(records), shards=records, ann_file=str(ann_file.resolve()),
                ann_sha256=_sha256(ann_file), classes=[f"c{j}" for j in range(k * GROUPS)],
                cat_ids=list(range(1, k * GROUPS + 1)))
    (dst / "metadata.json").write_text(json.dumps(meta, indent=1))
    load_dump(dst)  # the copy passes every check a real dump passes
    return rows


def make(args: argparse.Namespace) -> None:
    from analysis.inputs import runs

    run = Path(args.run)
    dumps = {m: runs.dump_dir(run, args.seed, m) for m in MODELS}
    meta = json.loads((dumps[MODELS[0]] / "metadata.json").read_text())
    ann = json.loads((ROOT / meta["ann_file"]).read_text() if not Path(meta["ann_file"]).is_absolute()
                     else Path(meta["ann_file"]).read_text())
    n0 = len(ann["images"])
    tiles = -(-args.images // n0)
    tiled, where = tile_annotations(ann, tiles, args.images)
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ann_file = out / "instances_val.json"
    ann_file.write_text(json.dumps(tiled))
    info = {"images": len(tiled["images"]), "classes": len(tiled["categories"]),
            "annotations": len(tiled["annotations"]), "run": str(run), "seed": args.seed, "candidates": {}}
    for m, src in dumps.items():
        start = time.perf_counter()
        info["candidates"][m] = tile_dump(src, out / m, where, len(ann["categories"]), ann_file,
                                          args.shard_images)
        print(f"{m}: {info['candidates'][m]:,} candidate rows, {time.perf_counter() - start:.0f} s", flush=True)
    (out / "set.json").write_text(json.dumps(info, indent=1))


class Sampler(threading.Thread):
    """Peak of the summed resident memory of ``pid`` and its descendants, sampled every 0.2 s."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, False

    def run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        while not self.done:
            try:
                procs = [root, *root.children(recursive=True)]
                total = 0
                for p in procs:
                    try:
                        total += p.memory_info().rss
                    except psutil.Error:
                        pass
                self.peak = max(self.peak, total)
            except psutil.Error:
                return
            time.sleep(0.2)


def run_measured(cmd: list[str], log: Path) -> dict:
    """Wall seconds, peak memory (GB, all processes) and exit status of ``cmd``."""
    start = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
        sampler = Sampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        sampler.done = True
        sampler.join()
    return {"seconds": round(time.perf_counter() - start, 1), "peak_gb": round(sampler.peak / 1e9, 2), "rc": rc}


def _jobs_line(log: Path) -> str:
    """``retconf report``'s line on how many pages it ran at once, when memory limited them."""
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if "pages run " in ln]
    return lines[-1] if lines else ""


def measure(args: argparse.Namespace) -> None:
    from retconf.machine import cpu_name

    target = Path(args.result).with_suffix(".json")
    # pages measured before (another set, or other pages of a set) are kept: one file for the growth
    result: dict = json.loads(target.read_text()) if target.is_file() else {"sets": {}}
    if args.before:
        shown = subprocess.run(["git", "show", f"{args.before}:{target.resolve().relative_to(ROOT)}"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout
        result["before"] = {"commit": args.before, **{k: v for k, v in json.loads(shown).items() if k != "before"}}
    result.update(cpu=cpu_name(), date=time.strftime("%Y-%m-%d %H:%M"))
    for s in args.sets:
        s = Path(s)
        info = json.loads((s / "set.json").read_text())
        out = s / "report"
        inputs = [f"{m}={s / m}" for m in MODELS]
        rows = dict(result["sets"].get(s.name, {}).get("pages", {}))
        for page in args.pages:
            shutil.rmtree(out, ignore_errors=True)
            cmd = [sys.executable, "-m", "retconf.cli", "report", *inputs, "--ann-file", str(s / "instances_val.json"),
                   "--out", str(out)]
            # one page alone on one job; WHOLE: every page, as many at once as retconf report decides
            cmd += ([] if args.memory_gb is None else ["--memory-gb", str(args.memory_gb)]) if page == WHOLE \
                else ["--jobs", "1", "--only", page]
            rows[page] = run_measured(cmd, s / f"report-{page}.log")
            if page == WHOLE:
                rows[page].update(jobs_line=_jobs_line(s / f"report-{page}.log"), memory_gb=args.memory_gb)
            if page in ("explore", WHOLE) and (out / "explore.html").is_file():
                rows[page]["page_mb"] = round((out / "explore.html").stat().st_size / 1e6, 2)
            print(f"{s.name} {page}: {rows[page]}", flush=True)
        result["sets"][s.name] = {**info, "pages": rows}
    target.write_text(json.dumps(result, indent=1))
    Path(args.result).with_suffix(".md").write_text(markdown(result))


def page_memory_fit(result: dict) -> dict[str, tuple[float, float]]:
    """Per page measured alone on the two smallest sets: (GB at no rows, GB per million candidate
    rows of the largest dump), the line through the two peaks, rounded to 0.01 and 0.001: what
    ``retconf.report.PAGE_MEMORY`` holds (tests/test_report_memory.py checks it)."""
    sets = sorted((r for r in result["sets"].values() if r["images"] < TARGET_IMAGES), key=lambda r: r["images"])
    out: dict[str, tuple[float, float]] = {}
    if len(sets) < 2:
        return out
    a, b = sets[0], sets[-1]
    ra, rb = max(a["candidates"].values()) / 1e6, max(b["candidates"].values()) / 1e6
    for page in a["pages"]:
        if page == WHOLE or page not in b["pages"]:
            continue
        slope = (b["pages"][page]["peak_gb"] - a["pages"][page]["peak_gb"]) / (rb - ra)
        out[page] = (round(a["pages"][page]["peak_gb"] - slope * ra, 2), round(slope, 3))
    return out


def markdown(result: dict) -> str:
    sets = sorted(result["sets"].values(), key=lambda r: r["images"])
    head = ("| page | " + " | ".join(f"{r['images']} images: s / GB" for r in sets)
            + f" | + per 1,000 images: s / GB | {TARGET_IMAGES:,} images, linear: s / GB |")
    lines = [f"# `retconf report` on COCO-shaped input sets of dumps ({result['cpu']}, {result['date']})", "",
             "Three detectors' dumps (seed 0 of the tiny run) tiled to the size given, "
             f"{sets[-1]['classes']} classes; candidate rows per dump: " +
             "; ".join(f"{r['images']} images: " + ", ".join(f"{m} {n:,}" for m, n in r["candidates"].items())
                       for r in sets) +
             ". Each page alone (`--jobs 1`); peak = summed resident memory of the command and its kernels.", "",
             head, "|---" * (len(sets) + 3) + "|"]
    pages = sorted({p for r in sets for p in r["pages"] if p != WHOLE}, key=lambda p: (p == "explore", p))
    total = [0.0, 0.0]
    for page in pages:
        cells = [f"{r['pages'][page]['seconds']:.0f} / {r['pages'][page]['peak_gb']:.2f}" if page in r["pages"] else "—"
                 for r in sets]
        have = [r for r in sets if page in r["pages"]]
        slope = at = "—"
        small = [r for r in have if r["images"] < TARGET_IMAGES]
        if len(small) > 1:
            a, b = small[0], small[-1]
            k = (b["images"] - a["images"]) / 1000
            ds = (b["pages"][page]["seconds"] - a["pages"][page]["seconds"]) / k
            dm = (b["pages"][page]["peak_gb"] - a["pages"][page]["peak_gb"]) / k
            slope = f"{ds:.0f} / {dm:.2f}"
            far = (TARGET_IMAGES - b["images"]) / 1000
            s5, m5 = b["pages"][page]["seconds"] + ds * far, b["pages"][page]["peak_gb"] + dm * far
            at = f"{s5:.0f} / {m5:.1f}"
            total = [total[0] + s5, max(total[1], m5)]
        lines.append(f"| {page} | " + " | ".join(cells) + f" | {slope} | {at} |")
    lines += ["", f"Linear extrapolation from the two smallest sets to {TARGET_IMAGES:,} images, pages one after "
              f"another: about {total[0] / 60:.0f} min and a peak of {total[1]:.1f} GB (the largest page's), against "
              "the issue's target of 20 min and 8 GB. A set of that size measured directly is shown in its column "
              "where it was run."]
    whole = [r for r in sets if WHOLE in r["pages"]]
    for r in whole:
        w = r["pages"][WHOLE]
        budget = f" within `--memory-gb {w['memory_gb']:g}`" if w.get("memory_gb") else ""
        lines += ["", f"**The whole report** (`retconf report` with every page, as many at once as it decides{budget}) "
                  f"on {r['images']:,} images: {w['seconds'] / 60:.1f} min, peak {w['peak_gb']:.2f} GB"
                  + (f", exit status {w['rc']}" if w["rc"] else "") + "."
                  + (f" It said: \"{w['jobs_line']}\"." if w.get("jobs_line") else "")]
    weights = [f"{r['images']} images: {p['page_mb']} MB" for r in sets
               for p in [r["pages"].get("explore") or r["pages"].get(WHOLE) or {}] if "page_mb" in p]
    if weights:
        lines += ["", "The explorer page's weight (explore.html, without plotly.min.js): " + "; ".join(weights) + "."]
    before = result.get("before")
    if before:
        lines += ["", f"**Before** (the same sets measured at commit {before['commit']}, {before['date']}; now / before):",
                  "", "| page | " + " | ".join(f"{r['images']} images: s before → now" for r in sets
                                               if r["images"] < TARGET_IMAGES) + " |",
                  "|---" * (1 + sum(r["images"] < TARGET_IMAGES for r in sets)) + "|"]
        for page in pages:
            cells = []
            for r in sets:
                if r["images"] >= TARGET_IMAGES:
                    continue
                old = before["sets"].get(f"coco-scale-{r['images']}", {}).get("pages", {}).get(page)
                new = r["pages"].get(page)
                cells.append(f"{old['seconds']:.0f} → {new['seconds']:.0f} ({new['seconds'] / old['seconds']:.2f})"
                             if old and new else "—")
            lines.append(f"| {page} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    mk = sub.add_parser("make", help="tile a run's dumps into a COCO-shaped input set")
    mk.add_argument("--run", default="runs/tiny")
    mk.add_argument("--seed", type=int, default=0)
    mk.add_argument("--images", type=int, required=True)
    mk.add_argument("--shard-images", type=int, default=500)
    mk.add_argument("--out", required=True)
    ms = sub.add_parser("measure", help="time each page of `retconf report` on input sets made by `make`")
    ms.add_argument("--sets", nargs="+", required=True)
    ms.add_argument("--pages", nargs="+", default=[*PAGES, "explore"],
                    help=f"pages to time, each alone (default: every page); '{WHOLE}': the whole report in one "
                         "command, pages at once as retconf report decides")
    ms.add_argument("--result", default="reports/benchmarks/coco_scale")
    ms.add_argument("--memory-gb", type=float, default=None, metavar="GB",
                    help=f"'{WHOLE}': passed to retconf report (e.g. 12.8: 80 %% of a 16 GB machine)")
    ms.add_argument("--before", metavar="COMMIT",
                    help="keep this commit's RESULT.json as the 'before' of the comparison (e.g. the commit before a "
                         "speed-up)")
    args = p.parse_args(argv)
    make(args) if args.cmd == "make" else measure(args)


if __name__ == "__main__":
    main()
