"""``retconf report``: execute the notebooks with papermill on a run directory and convert them to
self-contained HTML with an index.

Each notebook is executed into ``OUT/<name>.ipynb`` (kept, also when a cell fails) and converted
to ``OUT/<name>.html`` (code hidden unless ``show_code``); ``OUT/index.html`` links them with the
run's metadata. HTML files are written atomically.

Reports resume: each HTML page carries ``<meta name="retconf-inputs">``, a fingerprint of the
notebook, its parameters, the ``analysis`` package's source, the run's ``summary.json`` (less its
timing of this very stage) and every dump's ``metadata.json``; a page whose fingerprint matches is kept, so a rerun after an
interruption redoes only the notebooks that were not finished or whose inputs changed.
"""
from __future__ import annotations

import hashlib
import html
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import analysis
from analysis.inputs import runs
from analysis.measures.seeds import PROGRESS_ENV
from analysis.paper.findings import counted_here, verdict_label

from .errors import ReportError, UsageError
from .io import atomic_write_text

# The source checkout this module sits in (an editable install or a clone). A non-editable
# install has no notebooks/ beside it: pass the directory (``retconf report --notebooks DIR``,
# ``make_reports(..., notebooks_from=DIR)``) or set $RETCONF_NOTEBOOKS.
CHECKOUT = Path(__file__).resolve().parents[1]
NOTEBOOKS_ENV = "RETCONF_NOTEBOOKS"


def notebooks_dir(directory: str | Path | None = None) -> Path:
    """Where the numbered notebooks are: ``directory``, else ``$RETCONF_NOTEBOOKS``, else the
    checkout's ``notebooks/``. They run with their parent directory (the project) as working
    directory.

    Raises:
        ReportError: naming where it looked.
    """
    given = directory or os.environ.get(NOTEBOOKS_ENV)
    path = Path(given) if given else CHECKOUT / "notebooks"
    if not path.is_dir():
        how = f"{path} is not a directory" if given else (
            f"{path} does not exist (a non-editable install does not ship the notebooks: pass "
            f"--notebooks DIR or set {NOTEBOOKS_ENV} to the source tree's notebooks/)")
        raise ReportError(f"notebooks: {how}")
    return path.resolve()


def notebooks(names: list[str] | None = None, directory: str | Path | None = None) -> list[Path]:
    """The numbered notebooks of :func:`notebooks_dir` (all, or those whose name starts with
    one of ``names``)."""
    found = sorted(notebooks_dir(directory).glob("[0-9][0-9]_*.ipynb"))
    if names:
        found = [p for p in found if any(p.stem.startswith(n) for n in names)]
    return found


# ``--only`` name of the explorer page (explore.html), beside the notebooks' numbers
EXPLORER_NAME = "explore"


def wants_explorer(names: list[str] | None) -> bool:
    """Whether a report limited to ``names`` (None: every page) includes the explorer page."""
    return not names or EXPLORER_NAME in names


def check_page_names(names: list[str], directory: str | Path | None = None) -> None:
    """Refuse ``--only`` names that match no numbered notebook (``99``, ``O1``) and are not
    :data:`EXPLORER_NAME`.

    Raises:
        UsageError: naming the first unknown name and the pages there are."""
    stems = [p.stem for p in notebooks(None, directory)]
    for n in names:
        if n != EXPLORER_NAME and not any(stem.startswith(n) for stem in stems):
            raise UsageError(f"--only {n}: no such page; the pages are {', '.join(s.split('_')[0] for s in stems)} "
                             f"and {EXPLORER_NAME}")


FAMILIES_NOTEBOOK = "06_families"  # only for runs with detectors beyond the paper's three
RESULTS_NOTEBOOK = "08_results"  # only for input sets of COCO results files


def run_notebooks(summary: dict, names: list[str] | None = None,
                  directory: str | Path | None = None) -> list[Path]:
    """:func:`notebooks` that apply to a run: the families page only where the run has other
    families than the paper's three."""
    found = [p for p in notebooks(names, directory) if p.stem != RESULTS_NOTEBOOK]
    if not runs.has_families(summary):
        found = [p for p in found if p.stem != FAMILIES_NOTEBOOK]
    return found


