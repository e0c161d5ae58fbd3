"""``retconf reproduce``: data -> shared backbone pretraining -> per seed: train + dump each
detector -> reports.

The layout of a run directory (``RUN/seed_<s>/<model>/``, ``RUN/seed_<s>/dumps/<model>/``,
``RUN/pretrain/``, ``RUN/logs/``) and the fields of ``RUN/summary.json`` are defined once, in
:mod:`analysis.inputs.runs`.

Every detector of a seed trains with ``randomness.seed = s``, so the detectors of one seed differ
only by their head; ``--seeds N`` repeats the whole comparison for s = 0 .. N-1 and the reports
show mean and spread over the seeds. ``--full`` adds the RetinaNet-Conf ablation trainings
(:data:`retconf.ablations.TRAINED_VARIANTS`) to every seed.

Trainings (each with its dump) run side by side in single-threaded processes where there is
no CUDA device (:mod:`retconf.jobs`, ``--jobs``). Each stage is cached or resumable: the dataset and the pretrained backbone are reused when
their manifests match; a detector whose final metrics exist *and* whose ``inputs.json``
records the same inputs (resolved config, backbone and data fingerprints) is skipped; a work
dir trained from other inputs is moved aside to ``<dir>.stale-<time>`` and retrained; an
interrupted detector resumes from its last checkpoint; a dump recording the same checkpoint
hash is reused (an interrupted one resumes by shard); reports are redone only for notebooks
whose inputs changed. Skipped stages keep the seconds recorded when they last ran, so
``summary.json`` always holds real stage times.
"""
from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from analysis.inputs import runs
from analysis.inputs.schema import SCHEMA_VERSION

from .errors import UsageError
from .io import atomic_write_text, sha256_file
from .presets import PRESETS, Preset

if TYPE_CHECKING:
    from .slurm import SlurmOptions


@dataclass(frozen=True)
class Job:
    """One detector training of one seed, and its dump."""

    seed: int
    name: str
    config: str
    options: dict
    work_dir: Path
    dump_dir: Path

    @property
    def key(self) -> str:
        return runs.job_key(self.seed, self.name)


