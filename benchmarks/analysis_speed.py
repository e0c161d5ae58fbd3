"""Analysis speed: throughput on synthetic COCO-scale dumps, a 10-alpha re-scoring sweep against
re-running inference per alpha, and faster-coco-eval against pycocotools on the same input.

Every figure is measured in this run; results go to JSON and a markdown summary.

    python benchmarks/analysis_speed.py --sizes 500 1500 5000 --cands 5000 \\
        --dump runs/tiny-dumps/retinanet_conf --config experiments/retinanet-conf_r18-tiny_fpn_digits.py \\
        --checkpoint runs/tiny/retinanet_conf/epoch_8.pth --data-root data/digits-tiny \\
        --out reports/benchmarks/analysis_speed
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.measures.metrics import count_table, proportions, rank_correlation  # noqa: E402
from analysis.studies.tables import ALPHAS  # noqa: E402


def synthetic_dump(n_images: int, per_image: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Candidates (n_images·per_image rows), detections (100 per image) and images tables."""
    rng = np.random.default_rng(seed)
    n = n_images * per_image
    cand = pd.DataFrame({
        "image_id": np.repeat(np.arange(n_images, dtype=np.int64), per_image),
        "level": rng.integers(0, 5, n).astype(np.int8), "anchor": rng.integers(0, 20000, n).astype(np.int32),
        "label": rng.integers(0, 80, n).astype(np.int16), "cls": rng.beta(0.5, 6, n).astype(np.float32),
        "obj": rng.random(n, dtype=np.float32), "iou_same": rng.beta(1, 3, n).astype(np.float32),
        "iou_any": rng.beta(1, 2, n).astype(np.float32), "gt_same": rng.integers(-1, 10, n).astype(np.int32)})
    det = cand.groupby("image_id", sort=False).head(100).reset_index(drop=True)
    images = pd.DataFrame({"image_id": np.arange(n_images), "positive_anchors": rng.integers(0, 400, n_images)})
    return cand, det, images


def time_analysis(cand: pd.DataFrame, det: pd.DataFrame, images: pd.DataFrame) -> dict:
    t = {}
    s = time.perf_counter()
    before = cand[cand["cls"] > 0.05]
    count_table(before, det, images)
    t["count_table_s"] = time.perf_counter() - s
    s = time.perf_counter()
    rank_correlation(before), rank_correlation(det), proportions(before), proportions(det)
    t["correlations_proportions_s"] = time.perf_counter() - s
    s = time.perf_counter()
    before.sample(min(len(before), 20000), random_state=0)[["cls", "iou_same"]].to_numpy()
    t["scatter_data_s"] = time.perf_counter() - s
    t["total_s"] = sum(t.values())
    return {k: round(v, 3) for k, v in t.items()}


def time_sweep_vs_reinference(dump_dir: str, config: str, checkpoint: str, data_root: str,
                              n_images: int | None = None) -> dict:
    """10 alphas: re-score the dump vs run live inference once per alpha (both without COCO eval),
    then both with the COCO evaluation included. ``n_images`` uses only the first images."""
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner

    from analysis.inputs.io import load_dump
    from analysis.measures.coco import coco_ap
    from analysis.scoring.rescore import inference_kwargs, rescore
    from retconf.apis import prepare
    from retconf.checkpoint import load_checkpoint_file

    d = load_dump(dump_dir)
    kw = inference_kwargs(d.meta)
    ids = sorted(d.images["image_id"])[:n_images] if n_images else sorted(d.images["image_id"])
    candidates = d.candidates[d.candidates["image_id"].isin(ids)]
    s = time.perf_counter()
    sweeps = {a: rescore(candidates, "pow", a, **kw) for a in ALPHAS}
    rescore_s = time.perf_counter() - s
    s = time.perf_counter()
    for det in sweeps.values():
        coco_ap(det, d.meta["ann_file"], d.meta["classes"])
    eval_s = time.perf_counter() - s

    register_all_modules()
    cfg = prepare(config, "/tmp/retconf-bench-work", None, data_root, "none", ("test",))
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    model.load_state_dict(load_checkpoint_file(checkpoint)["state_dict"])
    model.eval()
    cfg.test_dataloader.dataset.indices = len(ids)  # the first n images, as for the re-scoring
    loader = Runner.build_dataloader(cfg.test_dataloader)
    batches = list(loader)
    per_alpha = []
    with torch.no_grad():
        for a in ALPHAS[:2]:  # two alphas measured; the other eight cost the same
            model.bbox_head.fusion.alpha = a
            s = time.perf_counter()
            for batch in batches:
                model.test_step(batch)
            per_alpha.append(time.perf_counter() - s)
    reinfer_s = float(np.mean(per_alpha)) * len(ALPHAS)
    return {"images": len(ids), "candidates": len(candidates), "alphas": len(ALPHAS),
            "rescore_s": round(rescore_s, 2), "coco_eval_s": round(eval_s, 2),
            "reinference_s_est": round(reinfer_s, 2),
            "speedup_without_eval": round(reinfer_s / rescore_s, 2),
            "speedup_with_eval": round((reinfer_s + eval_s) / (rescore_s + eval_s), 2)}