_REMOTE_SCRIPT = re.compile(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>', re.I)


def strip_remote_scripts(page: str) -> str:
    """Drop ``<script src="http...">`` tags (nbconvert's require.js and MathJax from a CDN): the
    reports use neither, and must open offline without failed requests."""
    return _REMOTE_SCRIPT.sub("", page)


@dataclass(frozen=True)
class Report:
    """One written (or kept) HTML report."""

    path: Path
    reused: bool


_FINGERPRINT = re.compile(r'<meta name="retconf-inputs" content="([0-9a-f]{64})">')


ANALYSIS_ROOT = Path(analysis.__file__).parent
# what the pages read from the analysis package besides its code: the claims registry and the
# paper's tables (CSV), the measured numeric-path shift (JSON) that marks verdicts fragile, the
# paper's text
ANALYSIS_DATA = frozenset({".py", ".csv", ".json", ".txt"})


def analysis_inputs(root: Path | None = None, suffixes: frozenset[str] = ANALYSIS_DATA) -> list[Path]:
    """The files of the ``analysis`` package (``root``, default :data:`ANALYSIS_ROOT`) a page
    depends on: its code and its data files (``suffixes``, default :data:`ANALYSIS_DATA`), in a
    fixed order, caches left out."""
    root = root or ANALYSIS_ROOT
    return sorted(p for p in root.rglob("*") if p.suffix in suffixes and p.is_file()
                  and "__pycache__" not in p.parts)


def run_digest(run_dir: Path) -> str:
    """SHA-256 over the inputs every report of ``run_dir`` shares: the ``analysis`` source and
    data files (:func:`analysis_inputs`: a new claims registry or path shift changes pages), the
    run's ``summary.json`` (less the timing of the report stage, wall times, job counts and the
    cached-stage list) and
    every dump's ``metadata.json``. Computed once per ``retconf report``."""
    h = hashlib.sha256()
    summary = runs.load_summary(run_dir)
    for key in ("cached_this_run", "wall_seconds", "train_and_dump_wall_seconds", "jobs", "threads_per_job"):
        summary.pop(key, None)  # how the run went, not what it computed
    summary.get("seconds", {}).pop("reports", None)
    h.update(json.dumps(summary, sort_keys=True).encode())
    for source in analysis_inputs():  # the code the notebooks call and the data it reads
        h.update(str(source.relative_to(ANALYSIS_ROOT)).encode())
        h.update(source.read_bytes())
    for meta in runs.dump_metadata_files(run_dir):
        h.update(str(meta.relative_to(run_dir) if meta.is_relative_to(run_dir) else meta).encode())
        h.update(meta.read_bytes())
    if runs.input_kind(summary) == "results":  # the files themselves and their annotation files
        from analysis.inputs.io import file_sha256

        for f in summary["inputs"]["files"]:
            h.update(f"{file_sha256(Path(f['path']))} {file_sha256(Path(f['ann_file']))}".encode())
    return h.hexdigest()


def inputs_fingerprint(notebook: Path, parameters: dict, show_code: bool, run: str) -> str:
    """SHA-256 over everything one report is made from: the notebook, its parameters and
    ``run``, the :func:`run_digest` of its run (see the module docstring)."""
    h = hashlib.sha256()
    h.update(notebook.read_bytes())
    h.update(json.dumps({"parameters": parameters, "show_code": show_code}, sort_keys=True).encode())
    h.update(run.encode())
    return h.hexdigest()


def report_fingerprint(page: Path) -> str | None:
    """The inputs fingerprint recorded in an HTML report (None: absent or unreadable)."""
    try:
        with open(page, encoding="utf-8", errors="replace") as f:
            head = f.read(4000)
    except OSError:
        return None
    m = _FINGERPRINT.search(head)
    return m.group(1) if m else None


def families_note(summary: dict, notebook: Path, out: Path) -> str:
    """For pages 01–05 of a run with other families than the paper's three: the note that they
    re-analyse the paper's trainings with this run's seeds, and where the reference set is."""
    if not runs.has_families(summary) or notebook.stem == FAMILIES_NOTEBOOK:
        return ""
    n = len(summary.get("seeds") or [])
    ref = out.parent / "tiny" / f"{notebook.stem}.html"
    link = (f' The reference for the paper\'s claims is <a href="../tiny/{notebook.stem}.html">the default run\'s '
            f"page</a> (three seeds)." if ref.is_file() else "")
    return (f"This page re-analyses the paper's three trainings of a families run with its {n} seed"
            f"{'s' * (n != 1)}: its verdicts can differ from the default run's.{link}")


def run_notebook(path: Path, out_dir: Path, parameters: dict, show_code: bool = False,
                 fingerprint: str = "", note: str = "") -> Path:
    """Execute one notebook with papermill (working directory: the project, the notebook
    directory's parent) and write its HTML, with ``note`` (HTML) under the index link; return
    the HTML path."""
    import nbformat
    import papermill as pm
    from nbconvert import HTMLExporter

    executed = out_dir / f"{path.stem}.ipynb"
    progress_file = out_dir / f".{path.stem}.progress"  # the kernel's progress (:class:`PageProgress`)
    progress_file.unlink(missing_ok=True)
    os.environ[PROGRESS_ENV] = str(progress_file)  # inherited by the kernel papermill starts
    try:
        pm.execute_notebook(str(path), str(executed), parameters=parameters, cwd=str(path.parent.parent),
                            progress_bar=False, kernel_name="python3",
                            # the kernel's own log is no news to a batch log: its start-up warning
                            # ("[IPKernelApp] WARNING | Kernel is running over TCP ...") and, when
                            # nbclient stops it with SIGINT after the last cell, "[IPKernelApp] ERROR |
                            # KeyboardInterrupt caught in kernel." (a failing cell reaches us as
                            # PapermillExecutionError, not through this log)
                            extra_arguments=["--IPKernelApp.log_level=CRITICAL"])
    except pm.PapermillExecutionError as e:
        raise ReportError(f"notebook {path.name} failed in cell {e.exec_count}: {e.ename}: {e.evalue} "
                          f"(executed notebook kept at {executed})") from e
    finally:
        os.environ.pop(PROGRESS_ENV, None)
        progress_file.unlink(missing_ok=True)
    exporter = HTMLExporter(exclude_input=not show_code, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nbformat.read(str(executed), as_version=4))
    target = out_dir / f"{path.stem}.html"
    body = with_title_and_index_link(strip_remote_scripts(body), page_title(path), note)
    if fingerprint:
        body = body.replace("<head>", f'<head>\n<meta name="retconf-inputs" content="{fingerprint}">', 1)
    data = findings_data(body)
    if data is not None:  # the page's findings and key numbers, machine-readable, beside it
        atomic_write_text(target.with_suffix(".json"), json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    atomic_write_text(target, body)
    executed.unlink()  # kept only when the notebook fails
    return target


def progress_line(stem: str, lines: list[str], now: float) -> str | None:
    """One console line on a running page from its progress file's JSON ``lines``
    (:func:`analysis.measures.seeds.note_progress`): the page, what it computes, dumps done of the
    total (and shards of the next, for a page that reads dumps shard by shard), seconds since that
    computation started and an estimate of the seconds left. None before the first line."""
    records = [json.loads(line) for line in lines if line.strip()]
    if not records:
        return None
    last = records[-1]
    start = next(r["time"] for r in reversed(records)  # the computation's start, not a shard of its first dump
                 if r["done"] == 0 and not r.get("shard") and r["what"] == last["what"])
    elapsed = now - start
    text = f"{stem}: {last['what']}, {last['done']}/{last['total']} dumps"
    done = float(last["done"])
    if last.get("shard") and last["done"] < last["total"]:  # the next dump, read shard by shard
        i, n = last["shard"]
        text += f" and {i}/{n} shards of the next"
        done += i / max(n, 1)
    text += f", {elapsed:.0f} s"
    if 0 < done < last["total"]:
        text += f", about {elapsed / done * (last['total'] - done):.0f} s left"
    return text


class PageProgress:
    """Prints :func:`progress_line` of every running page of ``out`` (its ``.NN_name.progress``
    file) every ``every`` seconds when it changed, from a background thread; a context manager."""

    def __init__(self, out: Path, every: float = 20.0):
        import threading

        self.out, self.every = out, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._shown: dict[str, str] = {}

    def __enter__(self) -> PageProgress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _watch(self) -> None:
        from tqdm import tqdm

        while not self._stop.wait(self.every):
            for f in sorted(self.out.glob(".*.progress")):
                try:
                    records = f.read_text().splitlines()
                    line = progress_line(f.stem.lstrip("."), records, time.time())
                except (OSError, ValueError, KeyError, StopIteration):
                    continue  # being written or removed
                if line and self._shown.get(f.name) != records[-1]:  # a record since the last line shown
                    self._shown[f.name] = records[-1]
                    tqdm.write(line)


def page_title(notebook: Path) -> str:
    """A report's title: the first ``# `` heading of its notebook (else its file name)."""
    import nbformat

    for cell in nbformat.read(str(notebook), as_version=4).cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return notebook.stem


def page_title_of(page: Path) -> str:
    """The title of a written report page (its ``<title>`` without the suffix)."""
    m = re.search(r"<title>(.*?)( · retconf)?</title>", page.read_text(), re.S)
    return html.unescape(m.group(1)).strip() if m else page.stem


def with_title_and_index_link(page: str, title: str, note: str = "") -> str:
    """nbconvert's page with ``title`` in ``<title>`` (nbconvert writes "Notebook") and a link
    back to ``index.html`` at the top of the body, followed by ``note`` (HTML) when given."""
    page = re.sub(r"<title>.*?</title>", f"<title>{html.escape(title)} · retconf</title>", page, count=1, flags=re.S)
    nav = '<nav style="padding:0.5em 1em"><a href="index.html">← all reports of this run</a></nav>'
    if note:
        nav += f'<p class="run-note" style="padding:0.5em 1em;background:#fff3cd">{note}</p>'
    return re.sub(r"(<body[^>]*>)", lambda m: m.group(1) + nav, page, count=1)


_FINDINGS = re.compile(r'<div class="findings">(.*?)</div>', re.S)
_VERDICT = re.compile(r'<li( class="own")?><b>(.*?)</b>')
_DATA = re.compile(r'<script[^>]*\bclass="retconf-findings"[^>]*>(.*?)</script>', re.S)  # nbconvert reorders attributes


def findings_data(page_html: str) -> dict | None:
    """The findings data a page embeds (:func:`analysis.paper.findings.page_record`), or None."""
    m = _DATA.search(page_html)
    return json.loads(m.group(1)) if m else None


def page_data(page: Path) -> dict | None:
    """A report page's findings data: its ``NN_name.json`` beside it, else what the HTML embeds
    (None for a page without findings data, e.g. one written before pages had it)."""
    sidecar = page.with_suffix(".json")
    try:
        if sidecar.is_file():
            return json.loads(sidecar.read_text())
        return findings_data(page.read_text())
    except OSError:
        return None


def page_findings(page: Path, own: bool | None = None) -> list[str]:
    """The verdicts a report page counts (empty when it has none): all of them, or only the
    paper's claims (``own`` False) or only the project's own questions (``own`` True). A paper
    claim whose home is another page is shown there but counted on its home only."""
    data = page_data(page)
    if data is not None:
        name = page.stem
        return [f["verdict"] for f in data["findings"]
                if (own is None or bool(f["own"]) == own) and (f["own"] or counted_here(f["home"], name))]
    try:  # a page written before pages carried their findings as data
        m = _FINDINGS.search(page.read_text())
    except OSError:
        return []
    found = _VERDICT.findall(m.group(1)) if m else []
    return [v for mark, v in found if own is None or bool(mark) == own]


def _tally(verdicts: list[str]) -> str:
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[html.unescape(v)] = counts.get(html.unescape(v), 0) + 1
    first = ("reproduced", "holds", "not reproduced", "does not hold")
    order = sorted(counts, key=lambda v: (first.index(v) if v in first else len(first), v))
    return ", ".join(f"{counts[v]} {v}" for v in order)


def verdict_line(verdicts: list[str], own: list[str] | None = None) -> str:
    """'2 reproduced, 1 not reproduced, 3 inconclusive at 3 seeds' (in that order) for the
    paper's claims, then '; own questions: 1 holds, …' for the project's own."""
    line = _tally(verdicts) or "no paper claim on this page"
    return line + (f"; own questions: {_tally(own)}" if own else "")


def _provenance(summary: dict) -> str:
    """Stage times, saying which stages this run reused instead of showing their seconds as new."""
    cached = set(summary.get("cached_this_run") or [])
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.0f}</td><td>{'reused from an earlier run' if k in cached else 'run'}</td></tr>"
                   for k, v in (summary.get("seconds") or {}).items())
    wall = summary.get("wall_seconds")
    jobs = summary.get("jobs")
    extra = []
    if wall is not None:
        extra.append(f"wall time of the command: {wall / 60:.1f} min")
    if jobs:
        extra.append(f"{jobs} training{'s' * (jobs > 1)} at a time, {summary.get('threads_per_job')} thread(s) each "
                     "(stage seconds of parallel jobs overlap)")
    m = summary.get("machine")
    if m:
        cap = f" (capped by ONEDNN_MAX_CPU_ISA={m['onednn_max_cpu_isa']})" if m.get("onednn_max_cpu_isa") else ""
        extra.append(f"machine of the last invocation: {m.get('cpu')}; oneDNN bfloat16 kernels: {m.get('onednn_isa')}"
                     f"{cap}; accelerator: {m.get('accelerator') or 'none (CPU)'}; torch {m.get('torch')}, "
                     f"Python {m.get('python')} — trainings reused from earlier invocations keep the numbers of the "
                     "machine that ran them, and bfloat16 kernels sum in a different order on another CPU family")
    return (f"<p>{html.escape('; '.join(extra))}</p>" if extra else "") + \
        f"<table><tr><th>stage</th><th>seconds</th><th>this run</th></tr>{rows}</table>"