def _stage(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def plan(preset: Preset, run_dir: Path, seeds: int, full: bool, options: dict) -> list[Job]:
    """The trainings of a run, seed-major (all models of seed 0 first)."""
    from .ablations import TRAINED_VARIANTS

    if seeds < 1:
        raise UsageError(f"--seeds: must be at least 1, got {seeds}")
    models = {name: (config, {}) for name, config in preset.detectors.items()}
    if full:
        if "retinanet_conf" not in preset.detectors:
            raise UsageError(f"--full: preset {preset.name} has no retinanet_conf detector to vary")
        models.update({name: (preset.detectors["retinanet_conf"], extra)
                       for name, extra in TRAINED_VARIANTS.items()})
    jobs = []
    for seed in range(seeds):
        for name, (config, extra) in models.items():
            jobs.append(Job(seed, name, config, {**options, **extra, "randomness": {"seed": seed}},
                            runs.work_dir(run_dir, seed, name), runs.dump_dir(run_dir, seed, name)))
    return jobs


def _file_digest(path: Path) -> str:
    return sha256_file(path) if path.is_file() else "missing"


def inputs_record(cfg: object, extra: dict, placeholders: dict[str, str] | None = None) -> dict:
    """What a training depends on: the resolved config plus fingerprints of files it reads
    (``extra``: backbone and dataset digests). ``cfg`` is an mmengine Config.

    ``placeholders`` maps path strings whose *content* ``extra`` already fingerprints (the
    backbone file, the dataset directory) to fixed names, so that a moved or copied run or
    dataset with the same content still counts as the same inputs."""
    blob = json.dumps(cfg.to_dict(), sort_keys=True, default=str)  # type: ignore[attr-defined]
    for path, name in sorted((placeholders or {}).items(), key=lambda kv: -len(kv[0])):
        blob = blob.replace(path, name)
    return {"config_sha256": hashlib.sha256(blob.encode()).hexdigest(), **extra}


def _finished(work_dir: Path, max_epochs: int) -> dict | None:
    path = work_dir / "metrics.json"
    if path.is_file():
        record = json.loads(path.read_text())
        if record.get("epoch") == max_epochs:
            return record
    return None


def job_is_done(job: Job, context: JobContext) -> bool:
    """Whether :func:`run_job` would reuse both ``job``'s training (same inputs, final epoch
    reached) and its dump (of the final checkpoint), without changing anything on disk."""
    from .runtime import load_config

    cfg = load_config(job.config, job.options, context.data_dir)
    record = job.work_dir / "inputs.json"
    if not record.is_file() or json.loads(record.read_text()) != inputs_record(cfg, context.digests, context.placeholders):
        return False
    max_epochs = cfg.train_cfg.max_epochs
    return (_finished(job.work_dir, max_epochs) is not None
            and _dump_current(job.dump_dir, job.work_dir / f"epoch_{max_epochs}.pth"))


def _set_aside_if_stale(work_dir: Path, inputs: dict) -> None:
    """Move a work dir trained from other inputs out of the way (never resume across inputs)."""
    record = work_dir / "inputs.json"
    if not work_dir.is_dir() or not any(work_dir.iterdir()):
        return
    if record.is_file() and json.loads(record.read_text()) == inputs:
        return
    why = "its inputs changed" if record.is_file() else "it has no inputs.json"
    stale = work_dir.with_name(f"{work_dir.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}")
    work_dir.rename(stale)
    print(f"{work_dir}: {why}; moved the old run to {stale} and training afresh")


def _dump_current(dump_dir: Path, checkpoint: Path) -> bool:
    """Whether ``dump_dir`` holds a complete dump of exactly ``checkpoint`` written with the
    current dump schema, with per-shard records (anything else is redone)."""
    meta = dump_dir / "metadata.json"
    if not meta.is_file() or not checkpoint.is_file():
        return False
    record = json.loads(meta.read_text())
    return (bool(record.get("complete")) and record.get("schema_version") == SCHEMA_VERSION and "shards" in record
            and record.get("checkpoint_sha256") == sha256_file(checkpoint))


@dataclass(frozen=True)
class JobContext:
    """What every job of a run shares: the dataset, the fingerprints of its inputs and the
    path placeholders of :func:`inputs_record`."""

    data_dir: str
    digests: dict
    placeholders: dict
    feature_cache: bool = True


@dataclass(frozen=True)
class JobResult:
    """A finished job: its last validation record, stage seconds and which stages were reused."""

    job: Job
    record: dict
    seconds: dict
    cached: list


def run_job(job: Job, context: JobContext, runtime_options: dict | None = None) -> JobResult:
    """Train ``job`` (or reuse a finished training of the same inputs) and dump its final
    checkpoint (or reuse a dump of it). ``runtime_options`` are extra ``--cfg-options`` that
    change how the job runs but not what it computes (not part of its recorded inputs)."""
    from .apis import train
    from .dump import dump_predictions
    from .runtime import load_config

    seconds, cached = {}, []
    cfg = load_config(job.config, job.options, context.data_dir)
    inputs = inputs_record(cfg, context.digests, context.placeholders)
    max_epochs = cfg.train_cfg.max_epochs
    options = {**job.options, **(runtime_options or {})}
    t = time.time()
    _set_aside_if_stale(job.work_dir, inputs)
    record = _finished(job.work_dir, max_epochs)
    if record is None:
        job.work_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(job.work_dir / "inputs.json", json.dumps(inputs, indent=1, sort_keys=True))
        record = train(job.config, str(job.work_dir), options, context.data_dir, resume="auto",
                       feature_cache=context.feature_cache)
    else:
        cached.append(f"{job.key}/train")
    seconds[f"{job.key}/train"] = time.time() - t

    t = time.time()
    checkpoint = job.work_dir / f"epoch_{max_epochs}.pth"
    if _dump_current(job.dump_dir, checkpoint):
        cached.append(f"{job.key}/dump")
    else:
        dump_predictions(job.config, str(checkpoint), job.dump_dir, context.data_dir, options)
    seconds[f"{job.key}/dump"] = time.time() - t
    return JobResult(job, record, seconds, cached)


def run_job_in_worker(job: Job, context: JobContext) -> JobResult:
    """:func:`run_job` in a worker of :func:`retconf.jobs.run_parallel`: data loaded in the
    job's own process (no loader workers competing for the cores)."""
    from .jobs import IN_PROCESS_LOADING

    return run_job(job, context, IN_PROCESS_LOADING)


def _say_reused(done: JobResult) -> None:
    """On the console, what a job reused (in parallel mode its own output goes to its log)."""
    job = done.job
    if f"{job.key}/train" in done.cached:
        print(f"{job.key}: finished earlier with the same inputs, reusing {job.work_dir / 'metrics.json'}")
    if f"{job.key}/dump" in done.cached:
        print(f"{job.key}: dump of this checkpoint exists, reusing it")


def _collect(done: JobResult, results: dict, timings: dict, cached: list) -> None:
    results.setdefault(str(done.job.seed), {})[done.job.name] = done.record["metrics"]
    timings.update(done.seconds)
    cached.extend(done.cached)


def run_parallel_jobs(jobs: list[Job], context: JobContext, n_jobs: int, threads: int,
                      log_dir: Path) -> Iterator[JobResult]:
    """Yield each job's result as it finishes, ``n_jobs`` at a time (see :mod:`retconf.jobs`)."""
    from .jobs import run_parallel

    yield from run_parallel(run_job_in_worker, jobs, [j.key for j in jobs], (context,),
                            n_jobs, threads, log_dir)


def _data_digest(preset: Preset, data_dir: Path) -> str:
    """Digits: the manifest's hash. COCO: size and mtime of the annotation files (hashing
    hundreds of MB on every rerun would cost more than it protects)."""
    if preset.data is not None:
        return _file_digest(data_dir / "manifest.json")
    anns = sorted((data_dir / "annotations").glob("*.json"))
    return hashlib.sha256(json.dumps([(p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                      for p in anns]).encode()).hexdigest()


N_STAGES = 4


@dataclass(frozen=True)
class RunPlan:
    """Everything ``reproduce`` decided before running anything: the preset, where things go,
    the shared ``--cfg-options`` and the trainings in plan order."""

    preset: Preset
    run_dir: Path
    data_dir: Path
    reports_dir: Path
    options: dict
    seeds: int
    jobs: list[Job]

    @property
    def backbone(self) -> Path:
        return runs.backbone_path(self.run_dir)


@dataclass
class RunLog:
    """What running a plan records: stage seconds, the stages reused, the metrics per seed and
    model, how the trainings ran, and the seconds of the previous run (kept for reused stages)."""

    t_start: float
    previous: dict
    timings: dict = field(default_factory=dict)
    cached: list = field(default_factory=list)
    results: dict = field(default_factory=dict)
    n_jobs: int = 1
    threads: int = 1
    wall_jobs: float = 0.0
    executor: dict = field(default_factory=lambda: {"kind": "local"})


def reproduce(preset_name: str = "tiny", out: str | None = None,
              data_root: str | None = None, reports: str | None = None, seeds: int = 3,
              full: bool = False, cfg_options: dict | None = None,
              dry_run: bool = False, parallel: int | None = None,
              detectors: list[str] | None = None, slurm: SlurmOptions | None = None,
              reports_stage: bool = True, feature_cache: bool = True) -> dict:
    """Run the preset's pipeline; return and write ``out/summary.json``; reports go to
    ``reports`` (default ``reports/<preset>``). ``dry_run`` checks the inputs and prints the
    plan without training anything. ``parallel``: trainings run at once (None: see
    :func:`resolve_jobs`). ``detectors``: detector names of the preset (also ``paper``,
    ``families``, ``all``; None: the preset's default detectors, the paper's three).
    ``slurm``: run the trainings and dumps as a Slurm job array with these sbatch settings
    (:mod:`retconf.slurm`) instead of on this machine. ``reports_stage`` False stops after the
    dumps and ``summary.json`` (``retconf report RUN`` writes the pages later).
    ``feature_cache``: trainings keep a frozen backbone's features after their first pass
    (:mod:`retconf.engine.feature_cache`; same bits, fewer CPU-seconds).

    Raises:
        UsageError: an unknown preset, ``seeds`` < 1, a COCO preset without ``data_root``.
    """
    t_start = time.time()
    run = plan_run(preset_name, out, data_root, reports, seeds, full, cfg_options, detectors)
    if dry_run:
        return _print_plan(run.preset, run.jobs, run.data_dir, run.run_dir, run.reports_dir)
    log = RunLog(t_start, _previous_seconds(run.run_dir))
    make_dataset(run, log)
    pretrain_shared_backbone(run, log)
    train_and_dump(run, job_context(run, feature_cache), parallel, log, slurm)
    summary = write_summary(run, log)  # the notebooks read it
    if reports_stage:
        make_run_reports(run, log)
        summary = write_summary(run, log)
    else:
        _stage(f"[4/{N_STAGES}] reports: left out (--no-reports); `retconf report {run.run_dir} --out "
               f"{run.reports_dir}` writes them")
    _print_summary(summary, log.cached, run.reports_dir if reports_stage else None)
    return summary


def plan_run(preset_name: str, out: str | None, data_root: str | None, reports: str | None,
             seeds: int, full: bool, cfg_options: dict | None,
             detectors: list[str] | None = None) -> RunPlan:
    """Resolve the preset, its detectors, the directories and the options, and plan the
    trainings."""
    if preset_name not in PRESETS:
        raise UsageError(f"--preset: unknown preset {preset_name!r} (choose from {', '.join(PRESETS)})")
    try:
        preset: Preset = PRESETS[preset_name].choose(detectors)
    except ValueError as e:
        raise UsageError(f"--detectors: {e}") from None
    run_dir = Path(out or f"runs/{preset.name}")
    if preset.data is None and not data_root:
        raise UsageError(f"--data-root: preset {preset.name} needs an existing COCO-format dataset "
                         "(DIR/annotations/instances_{train,val}2017.json, DIR/train2017/, DIR/val2017/)")
    options = {**preset.cfg_options, **(cfg_options or {})}
    if preset.pretrain is not None:
        options["model.backbone.init_cfg.checkpoint"] = str(runs.backbone_path(run_dir))
    return RunPlan(preset, run_dir, Path(data_root or f"data/digits-{preset.name}"),
                   Path(reports or f"reports/{preset.name}"), options, seeds,
                   plan(preset, run_dir, seeds, full, options))


def _previous_seconds(run_dir: Path) -> dict:
    """The stage seconds of the run's last ``summary.json`` (none: empty)."""
    if runs.summary_path(run_dir).is_file():
        return json.loads(runs.summary_path(run_dir).read_text()).get("seconds", {})
    return {}


def make_dataset(run: RunPlan, log: RunLog) -> None:
    """Stage 1: generate the embedded dataset (reused when its manifest matches); a COCO
    dataset is checked before each training instead."""
    from .data.digits import generate
    from .progress import progress

    t = time.time()
    if run.preset.data is not None:
        _stage(f"[1/{N_STAGES}] dataset -> {run.data_dir}")
        # A directory holding another retconf dataset (a manifest from other settings or an
        # older version) is regenerated; anything else is refused by generate().
        manifest = run.data_dir / "manifest.json"
        before = manifest.stat().st_mtime_ns if manifest.is_file() else None
        generate(run.preset.data, run.data_dir, overwrite=manifest.is_file(),
                 progress=lambda it, n, desc: progress(it, total=n, desc=f"digits {desc}", unit="img"))
        if before is not None and manifest.stat().st_mtime_ns == before:
            log.cached.append("data")
    else:
        _stage(f"[1/{N_STAGES}] dataset: {run.data_dir} (checked before each training)")
    log.timings["data"] = time.time() - t


def pretrain_shared_backbone(run: RunPlan, log: RunLog) -> None:
    """Stage 2: pretrain the backbone every seed shares (reused when its inputs match), or
    leave the configs' own init."""
    from .pretrain import pretrain_backbone
    from .runtime import load_config

    t = time.time()
    if run.preset.pretrain is not None:
        _stage(f"[2/{N_STAGES}] shared backbone pretraining -> {run.backbone}")
        first_cfg = load_config(run.jobs[0].config, run.options)
        meta = pretrain_backbone(first_cfg, run.backbone, run.preset.pretrain)
        print(f"backbone {'cached' if meta['cached'] else 'trained'}: crop accuracy {meta['accuracy']:.3f}")
        if meta["cached"]:
            log.cached.append("pretrain")
        log.timings["pretrain"] = time.time() - t
    else:
        _stage(f"[2/{N_STAGES}] backbone: the configs' own init (model.backbone.init_cfg)")


def job_context(run: RunPlan, feature_cache: bool = True) -> JobContext:
    """The dataset, the fingerprints of the dataset and backbone, and their path placeholders
    (:func:`inputs_record`) shared by every job, and whether its trainings use the feature
    cache (not part of their recorded inputs: it does not change their bits)."""
    pretrained = run.preset.pretrain is not None
    digests = {"data": _data_digest(run.preset, run.data_dir),
               "backbone": _file_digest(run.backbone) if pretrained else "config"}
    placeholders = {str(run.data_dir).rstrip("/"): "<data>"}
    if pretrained:
        placeholders[str(run.backbone)] = "<backbone>"
    return JobContext(str(run.data_dir), digests, placeholders, feature_cache)


def train_and_dump(run: RunPlan, context: JobContext, parallel: int | None, log: RunLog,
                   slurm: SlurmOptions | None = None) -> None:
    """Stage 3: every training and its dump, one after the other or ``parallel`` at a time, or
    as a Slurm job array (``slurm``); ``log.results`` ends in plan order (seeds, then
    detectors, then ablations)."""
    from .jobs import resolve_jobs

    jobs = run.jobs
    t_jobs = time.time()
    if slurm is not None:
        from .slurm import read_jobs, run_slurm_jobs

        log.n_jobs, log.threads = len(jobs), slurm.cpus
        _stage(f"[3/{N_STAGES}] {len(jobs)} trainings and dumps as a Slurm job array; Slurm's logs in "
               f"{run.run_dir / 'slurm'} (`retconf jobs {run.run_dir}` shows where they are)")
        fresh = []
        for job in jobs:  # a job whose training and dump are both reusable is not submitted
            if job_is_done(job, context):
                _record(run_job(job, context), log)
            else:
                fresh.append(job)
        for done in run_slurm_jobs(fresh, context, slurm, run.run_dir):
            _record(done, log)
        log.executor = {"kind": "slurm", "options": {k: (list(v) if isinstance(v, tuple) else v)
                                                     for k, v in asdict(slurm).items()},
                        "job_ids": {k: r["job_id"] for k, r in read_jobs(run.run_dir).items()}}
    else:
        log.n_jobs, log.threads = resolve_jobs(parallel, len(jobs))
        if log.n_jobs == 1:
            import torch

            before = torch.get_num_threads()
            torch.set_num_threads(log.threads)  # the same thread count as a parallel job's
            try:
                for i, job in enumerate(jobs, 1):
                    _stage(f"[3/{N_STAGES}] seed {job.seed} ({job.seed + 1}/{run.seeds}), {job.name} "
                           f"({i}/{len(jobs)}): train -> {job.work_dir}, dump -> {job.dump_dir}")
                    _record(run_job(job, context), log)
            finally:
                torch.set_num_threads(before)
        else:
            _stage(f"[3/{N_STAGES}] {len(jobs)} trainings and dumps, {log.n_jobs} at a time with "
                   f"{log.threads} thread{'s' * (log.threads > 1)} each; logs in {runs.log_dir(run.run_dir)}")
            for done in run_parallel_jobs(jobs, context, log.n_jobs, log.threads, runs.log_dir(run.run_dir)):
                _record(done, log)
    log.wall_jobs = time.time() - t_jobs
    # Plan order (parallel jobs finish in any order): seeds, then detectors, then ablations.
    log.results = {str(s): {j.name: log.results[str(s)][j.name] for j in jobs if j.seed == s}
                   for s in range(run.seeds)}


def _record(done: JobResult, log: RunLog) -> None:
    """Say what a finished job reused and add its metrics and seconds to ``log``."""
    _say_reused(done)
    _collect(done, log.results, log.timings, log.cached)


def write_summary(run: RunPlan, log: RunLog) -> dict:
    """Write ``RUN/summary.json`` (:mod:`analysis.inputs.runs`); reused stages keep the seconds they
    took when they last ran; ``machine`` names the machine of this invocation."""
    from .machine import machine_record

    seconds = {k: round(log.previous[k] if k in log.cached and k in log.previous else v, 1)
               for k, v in log.timings.items()}
    summary = runs.make_summary(
        preset=run.preset.name, data_root=str(run.data_dir), run_dir=str(run.run_dir),
        reports=str(run.reports_dir), seeds=list(range(run.seeds)), detectors=list(run.preset.detectors),
        ablations=[j.name for j in run.jobs if j.seed == 0 and j.name not in run.preset.detectors],
        seconds=seconds, cached_this_run=log.cached, metrics=log.results, jobs=log.n_jobs,
        threads_per_job=log.threads, executor=log.executor, train_and_dump_wall_seconds=round(log.wall_jobs, 1),
        wall_seconds=round(time.time() - log.t_start, 1), machine=machine_record())
    atomic_write_text(runs.summary_path(run.run_dir), json.dumps(summary, indent=1, sort_keys=True))
    return summary


def make_run_reports(run: RunPlan, log: RunLog) -> None:
    """Stage 4: the HTML reports (each kept when its inputs are unchanged)."""
    from .report import make_reports

    _stage(f"[4/{N_STAGES}] reports -> {run.reports_dir}")
    t = time.time()
    made = make_reports(run.run_dir, run.reports_dir)
    if made and all(r.reused for r in made):
        print("every report is up to date with its inputs, reusing them")
        log.cached.append("reports")
    log.timings["reports"] = time.time() - t


def _print_plan(preset: Preset, jobs: list[Job], data_dir: Path, run_dir: Path, reports_dir: Path) -> dict:
    """``--dry-run``: check every training's config and inputs, print what would run."""
    from .runtime import finish_cfg, load_config, preflight

    _stage(f"plan for preset {preset.name} (dry run: nothing is trained)")
    print(f"dataset: {data_dir}" + (" (generated)" if preset.data is not None else " (existing)"))
    print("backbone: " + ("shared pretraining -> " + str(runs.backbone_path(run_dir))
                          if preset.pretrain is not None else "the configs' own init_cfg"))
    checked = set()
    for job in jobs:
        state = "finished" if (job.work_dir / "metrics.json").is_file() else "to train"
        print(f"  {job.key:<28} {job.config}  [{state}]")
        if preset.data is None and job.config not in checked:  # generated data does not exist yet
            cfg = load_config(job.config, job.options, str(data_dir))
            finish_cfg(cfg, job.config, None)
            preflight(cfg, ("train", "val"))
            checked.add(job.config)
    print(f"reports: {reports_dir}")
    return {"preset": preset.name, "jobs": [j.key for j in jobs]}


def _print_summary(summary: dict, cached: list[str], reports_dir: Path | None) -> None:
    """AP per model as mean ± sd over seeds (NaN where a metric is missing), then where
    everything is."""
    import numpy as np

    _stage("summary")
    seeds = summary["seeds"]
    print(f"{'model':<18} {'AP':>15} {'AP50':>15} {'AP75':>15}   ({len(seeds)} seed{'s' * (len(seeds) > 1)})")
    names = list(next(iter(summary["metrics"].values())))
    for name in names:
        cells = []
        for suffix in ("", "_50", "_75"):
            vals = [float(summary["metrics"][str(s)][name].get(f"coco/bbox_mAP{suffix}", "nan")) for s in seeds]
            sd = f" ± {np.std(vals, ddof=1):.3f}" if len(vals) > 1 else ""
            cells.append(f"{np.mean(vals):.3f}{sd}")
        print(f"{name:<18} " + " ".join(f"{c:>15}" for c in cells))
    total = sum(summary["seconds"].values())
    print(f"stage seconds (total {total:.0f}): {summary['seconds']}"
          + (f"\ncached now: {', '.join(cached)}" if cached else ""))
    print(f"dumps: {summary['run_dir']}/seed_*/dumps\nsummary: {summary['run_dir']}/summary.json"
          + (f"\nreports: {reports_dir / 'index.html'}" if reports_dir is not None else ""))