def time_evaluators(dump_dir: str) -> dict:
    """faster-coco-eval vs pycocotools on the dump's live detections."""
    import contextlib
    import io

    from faster_coco_eval import COCO as FCOCO
    from faster_coco_eval import COCOeval_faster
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from analysis.inputs.io import load_dump

    d = load_dump(dump_dir)
    ann = d.meta["ann_file"]
    res = [{"image_id": int(r.image_id), "category_id": int(r.label) + 1,
            "bbox": [float(r.x1), float(r.y1), float(r.x2 - r.x1), float(r.y2 - r.y1)], "score": float(r.score)}
           for r in d.detections.itertuples()]
    out = {}
    for name, (C, E) in {"pycocotools": (COCO, COCOeval), "faster_coco_eval": (FCOCO, COCOeval_faster)}.items():
        with contextlib.redirect_stdout(io.StringIO()):
            s = time.perf_counter()
            gt = C(ann)
            ev = E(gt, gt.loadRes(res), "bbox")
            ev.evaluate(), ev.accumulate(), ev.summarize()
            out[name] = {"seconds": round(time.perf_counter() - s, 3), "AP": round(float(ev.stats[0]), 5)}
    out["speedup"] = round(out["pycocotools"]["seconds"] / out["faster_coco_eval"]["seconds"], 2)
    return out


def markdown(r: dict) -> str:
    lines = ["# Analysis speed (2-core CPU unless noted)", "",
             f"## Analysis throughput, synthetic dumps ({r['cands_per_image']} candidates per image)", "",
             "| images | rows | count table s | correlations + proportions s | scatter data s | total s |",
             "|---|---|---|---|---|---|"]
    for n, t in r["throughput"].items():
        lines.append(f"| {n} | {int(n) * r['cands_per_image']:,} | {t['count_table_s']} | "
                     f"{t['correlations_proportions_s']} | {t['scatter_data_s']} | {t['total_s']} |")
    if "sweep" in r:
        lines += ["", "## 10-alpha sweep vs re-running inference per alpha", "",
                  "| images | cached candidates | re-score 10 alphas s | re-infer 10x s (est. from 2) | speed-up | "
                  "speed-up incl. COCO eval |", "|---|---|---|---|---|---|"]
        for s in r["sweep"]:
            lines.append(f"| {s['images']} | {s['candidates']:,} | {s['rescore_s']} | {s['reinference_s_est']} | "
                         f"{s['speedup_without_eval']}x | {s['speedup_with_eval']}x |")
    if "evaluators" in r:
        e = r["evaluators"]
        lines += ["", "## COCO evaluator on the same detections", "",
                  f"pycocotools {e['pycocotools']['seconds']} s (AP {e['pycocotools']['AP']}), "
                  f"faster-coco-eval {e['faster_coco_eval']['seconds']} s (AP {e['faster_coco_eval']['AP']}): "
                  f"{e['speedup']}x."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 1500, 5000], help="images per synthetic dump")
    p.add_argument("--cands", type=int, default=5000, help="candidates per image")
    p.add_argument("--dump", help="a real dump for the sweep and evaluator comparisons")
    p.add_argument("--config"), p.add_argument("--checkpoint"), p.add_argument("--data-root")
    p.add_argument("--sweep-images", type=int, nargs="+", default=[0],
                   help="image counts for the sweep comparison (0: the whole dump)")
    p.add_argument("--out", help="output prefix for .json and .md")
    args = p.parse_args(argv)
    result: dict = {"cands_per_image": args.cands, "throughput": {}}
    for n in args.sizes:
        cand, det, images = synthetic_dump(n, args.cands)
        result["throughput"][str(n)] = time_analysis(cand, det, images)
        del cand, det
    if args.dump:
        result["evaluators"] = time_evaluators(args.dump)
        if args.config and args.checkpoint:
            result["sweep"] = [time_sweep_vs_reinference(args.dump, args.config, args.checkpoint,
                                                         args.data_root, n or None)
                               for n in args.sweep_images]
    text = markdown(result)
    print(text)
    if args.out:
        from retconf.io import write_json_and_markdown

        write_json_and_markdown(args.out, result, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