def command_of(summary: dict) -> str:
    """The ``retconf reproduce`` command line that makes a run like ``summary``'s."""
    from .presets import PRESETS

    cmd = f"retconf reproduce --preset {summary.get('preset')} --seeds {len(summary.get('seeds') or [])}"
    preset = PRESETS.get(str(summary.get("preset")))
    detectors = summary.get("detectors")
    if preset and detectors and list(detectors) != list(preset.detectors):
        cmd += " --detectors " + " ".join(detectors)
    return cmd + (" --full" if summary.get("ablations") else "")


INDEX_HEADING = "<h1>retconf reports</h1>"


def sibling_sets(out: Path) -> list[str]:
    """The other report sets beside ``out`` (e.g. ``tiny`` and ``tiny-full`` in ``reports/``):
    the folders whose ``index.html`` this module wrote, by name."""
    if not out.parent.is_dir():
        return []
    found = []
    for p in sorted(out.parent.iterdir()):
        index = p / "index.html"
        if p.is_dir() and p.resolve() != out.resolve() and index.is_file() and INDEX_HEADING in index.read_text(errors="replace"):
            found.append(p.name)
    return found


def model_and_schedule(preset, project: Path = CHECKOUT) -> str:
    """One line on the detectors' shared recipe, read from the RetinaNet-Conf config (else the
    first detector's) of ``preset`` (a :class:`retconf.presets.Preset`) with the preset's own overrides: backbone,
    neck, input size, epochs, optimizer, batch size, and the backbone's pretraining."""
    from mmengine.config import Config

    # the RetinaNet-Conf config when the run has it, else the run's first detector (same recipe)
    config = preset.detectors.get("retinanet_conf") or next(iter(preset.detectors.values()))
    cfg = Config.fromfile(str(project / config), import_custom_modules=False)
    cfg.merge_from_dict(dict(preset.cfg_options))
    backbone, opt = cfg.model.backbone, cfg.optim_wrapper.optimizer
    scale = next((t["scale"] for t in cfg.train_pipeline if t["type"] == "Resize"), None)
    epochs = int(cfg.train_cfg.max_epochs)
    init = "pretrained as a digit/background classifier (shared pretraining stage)" if preset.pretrain else \
        "initialised as the config says"
    frozen = int(backbone.get("frozen_stages", -1))
    if frozen >= int(backbone.get("num_stages", 4)):
        init += ", then frozen (only neck and heads train)"
    elif frozen == 0:
        init += ", its stem frozen"
    elif frozen > 0:
        init += f", its stem and first {frozen} stage{'s' * (frozen != 1)} frozen"
    return (f"{backbone.type}-{backbone.get('depth', '')} + {cfg.model.neck.type}, one head per detector "
            f"(configs {', '.join(Path(c).name for c in preset.detectors.values())}); images resized to fit "
            f"{' × '.join(map(str, scale)) if scale else 'the config'} px (aspect ratio kept); {epochs} epoch"
            f"{'s' * (epochs != 1)}, {opt.type} lr {opt.lr:g}, batch {cfg.train_dataloader.batch_size} per process; "
            f"backbone {init}")


