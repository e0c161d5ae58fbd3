"""The layout of a ``retconf reproduce`` run directory and the schema of its ``summary.json``:
the one definition that :mod:`retconf.pipeline` writes and :mod:`analysis.measures.seeds`,
:mod:`retconf.report` and the notebooks read (as :mod:`analysis.inputs.schema` is for dumps).

Layout::

    RUN/pretrain/backbone.pth            shared by every seed (like ImageNet weights on COCO)
    RUN/seed_<s>/<model>/                work dir: checkpoints, metrics.json, inputs.json
    RUN/seed_<s>/dumps/<model>/          Parquet dump of the final checkpoint
    RUN/logs/<seed>-<model>.log          console output of each job run in parallel
    RUN/summary.json                     :data:`SUMMARY_FIELDS`

An **input set** (``retconf report DUMP...`` or ``retconf report RESULTS.json...``) is a
directory with only a ``summary.json`` whose ``inputs`` field lists the dumps or COCO results
files it analyses, each as (detector, seed, path): nothing was trained, and
:func:`input_entry` says where each (seed, detector) is read from instead of
``RUN/seed_<s>/dumps/<model>/``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from .io import DumpError, read_json
from .paths import run_path

SUMMARY_FILE = "summary.json"
# summary.json: field -> (accepted types, meaning). ``seeds`` and ``metrics`` are required.
SUMMARY_FIELDS: dict[str, tuple[tuple[type, ...], str]] = {
    "preset": ((str,), "preset name (retconf.presets)"),
    "data_root": ((str,), "dataset directory"),
    "run_dir": ((str,), "this run directory"),
    "reports": ((str,), "where the reports go"),
    "seeds": ((list,), "training seeds, 0 .. N-1"),
    "detectors": ((list,), "the preset's detectors, in table order"),
    "ablations": ((list,), "RetinaNet-Conf ablation trainings (--full), in plan order"),
    "metrics": ((dict,), "str(seed) -> model -> last validation metrics (coco/bbox_mAP ...)"),
    "seconds": ((dict,), "stage -> seconds (as recorded when the stage last ran)"),
    "cached_this_run": ((list,), "stages reused by this invocation"),
    "jobs": ((int,), "trainings run at once"),
    "threads_per_job": ((int,), "threads of each training"),
    "executor": ((dict,), "where the trainings ran: {'kind': 'local'} or {'kind': 'slurm', 'options': {sbatch "
                          "settings}, 'job_ids': {task: Slurm job id}} (retconf.slurm)"),
    "train_and_dump_wall_seconds": ((int, float), "wall time of the training and dump stage"),
    "wall_seconds": ((int, float), "wall time of the whole run"),
    "machine": ((dict,), "the CPU, oneDNN's bfloat16 instruction set, accelerator and versions "
                         "(retconf.machine.machine_record): a training's numbers depend on them"),
    "inputs": ((dict,), "an input set, not a run: {'kind': 'dumps' or 'results', 'files': [{'model', 'seed', "
                        "'path', 'ann_file'}], 'command'} (retconf report on dumps or COCO results files)"),
}
INPUT_KINDS: tuple[str, ...] = ("dumps", "results")
REQUIRED_SUMMARY_FIELDS: tuple[str, ...] = ("seeds", "metrics")
# the dumps whose metadata.json fingerprints a run's reports (retconf.report.run_digest)
DUMP_METADATA_GLOB = "**/dumps/*/metadata.json"


class RunError(DumpError):
    """A run directory or ``summary.json`` that does not follow this layout (names file and field)."""


def seed_dir(run_dir: str | Path, seed: int) -> Path:
    """``RUN/seed_<seed>``: the trainings and dumps of one seed."""
    return Path(run_dir) / f"seed_{seed}"


def work_dir(run_dir: str | Path, seed: int, model: str) -> Path:
    """``RUN/seed_<seed>/<model>``: checkpoints, ``metrics.json``, ``inputs.json``."""
    return Path(run_dir) / job_key(seed, model)


def dump_dir(run_dir: str | Path, seed: int, model: str) -> Path:
    """``RUN/seed_<seed>/dumps/<model>``: the dump of the final checkpoint."""
    return seed_dir(run_dir, seed) / "dumps" / model


def job_key(seed: int, model: str) -> str:
    """``seed_<seed>/<model>``: a training's work dir relative to ``RUN``, also its key in the
    summary's ``seconds`` (``<key>/train``, ``<key>/dump``)."""
    return f"seed_{seed}/{model}"


