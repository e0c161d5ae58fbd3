"""Where the variance of a detector-vs-detector AP difference comes from, and what the levers do.

The three paper detectors of the tiny preset are trained under several recipes ("levers"), each
on the same seeds, and under a second oneDNN numeric path (``ONEDNN_MAX_CPU_ISA``) for seed 0.
For each lever the paired differences Conf − RetinaNet and IoU-aware − RetinaNet (AP of the
dumps, re-scored by the deployed rule) are split into:

- **evaluation sampling**: a paired image bootstrap of the difference on fixed checkpoints
  (resampling the validation images; :func:`analysis.measures.bootstrap.paired_bootstrap`);
- **numeric noise at a fixed seed**: the same seed trained on two floating-point paths (the
  difference of the paired difference between the paths);
- **seed-to-seed noise**: the sd of the paired difference over seeds (which already removes what
  the detectors of one seed share: data order, augmentation, backbone);
- and each single detector's AP spread (what pairing removes is the gap between the two).

    python benchmarks/variance_sources.py train --lever default --seeds 2
    python benchmarks/variance_sources.py train --lever default --seeds 1 --isa AVX512_CORE
    python benchmarks/variance_sources.py report --out reports/benchmarks/variance_sources
    python benchmarks/variance_sources.py time --levers default frozen   # seconds per step, side by side

The lever ``default`` is the recipe with every backbone stage fine-tuned (the default before the
frozen backbone became it): its options set ``frozen_stages=-1`` explicitly (batch norm stays in eval mode, as in mmdet), so
the lever keeps its meaning whatever the configs' default is.

``train`` runs the dataset, the shared pretraining (copied from the first run of the same
backbone recipe) and the trainings and dumps of one lever into ``runs/variance/<lever>[-<isa>]``;
it resumes like ``retconf reproduce``. ``report`` reads every run there.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS = ROOT / "runs" / "variance"
PAIRS = (("retinanet_conf", "retinanet"), ("iou_aware", "retinanet"))

# The levers: --cfg-options of every detector (the preset's own otherwise). EMA follows mmdet's
# RTMDet recipe (EMAHook + ExpMomentumEMA) with the momentum scaled to ~1000 iterations: the
# average spans the last ~250 (2 epochs); gamma 100 lets it follow the early weights closely.
EMA_HOOKS = [dict(type="ChannelsLastHook"),
             dict(type="EMAHook", ema_type="ExpMomentumEMA", momentum=0.004, gamma=100, update_buffers=True,
                  priority=49)]
LEVERS: dict[str, dict] = {
    "default": {"model.backbone.frozen_stages": -1},
    "ema": {"model.backbone.frozen_stages": -1, "custom_hooks": EMA_HOOKS},
    # The whole pretrained backbone frozen (stem and four stages, batch norm in eval mode): every
    # detector of a seed then shares identical features, and no gradient flows through them.
    "frozen": {"model.backbone.frozen_stages": 4, "model.backbone.norm_eval": True},
    # The frozen backbone for twice the epochs (the cosine schedule stretched to match): about 1.2x
    # the fine-tuned recipe's cost per training (a frozen step takes 0.62x), spent on a schedule that
    # goes further down its loss curve. Started once and stopped for time: not measured yet.
    "frozen_long": {"model.backbone.frozen_stages": 4, "model.backbone.norm_eval": True,
                    "train_cfg.max_epochs": 16, "train_cfg.val_interval": 16,
                    "param_scheduler.1.end": 16, "param_scheduler.1.T_max": 16},
}


def run_dir(lever: str, isa: str | None) -> Path:
    """``runs/variance/<lever>`` or ``runs/variance/<lever>-<isa>``."""
    return RUNS / (lever if not isa else f"{lever}-{isa}")


def share_backbone(target: Path) -> None:
    """Copy an already pretrained shared backbone of another variance run into ``target`` (the
    pretraining stage then finds it cached when its fingerprint matches, else retrains)."""
    if (target / "pretrain" / "backbone.pth").is_file():
        return
    for other in sorted(RUNS.glob("*/pretrain/backbone.pth")):
        (target / "pretrain").mkdir(parents=True, exist_ok=True)
        for f in other.parent.iterdir():
            shutil.copy2(f, target / "pretrain" / f.name)
        print(f"shared backbone copied from {other.parent}")
        return


def train(lever: str, seeds: int, isa: str | None) -> int:
    """Train and dump the three detectors of ``lever`` for ``seeds`` seeds (in a subprocess
    with ``ONEDNN_MAX_CPU_ISA`` set when ``isa`` is given: oneDNN reads it once, at start)."""
    if isa and os.environ.get("ONEDNN_MAX_CPU_ISA") != isa:
        env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
        return subprocess.run([sys.executable, __file__, "train", "--lever", lever, "--seeds", str(seeds),
                               "--isa", isa], env=env, cwd=ROOT).returncode
    import retconf

    print(f"retconf from {Path(retconf.__file__).parent}, ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', '(default)')}")
    from retconf.pipeline import (
        RunLog,
        job_context,
        make_dataset,
        plan_run,
        pretrain_shared_backbone,
        train_and_dump,
        write_summary,
    )

    out = run_dir(lever, isa)
    share_backbone(out)
    run = plan_run("tiny", str(out), None, str(out / "no-reports"), seeds, False, LEVERS[lever])
    log = RunLog(time.time(), {})
    make_dataset(run, log)
    pretrain_shared_backbone(run, log)
    train_and_dump(run, job_context(run), None, log)
    summary = write_summary(run, log)
    from retconf.machine import cpu_name, onednn_isa

    extra = {"lever": lever, "cfg_options": LEVERS[lever], "isa": isa or "default",
             "onednn_isa": onednn_isa(isa), "cpu": cpu_name()}
    (out / "variance.json").write_text(json.dumps(extra, indent=1, default=str))
    print(json.dumps(summary["metrics"], indent=1))
    return 0


def time_levers(levers: list[str], config: str, data_root: str, backbone: str, iters: int, rounds: int,
                out: str | None) -> dict:
    """Median seconds of one training step (one thread, bfloat16 autocast, channels-last: the
    recipe's step) of each lever's model on the same batches, the levers interleaved round by
    round so that they share the machine's load; each lever's ratio to the first."""
    import statistics

    import torch

    from benchmarks.train_profile import time_data, time_step
    from retconf.machine import cpu_name
    from retconf.runtime import build_runner, finish_cfg, load_config

    torch.manual_seed(0)
    models = {}
    batches = None
    for lever in levers:
        options = {k: v for k, v in LEVERS[lever].items() if k.startswith("model.")}  # what changes a step
        cfg = load_config(config, {**options, "model.backbone.init_cfg.checkpoint": backbone,
                                   "train_dataloader.num_workers": 0,
                                   "train_dataloader.persistent_workers": False}, data_root)
        finish_cfg(cfg, config, f"/tmp/retconf_time_{lever}")
        runner = build_runner(cfg)
        model = runner.model
        model.init_weights()
        model.train()
        if batches is None:
            batches, _ = time_data(runner.train_dataloader, iters)
        models[lever] = (model, torch.optim.AdamW([q for q in model.parameters() if q.requires_grad], lr=1e-4))
    steps: dict[str, list[float]] = {lever: [] for lever in levers}
    for r in range(rounds):
        for lever in levers:
            model, optim = models[lever]
            steps[lever].append(time_step(model, optim, batches, 1, True, True)["step"])
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.3f} s" for k, v in steps.items()), flush=True)
    med = {k: statistics.median(v) for k, v in steps.items()}
    result = {"config": config, "iters": iters, "rounds": rounds, "cpu": cpu_name(),
              "step_s": med, "ratio_to_first": {k: v / med[levers[0]] for k, v in med.items()},
              "per_round": steps}
    if out:
        from benchmarks.results import write_results

        lines = ["# Seconds per training step of each variance lever (side by side)", "",
                 f"{config}; batch 16 at 192 px; one thread, bfloat16 autocast, channels-last (the recipe's step); "
                 f"{iters} batches per round (2 warm-up), {rounds} rounds with the levers interleaved so they share the "
                 f"machine's load; CPU: {result['cpu']}. A lever that changes only the schedule (epochs) has the step of "
                 "the model it trains.", "",
                 "| lever | median step s | ratio to " + levers[0] + " |", "|---|---|---|"]
        lines += [f"| {k} | {med[k]:.4f} | {result['ratio_to_first'][k]:.2f} |" for k in levers]
        write_results(out, result, "\n".join(lines) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train and dump one lever's three detectors")
    t.add_argument("--lever", choices=list(LEVERS), default="default")
    t.add_argument("--seeds", type=int, default=2)
    t.add_argument("--isa", help="ONEDNN_MAX_CPU_ISA for a second numeric path (e.g. AVX512_CORE)")
    r = sub.add_parser("report", help="decompose the variance of every run in runs/variance")
    r.add_argument("--out", default=str(ROOT / "reports" / "benchmarks" / "variance_sources"))
    r.add_argument("--resamples", type=int, default=1000)
    tm = sub.add_parser("time", help="seconds per training step of each lever's model, side by side")
    tm.add_argument("--levers", nargs="+", default=["default", "frozen"], choices=list(LEVERS))
    tm.add_argument("--config", default="experiments/retinanet-conf_r18-tiny_fpn_digits.py")
    tm.add_argument("--data-root", default=str(ROOT / "data" / "digits-tiny"))
    tm.add_argument("--backbone", default=str(RUNS / "default" / "pretrain" / "backbone.pth"))
    tm.add_argument("--iters", type=int, default=12)
    tm.add_argument("--rounds", type=int, default=5)
    tm.add_argument("--out", default=str(ROOT / "reports" / "benchmarks" / "variance_levers_time"))
    args = p.parse_args(argv)
    if args.cmd == "time":
        import torch

        torch.set_num_threads(1)
        time_levers(args.levers, args.config, args.data_root, args.backbone, args.iters, args.rounds, args.out)
        return 0
    if args.cmd == "train":
        return train(args.lever, args.seeds, args.isa)
    from benchmarks.variance_report import report

    return report(RUNS, args.out, args.resamples)


if __name__ == "__main__":
    sys.exit(main())