def headline_html(rows: list[dict], source: str = "its dump's detections under its deployed ranking") -> str:
    """The index's headline box from :func:`analysis.studies.tables.headline` rows: each detector's AP and
    each detector difference with the half-width the run resolves and, while unresolved, the
    seeds that would resolve it."""
    import math

    if not rows:
        return ""
    items = []
    for r in rows:
        n = r["seeds"]
        if "−" not in r["what"]:
            spread = f" ± {r['sd']:.3f} (sd over {n} seeds)" if n > 1 else " (one seed)"
            items.append(f"<li>{html.escape(r['what'])} = {r['mean']:.3f}{spread}</li>")
            continue
        text = f"{html.escape(r['what'])} = {r['mean']:+.3f}"
        if n > 1:
            resolved = abs(r["mean"]) > r["half_width"]
            text += (f", resolvable to ± {r['half_width']:.3f} at {n} seeds (95 % paired t): "
                     + ("resolved" if resolved else "not resolved"))
            if not resolved and not math.isnan(r["seeds_to_resolve"]):
                text += (f"; about {int(r['seeds_to_resolve'])} seeds would resolve it at this spread"
                         if r["seeds_to_resolve"] < 10_000 else "; a mean this small needs more than 10,000 seeds")
        else:
            text += " on one seed (no spread: nothing is resolved)"
        items.append(f"<li>{text}</li>")
    return ('<div class="headline" style="border:2px solid #446;padding:0.2em 1em;background:#f4f6ff">'
            f"<h2>Headline</h2><p>Each detector's COCO AP (0.50:0.95) of {html.escape(source)}, and the paired differences with what this run can resolve:</p><ul>{''.join(items)}</ul></div>")


