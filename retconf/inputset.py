"""``retconf report DUMP ...`` and ``retconf report RESULTS.json ... --ann-file ANN``: reports of
dumps or COCO results files of one's own, without a ``retconf reproduce`` run.

The inputs become an **input set**: ``OUT/summary.json`` with the seeds and detectors and an
``inputs`` field listing, per (seed, detector), the dump directory or results file and its
annotation file (:mod:`analysis.inputs.runs`). Nothing is trained or copied; the notebooks read the
inputs where they are, exactly as they read a run's dumps, and the index says what was analysed
and which pages were left out, and why.

An input is ``PATH``, ``NAME=PATH`` or ``NAME@SEED=PATH``. Without a name, a dump's detector is
named after its config (retconf's configs by their preset name, e.g. ``retinanet_conf``; other
configs by their first word, e.g. ``atss`` for ``atss_r50_fpn_1x_coco.py``) and a results
file after its file name; without a seed, a dump's seed is the one in its metadata (else 0) and
a results file's is 0. Detectors are paired by seed: every detector needs the same seeds.
"""
from __future__ import annotations

import html
import json
import re
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from analysis.inputs import runs

from .errors import ReportError, UsageError
from .io import atomic_write_text

_NAMED = re.compile(r"^(?P<model>[A-Za-z][\w.-]*)(@(?P<seed>-?\d+))?=(?P<path>.+)$")


@dataclass(frozen=True)
class InputSpec:
    """One input as given: ``path`` and, when given, its detector name and seed."""

    path: Path
    model: str | None = None
    seed: int | None = None


def parse_input(text: str) -> InputSpec:
    """``PATH``, ``NAME=PATH`` or ``NAME@SEED=PATH`` (a path that exists is taken whole, even
    with ``=`` in it)."""
    m = _NAMED.match(text)
    if m is None or Path(text).exists():
        return InputSpec(Path(text))
    return InputSpec(Path(m["path"]), m["model"], None if m["seed"] is None else int(m["seed"]))


def check_report_destination(inputs: list[Path], out: Path) -> None:
    """Refuse an ``--out`` that names an existing file or lies inside (or is) one of ``inputs``
    (the pages would be written into a run or a dump), before anything is read or written.

    Raises:
        UsageError: one line naming ``--out`` and the input."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; the reports go to a directory")
    target = out.resolve()
    for path in inputs:
        p = path.resolve()
        if p == target or p in target.parents:
            raise UsageError(f"--out {out}: lies inside the input {path}; write the reports to a directory of their own")


def input_kind(path: Path) -> str:
    """``'run'`` (a directory with ``summary.json``), ``'dumps'`` (a directory with
    ``metadata.json`` or dump shards) or ``'results'`` (a file).

    Raises:
        UsageError: naming a path that is none of these.
    """
    if path.is_dir():
        if (path / runs.SUMMARY_FILE).is_file():
            return "run"
        if (path / "metadata.json").is_file() or any(path.glob("*-[0-9][0-9][0-9][0-9][0-9].parquet")):
            return "dumps"
        raise UsageError(f"{path}: neither a run directory (summary.json) nor a dump (metadata.json)")
    if path.is_file():
        return "results"
    raise UsageError(f"{path}: no such file or directory")


def detector_name(config: str) -> str:
    """A detector's name from its config: the preset name of one of retconf's configs
    (``experiments/retinanet-conf_r18-tiny_fpn_digits.py`` → ``retinanet_conf``), else the config's
    first word in mmdet's naming (``mmdet::atss/atss_r50_fpn_1x_coco.py`` → ``atss``)."""
    from .presets import PRESETS

    file = Path(str(config).split("::")[-1]).name
    for preset in PRESETS.values():
        for name, path in {**preset.detectors, **preset.more_detectors}.items():
            if Path(path).name == file:
                return name
    return file.split("_")[0].replace("-", "_") or "detector"


@dataclass(frozen=True)
class Entry:
    """One checked input: its detector, seed, path, annotation file (absolute) and, for a dump,
    its metadata."""

    model: str
    seed: int
    path: Path
    ann_file: str
    meta: dict


def _dump_entry(spec: InputSpec, ann_file: str | None) -> Entry:
    from analysis.inputs.io import DumpError, annotation_file, load_dump

    try:
        dump = load_dump(spec.path)  # every shard against its record: a broken dump stops here
        if ann_file:
            dump.meta["ann_file"] = str(Path(ann_file).absolute())
        ann = annotation_file(dump.meta, spec.path / "metadata.json")
    except DumpError as e:
        raise ReportError(str(e)) from e
    seed = spec.seed if spec.seed is not None else dump.meta.get("seed")
    name = spec.model or (detector_name(dump.meta["config"]) if dump.meta.get("config") else spec.path.absolute().name)
    return Entry(name,
                 seed if isinstance(seed, int) else 0, spec.path.absolute(), str(Path(ann).absolute()), dump.meta)


