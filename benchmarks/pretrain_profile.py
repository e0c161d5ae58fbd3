"""Where the seconds of one backbone-pretraining iteration go: drawing a batch of crops (the
data worker's job) and the training step under torch threads 1 and 2, fp32 or bfloat16
autocast, contiguous or channels-last. Ratios only mean something within one run.

    python benchmarks/pretrain_profile.py --out reports/benchmarks/pretrain_profile
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="experiments/retinanet_r18-tiny_fpn_digits.py")
    p.add_argument("--iters", type=int, default=8)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    import numpy as np
    import torch
    from mmdet.utils import register_all_modules

    from retconf.pretrain import PretrainConfig, backbone_cfg, class_logits, crop_classifier, make_batch
    from retconf.runtime import load_config

    register_all_modules()
    cfg = PretrainConfig()
    rng = np.random.default_rng(0)
    make_batch(rng, cfg, cfg.batch_size, "train")
    t = time.perf_counter()
    for _ in range(args.iters):
        x, y = make_batch(rng, cfg, cfg.batch_size, "train")
    crops_s = (time.perf_counter() - t) / args.iters
    model = crop_classifier(backbone_cfg(load_config(args.config, {})), cfg.crop)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    rows = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for cl in (False, True):
            for bf16 in (False, True):
                layout = torch.channels_last if cl else torch.contiguous_format
                model.to(memory_format=layout)
                times = []
                for _ in range(args.iters + 2):
                    t = time.perf_counter()
                    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                        out = class_logits(model, X, layout)
                    loss = torch.nn.functional.cross_entropy(out, Y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    times.append(time.perf_counter() - t)
                name = f"threads={threads}{' channels_last' if cl else ''}{' bf16' if bf16 else ''}"
                rows[name] = statistics.median(times[2:])
                print(name, round(rows[name], 4), flush=True)
    model.to(memory_format=torch.contiguous_format)
    print("crops", round(crops_s, 4))
    result = {"machine": platform.machine(), "cpus": os.cpu_count(), "torch": torch.__version__,
              "batch": cfg.batch_size, "crop": cfg.crop, "crops_s": crops_s, "steps": rows}
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".json").write_text(json.dumps(result, indent=1))
        lines = ["# One pretraining iteration (median seconds)", "",
                 f"Batch {cfg.batch_size} crops of {cfg.crop} px; {result['cpus']} CPUs; torch {torch.__version__}.", "",
                 f"Drawing one batch of crops (one core; the data worker's job): {crops_s:.4f} s.", "",
                 "| training step variant | seconds |", "|---|---|"]
        lines += [f"| {k} | {v:.4f} |" for k, v in rows.items()]
        Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