def registry_verdicts(out: Path) -> dict[str, list[dict]]:
    """Registry id -> the findings on it that the pages in ``out`` count (each claim's home)."""
    found: dict[str, list[dict]] = {}
    for page in sorted(out.glob("[0-9][0-9]_*.html")):
        data = page_data(page)
        for f in (data or {}).get("findings", []):
            if f.get("claim_id") and not f["own"] and counted_here(f.get("home", ""), page.stem):
                found.setdefault(f["claim_id"], []).append({**f, "page": page.name})
    return found


def registry_tally(out: Path) -> list[str]:
    """The verdict of every registry claim the pages in ``out`` test, each claim once (on its
    home page; a restatement shares its claim's verdict and is not counted again)."""
    from analysis.paper.claims import load_claims

    found = registry_verdicts(out)
    return [found[c.id][0]["verdict"] for c in load_claims().values() if not c.same_as and found.get(c.id)]


DECISIVE_SET = "tiny-decisive"  # the report set of the many-seed run the default pages defer to


def registry_html(out: Path) -> str:
    """The index's table of the paper's claims: every row of the registry
    (:mod:`analysis.paper.claims`) with its verdict on its home page in ``out`` (or why it is not
    tested here), and the tally of unique claims. Where a sibling set :data:`DECISIVE_SET`
    exists, a column gives its verdict on each claim, linked. Empty when no page in ``out``
    cites the registry."""
    from analysis.paper.claims import load_claims

    found = registry_verdicts(out)
    if not found:
        return ""
    claims = list(load_claims().values())
    decisive = out.parent / DECISIVE_SET
    other = registry_verdicts(decisive) if decisive.is_dir() and out.resolve() != decisive.resolve() else {}
    rows = []
    for c in claims:
        hits = found.get(c.same_as or c.id, [])
        if hits:
            v = "; ".join(verdict_label(h) for h in hits)
            where = f'<a href="{html.escape(hits[0]["page"])}">{html.escape(hits[0]["page"][:-5])}</a>'
            if c.same_as:
                v += f" (restates {c.same_as})"
        elif c.testable:
            v, where = ("not shown in this report set" if c.computed else c.status), html.escape(c.home)
        else:
            v, where = c.status, ""
        extra = ""
        if other:
            hit = other.get(c.same_as or c.id, [])
            extra = (f'<td><a href="../{DECISIVE_SET}/{html.escape(hit[0]["page"])}">'
                     f'{html.escape(verdict_label(hit[0]))}</a></td>'
                     if hit else "<td></td>")
        rows.append(f"<tr><td><code>{html.escape(c.id)}</code></td><td>{html.escape(c.section)}</td>"
                    f"<td>“{html.escape(c.quote)}”</td><td>{html.escape(v)}</td><td>{where}</td>{extra}</tr>")
    untested = sum(1 for c in claims if not c.testable)
    pending = sum(1 for c in claims if c.testable and not c.computed)
    restated = sum(1 for c in claims if c.same_as)
    return ('<h2 id="claims">The paper\'s claims</h2>'
            f"<p>{html.escape(_tally(registry_tally(out)))}: each tested claim of the registry counted once, on its home "
            f"page ({restated} restatements share their claim's verdict and are not counted again). "
            f"{pending} more are testable on this run but no page computes them yet, and {untested} cannot be "
            "tested on this run (the reason is in the table). The registry is "
            "<code>analysis/paper/claims.csv</code>.</p>"
            + (f'<p>The last column is the verdict of the decisive run (<a href="../{DECISIVE_SET}/index.html">'
               f"{DECISIVE_SET}</a>: more seeds, so narrower intervals); where the two differ, it is the one to "
               "rely on.</p>" if other else "")
            + '<table class="registry"><tr><th>id</th><th>where</th><th>the paper\'s words</th><th>verdict</th>'
            f"<th>page</th>{'<th>decisive run</th>' if other else ''}</tr>{''.join(rows)}</table>")


