"""``retconf reproduce``: data -> shared backbone pretraining -> detectors -> dumps -> reports.

Each stage is cached or resumable: the dataset and the pretrained backbone are reused when
their manifests match, a detector whose final metrics exist is skipped, an interrupted
detector resumes from its last checkpoint, and a dump whose metadata records the same
checkpoint hash is reused (an interrupted one resumes by shard). Skipped stages keep the
seconds recorded when they last ran, so ``summary.json`` always holds real stage times.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

from .io import atomic_write_text
from .presets import PRESETS, Preset


def _stage(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def _finished(work_dir: Path, max_epochs: int) -> Optional[dict]:
    path = work_dir / "metrics.json"
    if path.is_file():
        record = json.loads(path.read_text())
        if record.get("epoch") == max_epochs:
            return record
    return None


def _dump_current(dump_dir: Path, checkpoint: Path) -> bool:
    """Whether ``dump_dir`` holds a complete dump of exactly ``checkpoint``."""
    from .dump import _sha256

    meta = dump_dir / "metadata.json"
    if not meta.is_file() or not checkpoint.is_file():
        return False
    return json.loads(meta.read_text()).get("checkpoint_sha256") == _sha256(checkpoint)


def _reports_current(reports: Path, dumps: list[Path]) -> bool:
    """Whether ``reports/index.html`` is newer than every dump and notebook it was made from."""
    from .report import notebooks

    index = reports / "index.html"
    if not index.is_file():
        return False
    inputs = [d / "metadata.json" for d in dumps] + notebooks()
    return all(p.is_file() and p.stat().st_mtime < index.stat().st_mtime for p in inputs)


def reproduce(preset_name: str = "tiny", out: Optional[str] = None,
              data_root: Optional[str] = None, reports: Optional[str] = None) -> dict:
    """Run the preset's pipeline; return and write ``out/summary.json``; reports go to
    ``reports`` (default ``reports/<preset>``)."""
    from tqdm import tqdm

    from .apis import train
    from .data.digits import generate
    from .dump import dump_predictions
    from .pretrain import pretrain_backbone
    from .report import make_reports
    from .runtime import load_config

    preset: Preset = PRESETS[preset_name]
    run_dir = Path(out or f"runs/{preset.name}")
    data_dir = Path(data_root or f"data/digits-{preset.name}")
    timings: dict[str, float] = {}

    previous = {}
    if (run_dir / "summary.json").is_file():
        previous = json.loads((run_dir / "summary.json").read_text()).get("seconds", {})
    cached: list[str] = []

    _stage(f"[1/5] dataset -> {data_dir}")
    t = time.time()
    # A directory holding another retconf dataset (a manifest from other settings or an older
    # version) is regenerated; anything else is refused by generate().
    manifest = data_dir / "manifest.json"
    before = manifest.stat().st_mtime_ns if manifest.is_file() else None
    generate(preset.data, data_dir, overwrite=manifest.is_file(),
             progress=lambda it, n, desc: tqdm(it, total=n, desc=f"digits {desc}", unit="img"))
    timings["data"] = time.time() - t
    if before is not None and manifest.stat().st_mtime_ns == before:
        cached.append("data")

    _stage(f"[2/5] shared backbone pretraining -> {run_dir / 'pretrain'}")
    t = time.time()
    first_cfg = load_config(next(iter(preset.detectors.values())), preset.cfg_options)
    backbone = run_dir / "pretrain" / "backbone.pth"
    meta = pretrain_backbone(first_cfg, backbone, preset.pretrain)
    print(f"backbone {'cached' if meta['cached'] else 'trained'}: crop accuracy {meta['accuracy']:.3f}")
    timings["pretrain"] = time.time() - t
    if meta["cached"]:
        cached.append("pretrain")

    results = {}
    options = {**preset.cfg_options, "model.backbone.init_cfg.checkpoint": str(backbone)}
    max_epochs = {name: load_config(config, options).train_cfg.max_epochs
                  for name, config in preset.detectors.items()}
    for i, (name, config) in enumerate(preset.detectors.items(), 1):
        _stage(f"[3/5] detector {i}/{len(preset.detectors)}: {name} ({config})")
        t = time.time()
        work_dir = run_dir / name
        record = _finished(work_dir, max_epochs[name])
        if record is None:
            record = train(config, str(work_dir), options, str(data_dir), resume="auto")
        else:
            print(f"{name}: finished earlier, reusing {work_dir / 'metrics.json'}")
            cached.append(f"train_{name}")
        timings[f"train_{name}"] = time.time() - t
        results[name] = record["metrics"]

    for i, (name, config) in enumerate(preset.detectors.items(), 1):
        _stage(f"[4/5] dump {i}/{len(preset.detectors)}: {name} -> {run_dir / 'dumps' / name}")
        t = time.time()
        checkpoint = run_dir / name / f"epoch_{max_epochs[name]}.pth"
        if _dump_current(run_dir / "dumps" / name, checkpoint):
            print(f"{name}: dump of this checkpoint exists, reusing it")
            cached.append(f"dump_{name}")
        else:
            dump_predictions(config, str(checkpoint), run_dir / "dumps" / name, str(data_dir), options)
        timings[f"dump_{name}"] = time.time() - t

    def write_summary() -> dict:
        seconds = {k: round(previous[k] if k in cached and k in previous else v, 1) for k, v in timings.items()}
        summary = {"preset": preset.name, "data_root": str(data_dir), "run_dir": str(run_dir),
                   "reports": str(reports_dir), "seconds": seconds, "cached_this_run": cached,
                   "metrics": results}
        atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1, sort_keys=True))
        return summary

    reports_dir = Path(reports or f"reports/{preset.name}")
    write_summary()  # the notebooks read it
    _stage(f"[5/5] reports -> {reports_dir}")
    t = time.time()
    dump_dirs = [run_dir / "dumps" / name for name in preset.detectors]
    if _reports_current(reports_dir, dump_dirs):
        print("reports are newer than their dumps and notebooks, reusing them")
        cached.append("reports")
    else:
        make_reports(run_dir, reports_dir)
    timings["reports"] = time.time() - t
    summary = write_summary()
    _stage("summary")
    print(f"{'detector':<16} {'AP':>6} {'AP50':>6} {'AP75':>6}")
    for name, m in results.items():
        ap, ap50, ap75 = (m.get(f"coco/bbox_mAP{s}", float("nan")) for s in ("", "_50", "_75"))
        print(f"{name:<16} {ap:6.3f} {ap50:6.3f} {ap75:6.3f}")
    print(f"stage seconds: {summary['seconds']}" + (f" (cached now: {', '.join(cached)})" if cached else ""))
    print(f"dumps: {run_dir / 'dumps'}\nsummary: {run_dir / 'summary.json'}\n"
          f"reports: {reports_dir / 'index.html'}")
    return summary