def _results_entry(spec: InputSpec, ann_file: str | None) -> Entry:
    from analysis.measures.results import load_results

    if not ann_file:
        raise UsageError(f"{spec.path}: a COCO results file needs its annotation file: pass --ann-file FILE")
    try:
        res = load_results(spec.path, ann_file)
    except (ValueError, KeyError, OSError) as e:
        raise ReportError(str(e)) from e
    for warning in res.meta.get("warnings", []):
        print(f"retconf report: warning: {spec.path}: {warning}", file=sys.stderr)
    name = spec.model or re.sub(r"\W", "_", spec.path.stem)
    return Entry(name, spec.seed if spec.seed is not None else 0, spec.path.absolute(),
                 str(Path(ann_file).absolute()), res.meta)


def read_inputs(specs: list[InputSpec], ann_file: str | None = None) -> tuple[str, list[Entry]]:
    """The kind (``'dumps'`` or ``'results'``) and the checked entries of ``specs``: each dump
    loaded and checked (shards, annotation file against its hash), each results file read
    against ``ann_file``; detectors paired by seed.

    Raises:
        UsageError: mixed kinds, a run among the inputs, a results file without ``ann_file``.
        ReportError: naming the input (file and field) that cannot be used, two inputs that are
            the same (detector, seed), a detector missing a seed the others have, or dumps
            matched against different annotation files.
    """
    from tqdm import tqdm

    kinds = {spec.path: input_kind(spec.path) for spec in specs}
    if "run" in kinds.values():
        run = next(p for p, k in kinds.items() if k == "run")
        raise UsageError(f"{run}: a run directory is reported alone (retconf report {run}), not with other inputs")
    if len(set(kinds.values())) > 1:
        raise UsageError("the inputs mix dumps and COCO results files: report each kind on its own "
                         f"(dumps: {', '.join(str(p) for p, k in kinds.items() if k == 'dumps')})")
    kind = next(iter(kinds.values()))
    read = _dump_entry if kind == "dumps" else _results_entry
    entries = []
    for spec in tqdm(specs, desc=f"checking {kind}", unit="input", disable=len(specs) < 2):
        entries.append(read(spec, ann_file))
    seen: dict[tuple[int, str], Path] = {}
    for e in entries:
        if (e.seed, e.model) in seen:
            raise ReportError(f"{seen[e.seed, e.model]} and {e.path} are both detector {e.model!r}, seed {e.seed}: "
                              "name them NAME@SEED=PATH")
        seen[e.seed, e.model] = e.path
    models = list(dict.fromkeys(e.model for e in entries))
    seeds = sorted({e.seed for e in entries})
    for m in models:
        for s in seeds:
            if (s, m) not in seen:
                raise ReportError(f"detector {m!r} has no input for seed {s} (the detectors are paired by seed; "
                                  f"seeds found: {seeds}): add it as {m}@{s}=PATH or leave that seed out")
    _refuse_same_content(kind, entries)
    hashes = {e.meta.get("ann_sha256") for e in entries if e.meta.get("ann_sha256")} if kind == "dumps" else set()
    anns = {e.ann_file for e in entries}
    if len(hashes) > 1 or (kind == "dumps" and not hashes and len(anns) > 1):
        a, b = entries[0], next(e for e in entries if e.ann_file != entries[0].ann_file or
                                e.meta.get("ann_sha256") != entries[0].meta.get("ann_sha256"))
        raise ReportError(f"{a.path} and {b.path} were matched against different annotation files ({a.ann_file}, "
                          f"{b.ann_file}; field 'ann_sha256'): detectors are compared on one dataset")
    return kind, entries


def content_key(kind: str, entry: Entry) -> str:
    """What makes two inputs the same predictions: a dump's shard records (the SHA-256 of every
    shard it wrote), a results file's SHA-256."""
    if kind == "dumps":
        return json.dumps([r.get("sha256") for r in entry.meta.get("shards", [])], sort_keys=True)
    from analysis.inputs.io import file_sha256

    return file_sha256(entry.path)


def _refuse_same_content(kind: str, entries: list[Entry]) -> None:
    """Two inputs holding the same predictions under two names would make every paired
    difference exactly 0: refused, naming both."""
    seen: dict[str, Entry] = {}
    for e in entries:
        key = content_key(kind, e)
        if key in seen and key != "[]":
            a = seen[key]
            what = "the same shards (field 'shards' of metadata.json)" if kind == "dumps" else "the same bytes"
            raise ReportError(f"{a.path} ({a.model}@{a.seed}) and {e.path} ({e.model}@{e.seed}) hold {what}: "
                              "one detector given twice would compare equal to itself")
        seen[key] = e