def index_html(entries: list[tuple[str, str]], run_dir: Path, summary: dict, out: Path | None = None,
               project: Path = CHECKOUT, headline: list[dict] | None = None) -> str:
    """The landing page: what was run (paper, data, models, seeds, command), one line of
    computed findings per report with its link, links to sibling report sets and benchmarks,
    and the run's provenance. Relative paths of the summary are read from ``project``."""
    from .presets import PRESETS

    out = out or Path(".")
    preset = PRESETS.get(str(summary.get("preset")))
    if preset and summary.get("detectors"):
        try:
            preset = preset.choose(list(summary["detectors"]))
        except ValueError:  # a summary naming detectors this version does not know
            pass
    manifest = project / str(summary.get("data_root", "")) / "manifest.json"
    data = ""
    if manifest.is_file():
        c = json.loads(manifest.read_text()).get("config", {})
        data = (f"embedded digits-on-photos (COCO format): {c.get('num_train')} train / {c.get('num_val')} val images "
                f"of {c.get('image_size')} × {c.get('image_size')} px, 10 classes (digits 0–9), objects {c.get('min_size')}–{c.get('max_size')} px")
    elif summary.get("data_root"):
        data = f"COCO-format dataset at {summary.get('data_root')}"
    seeds = summary.get("seeds") or []
    items = []
    for title, href in entries:
        items.append(f'<li><a href="{html.escape(href)}">{html.escape(title)}</a> — '
                     f"{html.escape(verdict_line(page_findings(out / href, own=False), page_findings(out / href, own=True)))}</li>")
    siblings = sibling_sets(out)
    links = "".join(f'<li><a href="../{html.escape(n)}/index.html">{html.escape(n)}</a></li>' for n in siblings)
    bench = out.parent / "benchmarks"
    bench_links = "".join(f'<li><a href="../benchmarks/{html.escape(p.name)}">{html.escape(p.stem)}</a></li>'
                          for p in sorted(bench.glob("*.md"))) if bench.is_dir() else ""
    detectors = ", ".join(summary.get("detectors") or [])
    ablations = ", ".join(summary.get("ablations") or []) or "none (run with --full for the loss ablations)"
    return (
        f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>retconf reports: {html.escape(str(run_dir))}</title>"
        "<style>body{font-family:sans-serif;max-width:60em;margin:1em auto;line-height:1.4}"
        "td,th{padding:2px 8px;text-align:left}</style></head><body>"
        + INDEX_HEADING + headline_html(headline or []) +
        "<p>Reproduction and analysis of <i>Improvement of Classification in One-Stage Detector</i> "
        "(RetinaNet-Conf): RetinaNet, IoU-aware RetinaNet and RetinaNet-Conf trained under one recipe, "
        "their classification/localization misalignment before and after NMS, and the paper's tables.</p>"
        "<h2>What was run</h2><ul>"
        f"<li>Command: <code>{html.escape(command_of(summary))}</code> (run dir <code>{html.escape(str(run_dir))}</code>)</li>"
        f"<li>Preset: {html.escape(str(summary.get('preset')))}{' — ' + html.escape(preset.description) if preset else ''}</li>"
        + (f"<li>Model and schedule: {html.escape(model_and_schedule(preset, project))}</li>" if preset else "")
        + (f"<li>Data: {html.escape(data)}</li>" if data else "")
        + f"<li>Detectors: {html.escape(detectors)}; ablation trainings: {html.escape(ablations)}</li>"
        f"<li>Seeds: {len(seeds)} ({', '.join(map(str, seeds))}); every table is the mean ± sd over them and every "
        "verdict uses the 95 % paired t interval over them</li></ul>"
        "<h2>Reports</h2><p>Start with <a href=\"04_main_results.html\">4. Main results</a>, then "
        "<a href=\"01_misalignment.html\">1. Misalignment</a>. After each link: the verdicts of its findings block.</p>"
        f"<ul>{''.join(items)}</ul>"
        + registry_html(out)
        + (f"<h2>Other report sets</h2><ul>{links}</ul>" if links else "")
        + (f"<h2>Benchmarks</h2><ul>{bench_links}</ul>" if bench_links else "")
        + f"<h2>Provenance</h2><p>Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>{_provenance(summary)}"
        "</body></html>\n")


# The thread settings of every notebook kernel (see :func:`_run_pages`).
KERNEL_THREADS = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

# A page's peak memory grows with the candidate rows of the largest dump it reads (it holds one
# dump, or one shard of it, at a time): per page (the notebook's two-digit prefix; "explore" for
# the explorer), GB at no rows and GB per million rows, the line through its peaks measured alone
# on the 300- and 1,200-image sets of benchmarks/coco_scale.py (reports/benchmarks/coco_scale.json,
# 2-core AMD EPYC; benchmarks/coco_scale.page_memory_fit, which tests/test_report_memory.py checks
# against these). A page not measured there (08, for results files) gets the largest of each.
PAGE_MEMORY: dict[str, tuple[float, float]] = {
    "01": (1.63, 0.146), "02": (1.84, 0.049), "03": (1.6, 0.23), "04": (1.52, 0.154), "05": (1.67, 0.125),
    "06": (1.47, 0.173), "07": (1.7, 0.091), "explore": (0.66, 0.3)}
PAGE_BASE_GB = max(base for base, _ in PAGE_MEMORY.values())
PAGE_GB_PER_MILLION_ROWS = max(slope for _, slope in PAGE_MEMORY.values())


def largest_dump_rows(metadata_files: list[Path]) -> int:
    """Candidate rows of the largest dump among ``metadata_files`` (each dump's
    ``metadata.json``), from its Parquet footers (nothing else is read); 0 for none."""
    import pyarrow.parquet as pq

    largest = 0
    for meta in metadata_files:
        try:
            rows = sum(pq.read_metadata(f).num_rows for f in meta.parent.glob("candidates-*.parquet"))
        except OSError:
            continue  # an unreadable shard is named by the page that loads it
        largest = max(largest, rows)
    return largest


def page_memory_gb(rows: int, page: str | None = None) -> float:
    """Estimated peak memory of one page (``page``: its notebook stem, or "explore"; None: the
    most any page takes) reading dumps of up to ``rows`` candidate rows (:data:`PAGE_MEMORY`)."""
    base, slope = PAGE_MEMORY.get((page or "")[:2] if page != "explore" else page, (PAGE_BASE_GB, PAGE_GB_PER_MILLION_ROWS))
    return base + slope * rows / 1e6


def next_page(pending: Sequence[float], running: Sequence[float], budget_gb: float | None) -> int | None:
    """Which of the waiting pages (their estimated peaks ``pending``, in the order they are to run)
    starts next beside the running ones (``running``): the first whose estimate fits with theirs
    in ``budget_gb`` (None: no limit); a page alone always starts. None: wait for one to end."""
    for i, gb in enumerate(pending):
        if budget_gb is None or not running or sum(running) + gb <= budget_gb:
            return i
    return None