def backbone_path(run_dir: str | Path) -> Path:
    """``RUN/pretrain/backbone.pth``: the shared pretrained backbone."""
    return Path(run_dir) / "pretrain" / "backbone.pth"


def log_dir(run_dir: str | Path) -> Path:
    """``RUN/logs``: one console log per job run in parallel."""
    return Path(run_dir) / "logs"


def summary_path(run_dir: str | Path) -> Path:
    """``RUN/summary.json``."""
    return Path(run_dir) / SUMMARY_FILE


def dump_metadata_files(run_dir: str | Path) -> list[Path]:
    """Every dump's ``metadata.json`` under ``run_dir``, sorted (of an input set: its dumps')."""
    summary = summary_path(run_dir)
    if summary.is_file():
        try:
            files = (read_json(summary, (), "").get("inputs") or {}).get("files")
        except DumpError:
            files = None
        if files:
            return [Path(f["path"]) / "metadata.json" for f in files if Path(f["path"]).is_dir()]
    return sorted(Path(run_dir).glob(DUMP_METADATA_GLOB))


def check_summary(summary: dict, where: str | Path) -> dict:
    """``summary`` if it follows :data:`SUMMARY_FIELDS` (unknown fields are let through).

    Raises:
        RunError: naming ``where`` and the first missing or mistyped field, or a seed
            without metrics.
    """
    for field in REQUIRED_SUMMARY_FIELDS:
        if field not in summary:
            raise RunError(f"{where}: missing field {field!r}")
    for field, value in summary.items():
        types = SUMMARY_FIELDS.get(field, ((object,), ""))[0]
        if not isinstance(value, types) or isinstance(value, bool):
            raise RunError(f"{where}: field {field!r} must be {' or '.join(t.__name__ for t in types)}, "
                           f"got {type(value).__name__}")
    for seed in summary["seeds"]:
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise RunError(f"{where}: field 'seeds' holds {seed!r}, not an integer seed")
        if not isinstance(summary["metrics"].get(str(seed)), dict):
            raise RunError(f"{where}: field 'metrics' has no models for seed {seed} (key {str(seed)!r})")
    return summary


def check_inputs(summary: dict, where: str | Path) -> None:
    """Raise :class:`RunError` naming ``where`` unless the ``inputs`` field (when present) has a
    known ``kind`` and one file entry per (seed, detector) of the summary."""
    inputs = summary.get("inputs")
    if inputs is None:
        return
    if inputs.get("kind") not in INPUT_KINDS:
        raise RunError(f"{where}: field 'inputs.kind' must be one of {list(INPUT_KINDS)}, got {inputs.get('kind')!r}")
    files = inputs.get("files")
    if not isinstance(files, list) or not all(isinstance(f, dict) and {"model", "seed", "path"} <= set(f)
                                              for f in files):
        raise RunError(f"{where}: field 'inputs.files' must be a list of {{'model', 'seed', 'path'}} records")
    have = {(f["seed"], f["model"]) for f in files}
    for seed in summary["seeds"]:
        for model in summary_detectors(summary):
            if (seed, model) not in have:
                raise RunError(f"{where}: field 'inputs.files' has no entry for detector {model!r}, seed {seed}")


def input_kind(summary: dict) -> str | None:
    """``'dumps'`` or ``'results'`` for an input set, None for a ``retconf reproduce`` run."""
    return (summary.get("inputs") or {}).get("kind")