def has_quality(meta: dict) -> bool:
    """Whether a dump's head has a separate quality score (``obj``) that its ranking fuses."""
    fusion = meta.get("fusion") or {}
    return bool(meta.get("quality")) or fusion.get("mode", "cls") != "cls"


PAPER_REFERENCE = "page 04 compares the paper's detectors by name: retinanet with iou_aware and/or retinanet_conf"


def soft_nms_available() -> bool:
    """Whether page 07's Soft-NMS can run here: mmcv's compiled ops import (not in the light
    install, where :mod:`analysis.geometry.nms` has hard NMS only)."""
    from analysis.geometry.nms import mmcv_ops

    return mmcv_ops() is not None


def input_pages(kind: str, entries: list[Entry], available: list[str]) -> tuple[list[tuple[str, dict]], dict[str, str]]:
    """The pages an input set gets, each with its notebook parameters beyond ``run_dir``, and
    the pages left out with the reason (keys: notebook stems among ``available``)."""
    models = list(dict.fromkeys(e.model for e in entries))
    metas = {e.model: e.meta for e in entries}
    quality = [m for m in models if has_quality(metas[m])]
    pages: list[tuple[str, dict]] = []
    left: dict[str, str] = {}
    if kind == "results":
        for stem in available:
            if stem.startswith("08"):
                pages.append((stem, {}))
            elif stem.startswith("05"):
                left[stem] = ("its pre-NMS reliability, pyramid levels and separate cls / obj scores need a dump's candidates "
                              "(`retconf dump`); every post-NMS metric of it is on page 08")
            elif stem.startswith("04"):
                left[stem] = "it compares the paper's detectors before and after fusion (cls-only NMS needs a dump)"
            else:
                left[stem] = "it needs the candidates before NMS, which a COCO results file does not have (`retconf dump`)"
        return pages, left
    heads = {metas[m].get("head") for m in models}
    for stem in available:
        n = stem[:2]
        if n == "01":
            pages.append((stem, {"detectors": models}))
        elif n == "02":
            if quality:
                pages.append((stem, {"detectors": quality}))
            else:
                left[stem] = "no detector has a separate quality score (obj) for the α sweep to fuse"
        elif n == "03":
            if quality:
                pages.append((stem, {"detector": "retinanet_conf" if "retinanet_conf" in quality else quality[0]}))
            else:
                left[stem] = "no detector has a separate quality score (obj) whose fusion modes it could compare"
        elif n == "04":
            if "retinanet" in models and ({"iou_aware", "retinanet_conf"} & set(models)):
                pages.append((stem, {}))
            else:
                left[stem] = PAPER_REFERENCE + " (name a dump NAME=PATH if it is one of those)"
        elif n == "07" and not soft_nms_available():
            left[stem] = ("its Soft-NMS rows need mmcv's compiled ops, which the light install of the analysis "
                          "leaves out (docs/install.md)")
        elif n in ("05", "07"):
            pages.append((stem, {"detectors": models}))
        elif n == "06":
            if len(heads) > 1:
                pages.append((stem, {}))
            else:
                left[stem] = "all dumps come from one kind of head: the cross-family page compares several"
        elif n == "08":
            left[stem] = "it is the page for COCO results files; the dumps' post-NMS metrics are on page 05"
    return pages, left


def input_summary(kind: str, entries: list[Entry], command: str) -> dict:
    """The input set's ``summary.json`` (:mod:`analysis.inputs.runs`): no training metrics, the inputs listed."""
    models = list(dict.fromkeys(e.model for e in entries))
    seeds = sorted({e.seed for e in entries})
    files = [{"model": e.model, "seed": e.seed, "path": str(e.path), "ann_file": e.ann_file} for e in entries]
    return runs.make_summary(seeds=seeds, detectors=models, metrics={str(s): {m: {} for m in models} for s in seeds},
                             inputs={"kind": kind, "files": files, "command": command})