def available_memory_gb() -> float | None:
    """MemAvailable of /proc/meminfo in GB (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 / 1e9
    except OSError:
        pass
    return None


def memory_budget(stems: Sequence[str], jobs: int, rows: int, available_gb: float | None,
                  memory_gb: float | None = None) -> tuple[float | None, str | None]:
    """The memory that the pages running at once may take together: ``memory_gb`` where given
    (``--memory-gb``), else 80 % of ``available_gb`` (None: no limit, where it is unknown or one
    page runs at a time), and the line that says so when the ``jobs`` largest of the pages
    ``stems`` (estimates of :func:`page_memory_gb` for dumps of up to ``rows`` candidate rows) would
    not fit side by side (None: the limit changes nothing)."""
    if jobs <= 1 or (available_gb is None and memory_gb is None):
        return None, None
    budget = memory_gb if memory_gb is not None else 0.8 * (available_gb or 0.0)
    est = sorted((page_memory_gb(rows, s) for s in stems), reverse=True)
    if sum(est[:jobs]) <= budget:
        return budget, None
    where = "--memory-gb" if memory_gb is not None else f"80 % of the {available_gb:.1f} GB available"
    return budget, (f"pages run side by side only where their estimated peaks fit in {budget:.1f} GB ({where}; the "
                    f"largest page about {est[0]:.1f} GB with dumps of up to {rows / 1e6:.1f} M candidates)"
                    + ("" if memory_gb is not None else "; --jobs N or --memory-gb GB overrides"))


def explorer_report(project: Path, run_dir: Path, summary: dict, out: Path) -> Report | None:
    """The explorer page (:mod:`retconf.explore`: α / NMS sliders and the candidate browser),
    kept when its inputs fingerprint matches; None when the run has no dump to show."""
    from tqdm import tqdm

    from .explore import PAGE, explorer_inputs, explorer_plan, write_explorer

    seed, names = explorer_plan(project / run_dir, summary)
    if not names:
        return None
    fp = explorer_inputs(project / run_dir, seed, names)
    target = out / PAGE
    if report_fingerprint(target) == fp and (out / "plotly.min.js").is_file():
        tqdm.write(f"{target}: up to date with its inputs, kept")
        return Report(target, True)
    page, info = write_explorer(run_dir, out, project, seed, names, fp)
    tqdm.write(f"{page}: {info['bytes'] / 1e6:.1f} MB, {info['images']} images, {info['candidates']} candidates, "
               f"{info['seconds']:.0f} s")
    return Report(page, False)


# The notebooks whose ``parameters`` cell declares ``live``: batch runs set it False (the static
# explorer page replaces their JupyterLab widgets).
LIVE_PARAMETER = "live"


def notebook_parameters(path: Path, parameters: dict) -> dict:
    """``parameters`` plus ``live=False`` for a notebook whose parameters cell declares ``live``."""
    import papermill as pm

    declared = pm.inspect_notebook(str(path))
    return {**parameters, LIVE_PARAMETER: False} if LIVE_PARAMETER in declared else dict(parameters)


def make_reports(run_dir: str | Path, out: str | Path, names: list[str] | None = None,
                 show_code: bool = False, jobs: int | None = None,
                 notebooks_from: str | Path | None = None, explore: bool = True,
                 memory_gb: float | None = None) -> list[Report]:
    """Execute the notebooks on ``run_dir`` and write the HTML reports and index to ``out``;
    reports whose recorded inputs fingerprint still matches are kept. ``jobs`` notebooks run at
    once, each in its own process (default: one per CPU core; 1 runs them in this process), side by
    side only where their estimated memory fits ``memory_gb`` (default 80 % of what is available).
    ``notebooks_from``: the notebook directory (default: :func:`notebooks_dir`). Without
    ``names`` and with ``explore``, also the explorer page (:func:`explorer_report`), listed last."""
    nb_dir = notebooks_dir(notebooks_from)
    project = nb_dir.parent  # the project the notebooks run in
    run_dir, out = Path(run_dir).absolute(), Path(out)
    if run_dir.is_relative_to(project):  # shown in the reports: keep it short and machine-independent
        run_dir = run_dir.relative_to(project)
    try:
        summary = runs.load_summary(project / run_dir)
    except runs.RunError as e:
        raise ReportError(str(e)) from e
    if runs.input_kind(summary):
        raise ReportError(f"{runs.summary_path(run_dir)}: an input set written by `retconf report` on dumps or results "
                          "files, not a run: rerun that command (its inputs are listed in the file's 'inputs' field)")
    metadata_files = runs.dump_metadata_files(project / run_dir)
    unchecked = check_annotation_files(metadata_files)
    parameters = {"run_dir": str(run_dir)}
    pages = [(path, parameters) for path in run_notebooks(summary, names, nb_dir)]
    explorer = partial(explorer_report, project, run_dir, summary, out) if explore and wants_explorer(names) else None
    written = _run_pages(pages, out, show_code, jobs, run_digest(project / run_dir),
                         lambda path: families_note(summary, path, out), quiet_unhashed=bool(unchecked),
                         metadata_files=metadata_files, memory_gb=memory_gb, explorer=explorer)
    if not (all(r.reused for r in written) and (out / "index.html").is_file()):
        from .explore import PAGE

        # every numbered page in ``out``, also those a run limited to ``names`` did not redo
        found = [out / f"{p.stem}.html" for p in notebooks(None, nb_dir)] + [out / PAGE]
        from analysis.studies.tables import headline

        atomic_write_text(out / "index.html", index_html([(page_title_of(p), p.name) for p in found if p.is_file()],
                                                         run_dir, summary, out, project,
                                                         headline(str(project / run_dir))))
    return written


ANN_WARNED_ENV = "RETCONF_UNHASHED_ANN_WARNED"  # set for the kernels: the command warned already


def check_annotation_files(metadata_files: list[Path]) -> list[Path]:
    """Check every dump's annotation file against its recorded hash before any page runs
    (:func:`analysis.inputs.io.annotation_file`); return the dumps that record no hash (warned once).

    Raises:
        ReportError: naming the first annotation file that is missing, changed or another.
    """
    from analysis.inputs.io import ANN_HASH_FIELD, DumpError, annotation_file

    unchecked = []
    for meta_file in metadata_files:
        try:
            meta = json.loads(meta_file.read_text())
            annotation_file(meta, meta_file)
        except DumpError as e:
            raise ReportError(str(e)) from e
        except (OSError, json.JSONDecodeError):
            continue  # an unreadable metadata.json is named by the page that loads the dump
        if ANN_HASH_FIELD not in meta:
            unchecked.append(meta_file)
    return unchecked


def _run_pages(pages: list[tuple[Path, dict]], out: Path, show_code: bool, jobs: int | None, digest: str,
               note_of, quiet_unhashed: bool = False, metadata_files: Sequence[Path] = (),
               memory_gb: float | None = None, explorer: Callable[[], Report | None] | None = None) -> list[Report]:
    """Execute each (notebook, parameters) into ``out`` unless its page records the same inputs
    fingerprint (``digest``: :func:`run_digest`); ``note_of(notebook)`` is the HTML note under
    its index link. ``jobs`` None: one page per core, a page started beside the running ones only
    where their estimated peaks fit together (:func:`memory_budget`, :func:`next_page`; from the
    largest of the dumps whose ``metadata_files`` are given; ``memory_gb``: the budget instead of
    80 % of the available memory, also with ``jobs``).
    ``explorer``: the explorer page's task (:func:`explorer_report` with its arguments, picklable),
    run after the pages, or beside the last ones when several run at once. Returns the pages in
    the order given, then the explorer's, if any."""
    from tqdm import tqdm

    from .progress import progress

    out.mkdir(parents=True, exist_ok=True)
    for tmp in out.glob(".*.html.*.tmp"):  # left by a run killed in the middle of a write
        tmp.unlink()
    written: dict[Path, Report] = {}
    todo = []
    for path, given in pages:
        parameters = notebook_parameters(path, given)  # a batch page never starts live widgets
        fp = inputs_fingerprint(path, parameters, show_code, digest)
        target = out / f"{path.stem}.html"
        if report_fingerprint(target) == fp:
            tqdm.write(f"{target}: up to date with its inputs, kept")
            written[path] = Report(target, True)
        else:
            todo.append((path, parameters, fp))
    budget, estimate, rows = None, {path: 0.0 for path, _, _ in todo}, 0
    if jobs is None or memory_gb is not None:  # --jobs alone: as many as asked
        jobs = jobs or max(1, min(os.cpu_count() or 1, len(todo)))
        if jobs > 1 and todo:  # the dumps' footers are read only when several pages could run at once
            rows = largest_dump_rows(list(metadata_files))
            estimate = {path: page_memory_gb(rows, path.stem) for path, _, _ in todo}
            budget, why = memory_budget([p.stem for p, _, _ in todo], jobs, rows, available_memory_gb(), memory_gb)
            if why:
                tqdm.write(why)
    EXPLORE = Path("explore")  # the explorer's place among the tasks (not a notebook)
    if explorer is not None:
        todo.append((EXPLORE, {}, ""))
        estimate[EXPLORE] = page_memory_gb(rows, "explore") if budget is not None else 0.0  # footers read once
    jobs = max(1, min(jobs, len(todo)))
    bar = progress(total=len(todo) - (explorer is not None), desc="reports", unit="notebook")

    def submit(pool, path: Path, parameters: dict, fp: str):  # noqa: ANN001, ANN202
        if path == EXPLORE:
            return pool.submit(explorer)
        return pool.submit(run_notebook, path, out, parameters, show_code, fp, note_of(path))

    def finished(path: Path, report: Report | None) -> None:
        if report is not None:
            written[path] = report
        if path != EXPLORE:
            bar.update()

    # The kernels inherit the environment. One BLAS thread in every kernel, however many pages run
    # at once: numpy's BLAS sums in another order with another thread count, which moved a page's
    # correlations in the last bits between a page regenerated alone and one run beside others.
    kernel_env = {**KERNEL_THREADS, **({ANN_WARNED_ENV: "1"} if quiet_unhashed else {})}
    previous = {k: os.environ.get(k) for k in kernel_env}
    os.environ.update(kernel_env)  # ANN_WARNED_ENV: each page would repeat the command's warnings
    try:
        with PageProgress(out):  # a line per running page: what it computes, dumps done, time left
            if jobs == 1:
                for path, parameters, fp in todo:
                    finished(path, explorer() if path == EXPLORE and explorer else
                             Report(run_notebook(path, out, parameters, show_code, fp, note_of(path)), False))
            else:  # notebooks side by side, each kernel with one thread (no oversubscribed cores)
                import multiprocessing
                from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

                # the workers inherit KERNEL_THREADS from this process's environment, set above
                with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
                    pending, running = list(todo), {}
                    while pending or running:
                        # start pages, in order, while a worker is free and the next that fits fits
                        while pending and len(running) < jobs:
                            i = next_page([estimate[t[0]] for t in pending], [estimate[p] for p in running.values()],
                                          budget)
                            if i is None:
                                break
                            path, parameters, fp = pending.pop(i)
                            running[submit(pool, path, parameters, fp)] = path
                        done, _ = wait(running, return_when=FIRST_COMPLETED)
                        for fut in done:
                            path = running.pop(fut)
                            result = fut.result()
                            finished(path, result if path == EXPLORE else Report(result, False))
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    bar.close()
    return [written[path] for path, _ in pages] + ([written[EXPLORE]] if EXPLORE in written else [])
