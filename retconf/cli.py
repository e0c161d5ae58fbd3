"""The ``retconf`` command: dataset, pretraining, training, testing and the reproduction pipeline.

``retconf train`` / ``retconf test`` follow mmdet's tools/train.py and tools/test.py (same
flags), with inputs checked up front and checkpoints loaded safely on current torch.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from .errors import RetconfError, UsageError, exit_code


def _dict_action() -> Any:
    """mmengine's ``DictAction`` for ``--cfg-options``; without mmengine (the light install of the
    analysis, docs/install.md) an action that refuses the option in one line, so that ``retconf
    report`` still parses its arguments."""
    try:
        from mmengine.config import DictAction
    except ImportError:
        return _NeedsTrainingStack
    return DictAction


class _NeedsTrainingStack(argparse.Action):
    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None) -> None:
        parser.error(f"{option_string} needs mmengine, which the light install leaves out: install the full "
                     "stack with `bash scripts/install.sh` (docs/install.md)")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="mmdet config file (e.g. experiments/retinanet_r18-tiny_fpn_digits.py)")
    p.add_argument("--work-dir", help="directory for logs, checkpoints and metrics.json "
                   "(default: ./work_dirs/<config name>)")
    p.add_argument("--data-root", help="dataset root to use instead of the config's data_root")
    p.add_argument("--cfg-options", nargs="+", action=_dict_action(), metavar="KEY=VALUE",
                   help="override config settings, e.g. train_cfg.max_epochs=2 "
                   "model.backbone.init_cfg.checkpoint=/path/r50.pth")
    p.add_argument("--launcher", choices=["none", "pytorch", "slurm"], default="none",
                   help="job launcher (pytorch: under torchrun; gloo is used on CPU-only torch)")
    p.add_argument("--local_rank", "--local-rank", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--allow-partial-checkpoint", action="store_true",
                   help="load a checkpoint that lacks entries the model needs, has entries it "
                   "does not have, or has tensors of other shapes (only what fits is loaded; the "
                   "rest keeps its initialisation). Without it such a checkpoint is refused.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="retconf",
        description="Reproduce and explain RetinaNet-Conf (Improvement of Classification in "
                    "One-Stage Detector) with mmdet 3.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data = sub.add_parser("data", help="make datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="DATASET")
    dg = dsub.add_parser("digits", help="embedded digits-on-photos dataset in COCO format",
                         description="Compose scikit-learn's handwritten digits onto photographs "
                         "bundled with scikit-learn/scikit-image: a 10-class COCO dataset with "
                         "train and val splits. Same parameters -> byte-identical files.")
    from .data.digits import DigitsConfig
    d = DigitsConfig()
    dg.add_argument("--out", required=True, help="output directory (written atomically)")
    dg.add_argument("--num-train", type=int, default=d.num_train, help="train images (default %(default)s)")
    dg.add_argument("--num-val", type=int, default=d.num_val, help="val images (default %(default)s)")
    from .data.digits import coco_shaped
    c = coco_shaped()
    dg.add_argument("--image-size", type=int, help=f"square image side in px (default {d.image_size}; "
                    f"--coco: the longest side, default {c.image_size})")
    dg.add_argument("--min-size", type=int, help=f"smallest digit height in px (default {d.min_size}; --coco {c.min_size})")
    dg.add_argument("--max-size", type=int, help=f"largest digit height in px (default {d.max_size}; "
                    f"--coco {c.max_size}, and at most half the image)")
    dg.add_argument("--max-objects", type=int, help=f"most digits per image (default {d.max_objects}; --coco {c.max_objects})")
    dg.add_argument("--seed", type=int, default=d.seed, help="random seed (default %(default)s)")
    dg.add_argument("--coco", action="store_true",
                    help="COCO-shaped: non-square images of mixed sizes (long side 500-640 px), objects "
                    "10 px to half the image, COCO's 80 categories and ids (the digits take ten), "
                    "COCO 2017 layout (annotations/instances_{train,val}2017.json, train2017/, val2017/)")
    dg.add_argument("--overwrite", action="store_true", help="replace an existing different dataset")

    dc = dsub.add_parser("check", help="validate a COCO annotation file (and its images)",
                         description="Check a COCO detection json: structure, ids, boxes, areas, "
                         "categories and, with --images, every image file: its header, its size "
                         "(after EXIF orientation) against the json's width/height, decompression-"
                         "bomb sizes, truncation, and a full decode with the pipeline's decoder "
                         "(OpenCV). The full decode costs about 1 ms of CPU per image (640x480 JPEG or "
                         "192x192 PNG, one core, benchmarks/image_check.py), about 2 minutes of CPU "
                         "for COCO train2017's 118,287 images plus reading its 18 GB; --header-only "
                         "skips the decode (about 0.05 ms per image, under 10 s for COCO). Training, "
                         "testing and dumping run the header-only check on their datasets first.")
    dc.add_argument("ann_file", help="COCO json, e.g. data/digits/annotations/instances_val.json")
    dc.add_argument("--images", help="directory holding the images' file_name entries")
    dc.add_argument("--header-only", action="store_true",
                    help="check image headers, sizes and end markers without decoding the pixels")

    pt = sub.add_parser("pretrain", help="pretrain a detector config's backbone as a digit classifier",
                        description="Train the config's backbone as an 11-way digit/background "
                        "classifier on 64x64 crops and save it for backbone.init_cfg. Cached: "
                        "skipped when the output records the same settings.")
    pt.add_argument("config", help="detector config whose backbone is pretrained")
    pt.add_argument("--out", help="output checkpoint (default: the config's "
                    "model.backbone.init_cfg.checkpoint)")
    pt.add_argument("--iters", type=int, help="training iterations (default 1500)")
    pt.add_argument("--force", action="store_true", help="retrain even if a matching output exists")

    tr = sub.add_parser("train", help="train a detector (mmdet tools/train.py)",
                        description="Train a detector with mmengine's Runner.")
    _add_common(tr)
    tr.add_argument("--resume", nargs="?", type=str, const="auto",
                    help="resume from CHECKPOINT, or from the latest checkpoint in the work dir "
                    "when given without a value")
    tr.add_argument("--feature-cache", action="store_true",
                    help="keep each training sample as a deterministic pipeline made it and a frozen backbone's "
                    "features of it after the first epoch, and reuse them: the same bits, fewer CPU-seconds (each "
                    "turns itself off, saying why in the log, where that cannot hold)")
    tr.add_argument("--amp", action="store_true", help="automatic mixed precision: float16 AmpOptimWrapper on CUDA, bfloat16 CPUAutocastOptimWrapper on a CPU with native bfloat16 (refused on other CPUs)")

    te = sub.add_parser("test", help="evaluate a checkpoint (mmdet tools/test.py)",
                        description="Evaluate a checkpoint on the config's test set; writes "
                        "test_metrics.json in the work dir.")
    _add_common(te)
    te.add_argument("checkpoint", help="checkpoint file")

    rp = sub.add_parser("reproduce", help="run the pipeline: data -> pretrain -> train -> dump -> reports",
                        description="Run the reproduction pipeline of a preset. Every stage is "
                        "cached or resumed, so rerunning after an interruption continues.")
    from .presets import PRESETS
    rp.add_argument("--preset", choices=sorted(PRESETS), default="tiny",
                    help="pipeline preset (default %(default)s): " +
                    "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()))
    rp.add_argument("--out", default=None, help="run directory (default: runs/<preset>)")
    rp.add_argument("--data-root", default=None, help="dataset directory (default: data/digits-<preset>)")
    rp.add_argument("--reports", default=None, help="HTML report directory (default: reports/<preset>)")
    rp.add_argument("--seeds", type=int, default=3, metavar="N",
                    help="repeat the whole comparison with training seeds 0..N-1; the reports "
                    "show mean and spread over seeds (default %(default)s)")
    rp.add_argument("--full", action="store_true",
                    help="also train the RetinaNet-Conf ablation variants of Tables 2 and 3 and "
                    "the target-gradient pitfall (7 more trainings per seed)")
    rp.add_argument("--detectors", nargs="+", default=None, metavar="NAME",
                    help="detectors to train (default: the paper's three, retinanet iou_aware "
                    "retinanet_conf); the tiny presets also have fcos atss gfl vfnet tood paa ddod, under the "
                    "same recipe; 'paper', 'families' and 'all' name groups")
    rp.add_argument("--cfg-options", nargs="+", action=_dict_action(), metavar="KEY=VALUE",
                    help="override settings of every detector config, e.g. "
                    "model.backbone.init_cfg.checkpoint=/path/r50.pth for COCO presets offline")
    rp.add_argument("--jobs", type=int, default=None, metavar="N",
                    help="trainings (each with its dump) run at once, each in its own process "
                    "(default: 1 with CUDA, else one per CPU core up to 8); on a CPU each has one compute "
                    "thread whatever N, since the thread count changes a training's bits")
    rp.add_argument("--no-feature-cache", action="store_true",
                    help="run the frozen backbone on every batch instead of keeping each training image's "
                    "features after their first pass (the cache gives the same bits; this is for timing "
                    "and checking it)")
    rp.add_argument("--dry-run", action="store_true",
                    help="check the configs and dataset, print the trainings, run nothing")
    rp.add_argument("--no-reports", action="store_true",
                    help="stop after the trainings, dumps and summary.json; `retconf report RUN --out DIR` "
                    "writes the pages later (e.g. on another machine)")
    rp.add_argument("--executor", choices=["local", "slurm"], default="local",
                    help="where the trainings and dumps run: on this machine (default) or as a Slurm job "
                    "array submitted from it with submitit (docs/cluster.md); data, pretraining and reports "
                    "run here either way")
    sl = rp.add_argument_group("Slurm (--executor slurm; the command line wins over --slurm-config)")
    sl.add_argument("--slurm-config", metavar="FILE", help="a TOML file whose [slurm] table sets the options below "
                    "by their names without --slurm- (time_min, sbatch = [\"qos=high\"], ...)")
    sl.add_argument("--slurm-partition", metavar="NAME", help="partition (default: the cluster's)")
    sl.add_argument("--slurm-account", metavar="NAME", help="account to charge (default: yours)")
    sl.add_argument("--slurm-gpus", type=int, metavar="N", help="GPUs per training (default 0)")
    sl.add_argument("--slurm-cpus", type=int, metavar="N", help="CPUs per training, also its torch threads (default 1)")
    sl.add_argument("--slurm-time-min", type=int, metavar="MIN", help="time limit per training in minutes "
                    "(default 1440); a training that reaches it is requeued and resumes from its last checkpoint")
    sl.add_argument("--slurm-mem-gb", type=float, metavar="GB", help="memory per training (default: the partition's)")
    sl.add_argument("--slurm-sbatch", nargs="+", metavar="NAME=VALUE", help="more sbatch options, e.g. qos=high "
                    "constraint=a100")
    du = sub.add_parser("dump", help="dump pre-NMS candidates and post-NMS detections to Parquet",
                        description="Run a checkpoint on its test set and write pre-NMS candidates, "
                        "post-NMS detections and ground-truth matches as Parquet shards plus "
                        "metadata.json (see retconf/dump.py for the schema and candidate rule). "
                        "Works for retconf's detectors and any mmdet 3 dense head whose post-processing "
                        "retconf/capture.py reads (RetinaNet, FCOS, ATSS, GFL, VFNet, TOOD, DDOD and "
                        "other BaseDenseHead heads, PAA, YOLOX); CONFIG may be one of mmdet's, e.g. "
                        "mmdet::atss/atss_r50_fpn_1x_coco.py. Re-scoring the dump with the head's own "
                        "rule reproduces live inference (PAA: boxes moved by score voting to float32 "
                        "rounding), and with any rule of the dump's grid (Table 4's modes, the alpha "
                        "grid) sees exactly the candidates live inference would; other alpha or a lower "
                        "score_thr are approximations (table per head in retconf/capture.py). "
                        "Rerunning resumes after the last complete shard.")
    _add_common(du)
    du.add_argument("checkpoint", help="checkpoint file")
    du.add_argument("--out", required=True, help="dump directory")
    du.add_argument("--shard-size", type=int, default=64, help="images per shard (default %(default)s)")

    rep = sub.add_parser("report", help="run the notebooks on a run, dumps or COCO results files and write HTML reports",
                         description="Execute notebooks/NN_*.ipynb with papermill and write OUT/NN_*.html plus "
                         "OUT/index.html, on one of: a run directory of `retconf reproduce` (summary.json, "
                         "seed_*/dumps/); one or more dump directories of `retconf dump` (several detectors, several "
                         "seeds of one): the pages that apply (01, 02 and 03 where a detector has a separate quality "
                         "score, 04 for the paper's detectors by name, 05, 06 for several kinds of head, 07); one or "
                         "more COCO results json files with --ann-file: page 08 (AP, AP against the IoU threshold, "
                         "calibration, LRP, TIDE). Every input is checked before anything is written; the index "
                         "says which pages were left out and why. A failing notebook stops the run; its executed "
                         "copy is kept.")
    rep.add_argument("inputs", nargs="+", metavar="INPUT",
                     help="a run directory; or dump directories / COCO results files, each as PATH, NAME=PATH or "
                          "NAME@SEED=PATH (default name: a dump's config, e.g. atss for atss_r50_fpn_1x_coco.py, "
                          "or the results file's name; default seed: the dump's, else 0). Detectors are paired by seed.")
    rep.add_argument("--ann-file", metavar="FILE", default=None,
                     help="the annotation file: required for COCO results files; for dumps, where the file they "
                          "were matched against is now (checked against the SHA-256 each dump recorded)")
    rep.add_argument("--jobs", type=int, default=None, metavar="N",
                     help="notebooks run at once, each in its own process (default: one per CPU core, fewer "
                          "where their estimated memory, which grows with the largest dump, would not fit in "
                          "80 %% of what the machine has available)")
    rep.add_argument("--memory-gb", type=float, default=None, metavar="GB",
                     help="the memory the pages running at once may take together, by their estimates (default: "
                          "80 %% of what is available; a page larger than that runs alone)")
    rep.add_argument("--out", default="reports", help="output directory (default %(default)s); for dumps or results "
                     "files it also gets summary.json, the list of inputs the pages read")
    rep.add_argument("--only", nargs="+", metavar="NN", help="only these pages, e.g. 01 02; 'explore' names the "
                     "explorer page")
    rep.add_argument("--show-code", action="store_true", help="keep the code cells in the HTML")
    rep.add_argument("--no-explore", action="store_true",
                     help="skip the explorer page explore.html (α / NMS sliders, candidate browser; for a "
                          "run or dumps, not results files; about half a minute of CPU on the tiny run)")
    rep.add_argument("--notebooks", metavar="DIR", default=None,
                     help="the numbered notebooks (default: $RETCONF_NOTEBOOKS, else the source tree's "
                          "notebooks/; a non-editable install needs one of the two)")

    jb = sub.add_parser("jobs", help="show where a run's Slurm jobs are (retconf reproduce --executor slurm)",
                        description="List each training of a run submitted with --executor slurm: its Slurm job "
                        "id, its state (DONE once its result is written, else squeue's) and, for a failed one, "
                        "its log and last line. Exits 1 when a job failed.")
    jb.add_argument("run", help="run directory")

    ab = sub.add_parser("ablations", help="print the ablation grids as --cfg-options",
                        description="Print the paper's ablation grids (Tables 2-4) and the "
                        "original-code pitfall switches as --cfg-options for a RetinaNet-Conf config.")
    ab.add_argument("--grid", choices=["table2", "table3", "table4", "pitfalls"],
                    help="only this grid")
    return parser


# --------------------------------------------------------------------------- commands
def cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "check":
        from .data.coco_check import validate_coco

        start = time.perf_counter()
        counts = validate_coco(args.ann_file, args.images, decode=not args.header_only)
        seconds = time.perf_counter() - start
        checked = ""
        if args.images:
            mode = "headers" if args.header_only else "decoded"
            checked = f"; images {mode} in {seconds:.1f} s, {1000 * seconds / counts['images']:.2f} ms per image"
        print(f"{args.ann_file}: ok ({counts['images']} images, {counts['annotations']} "
              f"annotations, {counts['categories']} categories{checked})")
        if counts["thin_boxes"]:
            print(f"note: {len(counts['thin_boxes'])} boxes are narrower or lower than 1 px (first: "
                  f"{counts['thin_boxes'][0]}); mmdet leaves them out of training, COCO evaluation "
                  "counts them")
        return 0
    from dataclasses import replace

    from .data.digits import DigitsConfig, coco_shaped, generate
    from .progress import progress as progress_bar

    base = coco_shaped() if args.coco else DigitsConfig()
    given = {k: getattr(args, k) for k in ("image_size", "min_size", "max_size", "max_objects")
             if getattr(args, k) is not None}
    cfg = replace(base, num_train=args.num_train, num_val=args.num_val, seed=args.seed, **given)
    start = time.time()
    out = generate(cfg, args.out, overwrite=args.overwrite,
                   progress=lambda it, n, desc: progress_bar(it, total=n, desc=f"digits {desc}", unit="img"))
    print(f"dataset ready at {out} ({cfg.num_train} train + {cfg.num_val} val images, "
          f"{time.time() - start:.1f} s)")
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .pretrain import PretrainConfig, pretrain_backbone
    from .runtime import load_config

    cfg = load_config(args.config)
    out = args.out or ((cfg.model.backbone.get("init_cfg") or {}).get("checkpoint"))
    if not out:
        raise UsageError(f"{args.config}: model.backbone.init_cfg.checkpoint is not set; pass --out")
    pcfg = PretrainConfig() if args.iters is None else replace(PretrainConfig(), iters=args.iters)
    meta = pretrain_backbone(cfg, out, pcfg, force=args.force)
    state = "cached" if meta["cached"] else "trained"
    print(f"backbone {state}: {out} (val crop accuracy {meta['accuracy']:.3f}, "
          f"{meta['train_seconds']} s training)")
    return 0


def _ap_text(metrics: dict) -> str:
    ap = metrics.get("coco/bbox_mAP")
    if ap is None:
        return "no detections above the score threshold (AP 0)"
    return f"bbox AP@[.5:.95] = {ap:.3f}, AP50 = {metrics.get('coco/bbox_mAP_50', float('nan')):.3f}"


def cmd_train(args: argparse.Namespace) -> int:
    from .apis import train

    record = train(args.config, args.work_dir, args.cfg_options, args.data_root, args.resume,
                   args.launcher, args.amp, args.allow_partial_checkpoint, args.feature_cache)
    if record:
        print(f"final val: {_ap_text(record['metrics'])} (epoch {record['epoch']}, iter {record['iter']})")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from .apis import evaluate

    metrics = evaluate(args.config, args.checkpoint, args.work_dir, args.cfg_options,
                       args.data_root, args.launcher, args.allow_partial_checkpoint)
    print(f"test: {_ap_text(metrics)} ({args.checkpoint})")
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from .pipeline import reproduce

    slurm = _slurm_options(args)
    reproduce(args.preset, out=args.out, data_root=args.data_root, reports=args.reports,
              seeds=args.seeds, full=args.full, cfg_options=args.cfg_options, dry_run=args.dry_run,
              parallel=args.jobs, detectors=args.detectors, slurm=slurm, reports_stage=not args.no_reports,
              feature_cache=not args.no_feature_cache)
    return 0


_SLURM_ARGS = ("partition", "account", "gpus", "cpus", "time_min", "mem_gb", "sbatch")


def _slurm_options(args: argparse.Namespace) -> Any | None:
    """The Slurm options of ``--executor slurm`` (None for the local executor).

    Raises:
        UsageError: a --slurm-* option without --executor slurm, a bad value, or Slurm's
            commands missing."""
    given = {k: getattr(args, f"slurm_{k}") for k in _SLURM_ARGS if getattr(args, f"slurm_{k}") is not None}
    if args.executor != "slurm":
        if given or args.slurm_config:
            first = next(iter(given), "config")
            raise UsageError(f"--slurm-{first.replace('_', '-')}: needs --executor slurm")
        return None
    import shutil

    from .slurm import SlurmOptions

    if args.jobs is not None:
        raise UsageError("--jobs: trainings on this machine only; with --executor slurm, Slurm decides what runs at once")
    for tool in ("sbatch", "squeue"):
        if shutil.which(tool) is None:
            raise UsageError(f"--executor slurm: {tool} is not on PATH (run from a machine that submits to Slurm)")
    base = SlurmOptions.load(args.slurm_config) if args.slurm_config else SlurmOptions()
    if "sbatch" in given:
        given["sbatch"] = tuple(given["sbatch"])
    return base.with_overrides(**given)


def cmd_jobs(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .slurm import print_jobs

    return 1 if print_jobs(Path(args.run)) else 0


def cmd_dump(args: argparse.Namespace) -> int:
    from .dump import dump_predictions

    meta = dump_predictions(args.config, args.checkpoint, args.out, args.data_root, args.cfg_options,
                            args.shard_size, allow_partial_checkpoint=args.allow_partial_checkpoint)
    print(f"dump written to {args.out} ({meta['num_images']} images, {meta['seconds']} s)")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .inputset import check_report_destination, input_kind, parse_input

    if args.jobs is not None and args.jobs < 1:
        raise UsageError(f"--jobs: must be at least 1, got {args.jobs}")
    if args.memory_gb is not None and not args.memory_gb > 0:
        raise UsageError(f"--memory-gb: must be a positive number of GB, got {args.memory_gb}")
    check_report_destination([parse_input(i).path for i in args.inputs], Path(args.out))
    if args.only:
        from .report import check_page_names

        check_page_names(args.only, args.notebooks)
    start = time.perf_counter()
    first = parse_input(args.inputs[0])
    if len(args.inputs) == 1 and first.model is None and input_kind(first.path) == "run":
        if args.ann_file:
            raise UsageError("--ann-file: a run's dumps name their annotation file; it is for dumps or results files")
        from .report import make_reports

        made = make_reports(args.inputs[0], args.out, args.only, args.show_code, jobs=args.jobs,
                            notebooks_from=args.notebooks, explore=not args.no_explore, memory_gb=args.memory_gb)
    else:
        from .inputset import make_input_reports

        command = "retconf report " + " ".join(args.inputs) + (f" --ann-file {args.ann_file}" if args.ann_file else "") \
            + f" --out {args.out}"
        made = make_input_reports(args.inputs, Path(args.out), args.ann_file, args.only, args.show_code, args.jobs,
                                  args.notebooks, command, explore=not args.no_explore, memory_gb=args.memory_gb)
    kept = sum(r.reused for r in made)
    print(f"{len(made) - kept} reports written, {kept} up to date and kept, in {args.out} "
          f"(open {args.out}/index.html; {time.perf_counter() - start:.0f} s)")
    return 0


def cmd_ablations(args: argparse.Namespace) -> int:
    from .ablations import GRIDS, INFERENCE_ONLY, as_cli

    for grid, rows in GRIDS.items():
        if args.grid and grid != args.grid:
            continue
        print(f"# {grid}" + (" (inference only: retconf test CONFIG CKPT)" if grid in INFERENCE_ONLY else ""))
        for name, options in rows.items():
            tag = "  # inference only" if name in INFERENCE_ONLY else ""
            print(f"{name:<20} --cfg-options {as_cli(options)}{tag}")
    return 0


COMMANDS = {"data": cmd_data, "pretrain": cmd_pretrain, "train": cmd_train, "test": cmd_test,
            "reproduce": cmd_reproduce,
            "ablations": cmd_ablations, "dump": cmd_dump, "report": cmd_report, "jobs": cmd_jobs}


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; library errors (:mod:`retconf.errors`) become one line on stderr and
    their exit status (:func:`retconf.errors.exit_code`)."""
    args = build_parser().parse_args(argv)
    try:
        code = COMMANDS[args.command](args)
        _close_process_group(barrier=True)
        return code
    except RetconfError as e:
        print(f"retconf {args.command}: error: {e}", file=sys.stderr)
        return exit_code(e)
    except KeyboardInterrupt:
        print(f"retconf {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        _close_process_group(barrier=False)


def _close_process_group(barrier: bool) -> None:
    """Leave a distributed run cleanly: ranks that exit while gloo threads are still live can
    abort ("terminate called without an active exception").

    ``destroy_process_group`` only forgets the group: the DDP-wrapped model keeps the gloo
    backend (its tcp loop and worker threads) alive, and the model sits in reference cycles of
    the finished Runner, which only the cyclic garbage collector frees. Left to interpreter
    shutdown, the backend is torn down (or not) while Python itself is going away, and the
    outcome depends on thread timing. Collecting here joins those threads while everything is
    still alive.
    """
    if "torch.distributed" not in sys.modules:
        return
    import gc

    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()
        gc.collect()


if __name__ == "__main__":
    sys.exit(main())