def _input_rows(kind: str, entries: list[Entry]) -> str:
    rows = []
    for e in entries:  # as given
        extra = ""
        if kind == "dumps":
            ckpt = e.meta.get("checkpoint_sha256") or ""
            extra = (f"<td>{html.escape(str(e.meta.get('head')))}</td><td>{html.escape(str(e.meta.get('quality') or '—'))}</td>"
                     f"<td><code>{html.escape(str(e.meta.get('config')))}</code></td><td>{html.escape(ckpt[:12])}</td>"
                     f"<td>{'yes' if e.meta.get('ann_sha256') else 'no hash recorded: not checked'}</td>")
        rows.append(f"<tr><td>{html.escape(e.model)}</td><td>{e.seed}</td><td><code>{html.escape(str(e.path))}</code></td>"
                    f"<td><code>{html.escape(e.ann_file)}</code></td>{extra}</tr>")
    head = "<th>detector</th><th>seed</th><th>input</th><th>annotation file</th>" + (
        "<th>head</th><th>quality score</th><th>config</th><th>checkpoint SHA-256</th><th>annotation file checked</th>"
        if kind == "dumps" else "")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def input_index_html(pages: list[tuple[str, str]], kind: str, entries: list[Entry], left: dict[str, str],
                     out: Path, command: str, headline: list[dict] | None = None) -> str:
    """The landing page of an input set: what was analysed (no training: the inputs as given),
    one line of computed findings per page with its link, the pages left out and why."""
    from .report import INDEX_HEADING, headline_html, page_findings, verdict_line

    seeds = sorted({e.seed for e in entries})
    what = ("dump" if kind == "dumps" else "COCO results file") + ("s" if len(entries) > 1 else "") + (" (`retconf dump`)" if kind == "dumps" else "")
    items = "".join(f'<li><a href="{html.escape(href)}">{html.escape(title)}</a> — '
                    f"{html.escape(verdict_line(page_findings(out / href, own=False), page_findings(out / href, own=True)))}</li>"
                    for title, href in pages)
    skipped = "".join(f"<li>{html.escape(stem)}: {html.escape(why)}</li>" for stem, why in sorted(left.items()))
    source = "its dump's detections under its deployed ranking" if kind == "dumps" else "its results file's detections"
    return (
        f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>retconf reports: {html.escape(str(out))}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:1em auto;line-height:1.4}"
        "td,th{padding:2px 8px;text-align:left}</style></head><body>"
        + INDEX_HEADING + headline_html(headline or [], source) +
        f"<h2>What was analysed</h2><p>{len(entries)} {html.escape(what)} given to <code>{html.escape(command)}</code>: "
        f"{len({e.model for e in entries})} detector(s), seed(s) {', '.join(map(str, seeds))}. Nothing was trained or "
        "re-run by this command: every number comes from the inputs below, read where they are "
        f"(listed in <code>summary.json</code>, field <code>inputs</code>). Detectors are paired by seed.</p>"
        + _input_rows(kind, entries) +
        f"<h2>Reports</h2><p>After each link: the verdicts of its findings block.</p><ul>{items}</ul>"
        + (f"<h2>Pages left out</h2><ul>{skipped}</ul>" if skipped else "")
        + f"<h2>Provenance</h2><p>Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.</p></body></html>\n")


def make_input_reports(inputs: list[str], out: str | Path, ann_file: str | None = None,
                       names: list[str] | None = None, show_code: bool = False, jobs: int | None = None,
                       notebooks_from: str | Path | None = None, command: str = "", explore: bool = True,
                       memory_gb: float | None = None) -> list:
    """Reports of dumps or COCO results files (see the module docstring): check every input,
    write ``OUT/summary.json`` (the input set), run the pages that apply, the explorer page
    (``explore``, dumps only: :func:`retconf.report.explorer_report`) and the index. Nothing
    is written before every input has been checked. Returns the written (or kept)
    :class:`retconf.report.Report` pages."""
    from .report import _run_pages, notebooks, notebooks_dir, page_title_of, run_digest

    nb_dir = notebooks_dir(notebooks_from)
    kind, entries = read_inputs([parse_input(i) for i in inputs], ann_file)
    out = Path(out).absolute()
    available = [p.stem for p in notebooks(None, nb_dir)]
    chosen, left = input_pages(kind, entries, available)
    if names:
        chosen = [(stem, p) for stem, p in chosen if any(stem.startswith(n) for n in names)]
    command = command or "retconf report " + " ".join(inputs)
    summary = input_summary(kind, entries, command)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(runs.summary_path(out), json.dumps(summary, indent=1, sort_keys=True))
    unchecked = [e for e in entries if kind == "dumps" and not e.meta.get("ann_sha256")]
    pages = [(nb_dir / f"{stem}.ipynb", {"run_dir": str(out), **params}) for stem, params in chosen]
    from .report import explorer_report, wants_explorer

    # the sliders and the browser need candidates: dumps only
    explorer = partial(explorer_report, Path("."), out, summary, out) \
        if explore and kind == "dumps" and wants_explorer(names) else None
    written = _run_pages(pages, out, show_code, jobs, run_digest(out), lambda path: "", quiet_unhashed=bool(unchecked),
                         metadata_files=runs.dump_metadata_files(out) if kind == "dumps" else [], memory_gb=memory_gb,
                         explorer=explorer)
    from analysis.studies.tables import headline

    models = list(summary["detectors"])
    from .explore import PAGE

    found = [out / f"{stem}.html" for stem, _ in input_pages(kind, entries, available)[0]] + [out / PAGE]
    atomic_write_text(out / "index.html", input_index_html(
        [(page_title_of(p), p.name) for p in found if p.is_file()], kind, entries, left, out, summary["inputs"]["command"],
        headline(str(out), base=models[0], models=models)))
    return written