def input_entry(summary: dict, seed: int, model: str) -> dict:
    """The ``inputs.files`` record of (``seed``, ``model``) of an input set: ``path`` (a dump
    directory or a results file) and ``ann_file`` (None: the dump's own).

    Raises:
        RunError: when the set has no such entry.
    """
    for f in (summary.get("inputs") or {}).get("files", []):
        if f["seed"] == seed and f["model"] == model:
            return f
    raise RunError(f"{SUMMARY_FILE}: field 'inputs.files' has no entry for detector {model!r}, seed {seed}")


def make_summary(**fields: Any) -> dict:
    """A ``summary.json`` record of exactly the :data:`SUMMARY_FIELDS` given (a writer's typo
    fails here, not in a notebook).

    Raises:
        RunError: naming an unknown or mistyped field.
    """
    unknown = sorted(set(fields) - set(SUMMARY_FIELDS))
    if unknown:
        raise RunError(f"{SUMMARY_FILE}: unknown field(s) {unknown} (known: {sorted(SUMMARY_FIELDS)})")
    return check_summary(fields, SUMMARY_FILE)


def load_summary(run_dir: str | Path) -> dict:
    """``RUN/summary.json`` of a ``retconf reproduce`` run, checked by :func:`check_summary`.

    Raises:
        RunError: naming the file and what is wrong (missing, not JSON, a field).
    """
    path = summary_path(run_path(run_dir))
    try:
        record = read_json(path, (), "run `retconf reproduce` first")
    except RunError:
        raise
    except DumpError as e:
        raise RunError(str(e)) from e
    check_summary(record, path)
    check_inputs(record, path)
    return record


def summary_detectors(summary: dict) -> list[str]:
    """The run's detectors in table order (``detectors``; a summary without it: every model of
    ``metrics`` in first-appearance order)."""
    if "detectors" in summary:
        return list(summary["detectors"])
    return list(dict.fromkeys(m for seed in summary["seeds"] for m in summary["metrics"][str(seed)]))


def summary_ablations(summary: dict) -> list[str]:
    """The run's ablation trainings (``retconf reproduce --full``; none otherwise)."""
    return list(summary.get("ablations", []))


# The paper's three detectors: the pages that compare with the paper (04, 05) show these; the
# other families of a run (``retconf reproduce --detectors``) are compared on ``06_families``.
PAPER_DETECTORS: tuple[str, ...] = ("retinanet", "iou_aware", "retinanet_conf")


def paper_detectors(summary: dict) -> list[str]:
    """The run's detectors that the paper has (:data:`PAPER_DETECTORS`), in table order."""
    return [m for m in summary_detectors(summary) if m in PAPER_DETECTORS]


def has_families(summary: dict) -> bool:
    """Whether the run trained detectors beyond the paper's three."""
    return any(m not in PAPER_DETECTORS for m in summary_detectors(summary))


def training_seconds(summary: dict) -> pd.DataFrame:
    """Seconds of each training and its dump from ``seconds`` (keys ``seed_<s>/<model>/train``
    and ``.../dump``): one row per (seed, model) with ``train s`` and ``dump s``. NaN: not
    recorded, or reused by this run (``cached_this_run``) without the time of the run that made
    it (the pipeline then records the seconds of the check, under one)."""
    rows: dict[tuple[int, str], dict] = {}
    reused = set(summary.get("cached_this_run", []))
    for key, value in summary.get("seconds", {}).items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0].startswith("seed_") and parts[2] in ("train", "dump"):
            row = rows.setdefault((int(parts[0].removeprefix("seed_")), parts[1]), {})
            untimed = key in reused and float(value) < 1.0
            row[f"{parts[2]} s"] = float("nan") if untimed else float(value)
    order = {m: i for i, m in enumerate(summary_detectors(summary))}
    frame = pd.DataFrame([{"seed": s, "model": m, **v} for (s, m), v in rows.items()],
                         columns=["seed", "model", "train s", "dump s"])
    return frame.sort_values(["seed", "model"], key=lambda c: c.map(order) if c.name == "model" else c,
                             kind="stable").reset_index(drop=True)
