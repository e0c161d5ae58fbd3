"""The static explorer page of a run or of an input set of dumps (``REPORTS/explore.html``): an α slider and an NMS IoU
slider that redraw each detector's exactly re-scored AP and precision–recall curves, and a
candidate browser per image, both from data precomputed by :mod:`analysis.studies.explorer` and embedded
in the page. It needs no kernel and no network: Plotly's JavaScript is copied beside the page
(``plotly.min.js``), the images are embedded as JPEG data URIs. Drawing only.

Page weight: at most :data:`PAGE_BUDGET_BYTES` for the page (``plotly.min.js``, about 4.8 MB,
comes on top, shared by every page that uses it); the browser embeds at most
``analysis.studies.explorer.TOP_N`` + 3 · ``SURVIVORS_N`` candidates per image and detector and at most
``MAX_IMAGES`` images, each downscaled to :data:`IMAGE_PX` px.
"""
from __future__ import annotations

import base64
import html
import io
import json
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from .io import atomic_write_text

PAGE = "explore.html"
PLOTLY_JS = "plotly.min.js"
TITLE = "Explore: α and NMS sliders, candidate browser"
PAGE_BUDGET_BYTES = 8_000_000
IMAGE_PX = 256  # longest side of an embedded image
JPEG_QUALITY = 70


def plotly_js() -> Path:
    """The ``plotly.min.js`` the ``plotly`` Python package ships (no CDN)."""
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / PLOTLY_JS
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the plotly package ships no {PLOTLY_JS}")
    return path


def image_uri(path: str | Path | None, max_side: int = IMAGE_PX) -> str | None:
    """A JPEG data URI of the image at ``path`` downscaled to ``max_side`` px (None: no file)."""
    if not path or not Path(path).is_file():
        return None
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=JPEG_QUALITY)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _json_script(data: dict) -> str:
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


_STYLE = """
body{font-family:sans-serif;max-width:80em;margin:0 auto;padding:0 1em;line-height:1.4}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right}th:first-child,td:first-child{text-align:left}
.controls label{margin-right:1.2em;white-space:nowrap}.note{color:#555;font-size:0.9em}
#browser{display:flex;gap:1.5em;flex-wrap:wrap}#lists{max-width:22em;font-size:0.9em}
#lists a{cursor:pointer;color:#035;text-decoration:underline;margin-right:0.4em}
#canvas{border:1px solid #999;background:#eee}
"""

_SCRIPT = r"""
const D = JSON.parse(document.getElementById('explore-data').textContent);
const S = D.slider, B = D.browser, $ = id => document.getElementById(id);
const fmt = v => v.toFixed(4);
const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd'];
function cell(d, a, t) { return d.grid[a][t]; }
function redrawSlider() {
  const a = +$('alpha').value, t = +$('nms').value;
  $('alpha-value').textContent = S.alphas[a].toFixed(1);
  $('nms-value').textContent = S.nms_ious[t].toFixed(2);
  const traces = [];
  S.detectors.forEach((d, i) => {
    const c = cell(d, a, t);
    for (const m of ['AP', 'AP50', 'AP75', 'AR']) {
      const td = document.querySelector(`td[data-detector="${d.name}"][data-metric="${m}"]`);
      td.textContent = fmt(c[m]); td.dataset.value = c[m];
    }
    traces.push({x: S.recall, y: c.mean, name: `${d.name} (IoU .50:.95)`, mode: 'lines', line: {color: COLORS[i % 5]}});
    traces.push({x: S.recall, y: c.iou50, name: `${d.name} (IoU .50)`, mode: 'lines', line: {color: COLORS[i % 5], dash: 'dot'}});
  });
  Plotly.react('pr', traces, {margin: {t: 10, r: 10}, height: 380, xaxis: {title: {text: 'recall'}, range: [0, 1]},
    yaxis: {title: {text: 'precision'}, range: [0, 1.02]}, legend: {font: {size: 10}}}, {displaylogo: false, responsive: true});
}
// candidate browser
const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];  // viridis
function colour(v) {
  if (v === null || v === undefined) return '#888';
  const x = Math.min(Math.max(v, 0), 1) * (STOPS.length - 1), i = Math.min(Math.floor(x), STOPS.length - 2), f = x - i;
  const c = STOPS[i].map((s, k) => Math.round(s + f * (STOPS[i + 1][k] - s)));
  return `rgb(${c[0]},${c[1]},${c[2]})`;
}
let current = 0;
const NS = 'http://www.w3.org/2000/svg';
function el(name, attrs, parent) {
  const e = document.createElementNS(NS, name);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function visible(c, j) {
  const show = $('show').value, levels = [...document.querySelectorAll('.level:checked')].map(x => +x.value);
  if (show !== 'all' && !(c.r[j] & (1 << +show))) return false;
  return c.s[j] >= +$('min-score').value && c.i[j] >= +$('min-iou').value && levels.includes(c.v[j]);
}
function drawImage() {
  const im = B.images[current], det = $('detector').value, c = im.cands[det], svg = $('canvas');
  $('image').value = String(im.id);
  $('min-score-value').textContent = (+$('min-score').value).toFixed(2);
  $('min-iou-value').textContent = (+$('min-iou').value).toFixed(2);
  const scale = 512 / Math.max(im.width, im.height, 1);
  svg.setAttribute('width', im.width * scale); svg.setAttribute('height', im.height * scale);
  svg.setAttribute('viewBox', `0 0 ${im.width} ${im.height}`);
  svg.replaceChildren();
  if (im.src) el('image', {href: im.src, x: 0, y: 0, width: im.width, height: im.height}, svg);
  const by = $('color').value, key = {iou: 'i', cls: 'c', obj: 'o', score: 's'}[by];
  let shown = 0;
  const order = [...c.s.keys()].reverse();  // lowest deployed score first: the best boxes on top
  for (const j of order) {
    if (!visible(c, j)) continue;
    const [x1, y1, x2, y2] = c.b.slice(4 * j, 4 * j + 4);
    const r = el('rect', {class: 'cand', x: x1, y: y1, width: x2 - x1, height: y2 - y1, fill: 'none',
      stroke: colour(c[key][j]), 'stroke-width': (c.r[j] & 2) ? 1.6 : 0.8, 'vector-effect': 'non-scaling-stroke'}, svg);
    el('title', {}, r).textContent = `${B.classes[c.l[j]]} · P${c.v[j] + 3} · cls ${c.c[j]} · obj ${c.o[j]} · ` +
      `IoU ${c.i[j]} · deployed score ${c.s[j]} · survives: ${B.rules.filter((_, k) => c.r[j] & (1 << k)).join(', ') || 'none'}`;
    shown++;
  }
  for (const g of im.gt) {
    const r = el('rect', {class: 'gt', x: g[0], y: g[1], width: g[2] - g[0], height: g[3] - g[1], fill: 'none',
      stroke: '#ff2a2a', 'stroke-width': 2, 'stroke-dasharray': '4 2', 'vector-effect': 'non-scaling-stroke'}, svg);
    el('title', {}, r).textContent = `ground truth ${B.classes[g[4]]}${g[5] ? ' (crowd)' : ''}`;
  }
  $('count').textContent = shown;
  const n = im.counts[det];
  $('image-info').textContent = `image ${im.id} (${im.file || 'no file'}), ${n.num_gt} ground truths; ${det} deployed: ` +
    `${n.wrong} wrong survivor(s), ${n.missed} missed object(s)` + (im.src ? '' : ' — image file not found: boxes only');
}
function go(id) { const k = B.images.findIndex(im => im.id === id); if (k >= 0) { current = k; drawImage(); } }
function fillLists() {
  const det = $('detector').value, w = B.worst[det];
  for (const [key, target] of [['wrong', 'worst-wrong'], ['missed', 'worst-missed']]) {
    const box = $(target); box.replaceChildren();
    if (!w[key].length) box.textContent = 'none';
    for (const [id, n] of w[key]) {
      const a = document.createElement('a'); a.textContent = `${id} (${n})`; a.dataset.image = id;
      a.onclick = () => go(id); box.appendChild(a);
    }
  }
}
function init() {
  $('alpha').max = S.alphas.length - 1; $('nms').max = S.nms_ious.length - 1;
  $('alpha').value = D.start.alpha; $('nms').value = D.start.nms;
  $('alpha').oninput = redrawSlider; $('nms').oninput = redrawSlider;
  redrawSlider();
  for (const im of B.images) { const o = document.createElement('option'); o.value = im.id; o.textContent = im.id; $('image').appendChild(o); }
  $('image').onchange = () => go(+$('image').value);
  $('prev').onclick = () => { current = (current + B.images.length - 1) % B.images.length; drawImage(); };
  $('next').onclick = () => { current = (current + 1) % B.images.length; drawImage(); };
  $('detector').onchange = () => { fillLists(); drawImage(); };
  for (const id of ['show', 'color', 'min-score', 'min-iou']) $(id).oninput = drawImage;
  document.querySelectorAll('.level').forEach(x => x.onchange = drawImage);
  fillLists();
  if (B.images.length) drawImage();
}
init();
"""


def explorer_html(slider: dict, browser: dict, run_note: str = "", fingerprint: str = "") -> str:
    """The explorer page for :func:`analysis.studies.explorer.slider_data` and
    :func:`analysis.studies.explorer.browser_data` output (images' ``src``: data URIs or None)."""
    det_names = [d["name"] for d in slider["detectors"]]
    deployed = {d["name"]: d["deployed"] for d in slider["detectors"]}
    first = slider["detectors"][0]["deployed"] if slider["detectors"] else {"alpha": 0.4, "nms_iou": 0.5}
    start_alpha = min(range(len(slider["alphas"])), key=lambda i: abs(slider["alphas"][i] - (first["alpha"] or 0.4)))
    start_nms = min(range(len(slider["nms_ious"])), key=lambda i: abs(slider["nms_ious"][i] - first["nms_iou"]))
    rows = "".join(f"<tr><td>{html.escape(n)}</td>" + "".join(f'<td data-detector="{html.escape(n)}" data-metric="{m}"></td>'
                                                              for m in ("AP", "AP50", "AP75", "AR"))
                   + f"<td>{html.escape(d['rule'])}</td><td>{html.escape(deployed[n]['rule'])}, NMS IoU "
                   f"{deployed[n]['nms_iou']:g}</td></tr>" for n, d in zip(det_names, slider["detectors"]))
    caps = browser["caps"]
    options = "".join(f'<option value="{html.escape(d["name"])}"{" selected" if i == len(browser["detectors"]) - 1 else ""}>'
                      f'{html.escape(d["name"])}</option>' for i, d in enumerate(browser["detectors"]))
    rules = "".join(f'<option value="{i}">survivors: {html.escape(r)}</option>' for i, r in enumerate(browser["rules"]))
    formulas = "; ".join(f"{html.escape(d['name'])}: " + ", ".join(f"{html.escape(k)} = <code>{html.escape(v)}</code>"
                                                                   for k, v in d["rules"].items())
                         for d in browser["detectors"])
    levels = sorted({v for im in browser["images"] for c in im["cands"].values() for v in c["v"]}) or [0]
    level_boxes = "".join(f'<label><input type="checkbox" class="level" value="{v}" checked> P{v + 3}</label>' for v in levels)
    data = {"slider": slider, "browser": browser, "start": {"alpha": start_alpha, "nms": start_nms}}
    meta = f'<meta name="retconf-inputs" content="{fingerprint}">' if fingerprint else ""
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8">{meta}<title>{html.escape(TITLE)} · retconf</title>'
        f"<style>{_STYLE}</style><script src=\"{PLOTLY_JS}\"></script></head><body>"
        '<nav style="padding:0.5em 0"><a href="index.html">← all reports of this run</a></nav>'
        f"<h1>{html.escape(TITLE)}</h1>"
        f'<p class="note">{run_note} Everything on this page was computed when the reports were written and is '
        "embedded in it: it works offline, without a kernel. For any α or NMS threshold, live, use "
        "<code>analysis.views.widgets.live_widgets</code> in JupyterLab (notebook 02).</p>"
        "<h2>α and NMS IoU: AP and precision–recall, re-scored from the dumps</h2>"
        '<div class="controls"><label>α <input type="range" id="alpha" min="0" step="1"> <b id="alpha-value"></b></label>'
        '<label>NMS IoU threshold <input type="range" id="nms" min="0" step="1"> <b id="nms-value"></b></label></div>'
        '<table id="ap-table"><tr><th>detector</th><th>AP</th><th>AP50</th><th>AP75</th><th>AR</th>'
        f"<th>ranked by</th><th>deployed</th></tr>{rows}</table>"
        '<p class="note">Each cell is the COCO metric (0.50:0.95, 100 detections per image) of the dump\'s candidates '
        "re-scored with that α and NMS IoU under the detector's own inference settings (score threshold, per-level "
        f"top-k, per-image cap): the numbers <code>analysis.scoring.rescore</code> and <code>analysis.measures.coco</code> give. α "
        f"{slider['alphas'][0]:g} … {slider['alphas'][-1]:g} is the dump's candidate grid, so re-scoring equals live "
        "inference there. Curves: precision at 101 recall points, averaged over the classes (solid: also over "
        "the IoU thresholds 0.50:0.95, the curve whose mean is AP; dotted: IoU 0.50).</p>"
        '<div id="pr"></div>'
        "<h2>Candidate browser</h2>"
        f'<p class="note">Per image and detector the page holds the top {caps["top_n"]} candidates by the deployed score '
        f'and the top {caps["survivors_n"]} survivors of each ranking rule (NMS IoU {caps["nms_iou"]:g}, the dump\'s '
        f'settings), at most {caps["max_images"]} of the test set\'s {caps["images_in_test_set"]} images: the other '
        "candidates and survivors are not drawn. Red dashed: ground truth. Box colour: the chosen score (viridis, 0 "
        "dark … 1 yellow); thick: a survivor of the deployed ranking. Rules: "
        f"{formulas}. IoU: with the best ground truth of the box's class. Worst images count the whole test set under the "
        f"deployed ranking: wrong survivors (a kept box with IoU ≥ 0.5 whose suppressed rival on the same object fitted it "
        f"better by ≥ 0.05) and missed objects (no detection of the class at IoU ≥ {caps['missed_iou']:g}).</p>"
        '<div class="controls">'
        f'<label>detector <select id="detector">{options}</select></label>'
        f'<label>show <select id="show"><option value="all">all embedded candidates</option>{rules}</select></label>'
        '<label>colour by <select id="color"><option value="iou">IoU</option><option value="cls">cls</option>'
        '<option value="obj">obj</option><option value="score">deployed score</option></select></label><br>'
        '<label>deployed score ≥ <input type="range" id="min-score" min="0" max="1" step="0.05" value="0"> '
        '<b id="min-score-value"></b></label>'
        '<label>IoU ≥ <input type="range" id="min-iou" min="0" max="1" step="0.05" value="0"> <b id="min-iou-value"></b></label>'
        f"<span>levels {level_boxes}</span><br>"
        '<label>image <select id="image"></select></label><button id="prev">← previous</button> '
        '<button id="next">next →</button> <b><span id="count"></span> boxes shown</b></div>'
        '<p id="image-info"></p><div id="browser"><svg id="canvas" xmlns="http://www.w3.org/2000/svg"></svg>'
        '<div id="lists"><h3>Most wrong survivors</h3><div id="worst-wrong"></div>'
        '<h3>Most missed objects</h3><div id="worst-missed"></div></div></div>'
        f'<script id="explore-data" type="application/json">{_json_script(data)}</script>'
        f"<script>{_SCRIPT}</script></body></html>\n")


def explorer_inputs(run_dir: Path, seed: int, detectors: Sequence[str]) -> str:
    """SHA-256 over what the page is made from: the explorer's source, the ``analysis`` package's
    and each dump's ``metadata.json``."""
    import hashlib

    from analysis.inputs import runs

    from .report import analysis_inputs

    h = hashlib.sha256()
    for source in [Path(__file__), *analysis_inputs(suffixes=frozenset({".py"}))]:  # it reads no data file
        h.update(source.read_bytes())
    h.update(json.dumps({"seed": seed, "detectors": list(detectors)}).encode())
    summary = runs.load_summary(run_dir)
    for name in detectors:
        where = (Path(runs.input_entry(summary, seed, name)["path"]) if runs.input_kind(summary)
                 else runs.dump_dir(run_dir, seed, name))
        h.update((where / "metadata.json").read_bytes())
    return h.hexdigest()


def explorer_plan(full_run: Path, summary: dict, seed: int | None = None,
                  detectors: Sequence[str] | None = None) -> tuple[int, list[str]]:
    """(seed, detectors) the page shows: ``seed`` or the run's first; ``detectors`` or the
    paper's detectors whose dump of that seed exists. Of an input set (``retconf report`` on dumps),
    every detector given for that seed; of COCO results files, none (they hold no candidates)."""
    from analysis.inputs import runs

    seed = int(summary["seeds"][0]) if seed is None else seed
    if detectors is not None:
        return seed, list(detectors)
    kind = runs.input_kind(summary)
    if kind == "results":
        return seed, []
    if kind == "dumps":
        given = {(int(f["seed"]), f["model"]) for f in summary["inputs"]["files"]}
        return seed, [m for m in summary["detectors"] if (seed, m) in given]
    return seed, [m for m in runs.paper_detectors(summary)
                  if (runs.dump_dir(full_run, seed, m) / "metadata.json").is_file()]


class OnDemand(Mapping):
    """name → value, each made by its loader when asked for and not kept: the explorer's dumps,
    read one at a time by each pass over them (the slider grid, then the browser) instead of
    all held at once (a dump of COCO's 5,000 images holds tens of millions of candidate rows)."""

    def __init__(self, loaders: dict[str, Callable[[], Any]]):
        self.loaders = loaders

    def __getitem__(self, name: str) -> Any:
        return self.loaders[name]()

    def __iter__(self) -> Iterator[str]:
        return iter(self.loaders)

    def __len__(self) -> int:
        return len(self.loaders)


def write_explorer(run_dir: str | Path, out: str | Path, project: str | Path = ".", seed: int | None = None,
                   detectors: Sequence[str] | None = None, fingerprint: str = "") -> tuple[Path, dict]:
    """Write ``out/explore.html`` and ``out/plotly.min.js`` for the dumps of one seed and
    detectors (:func:`explorer_plan`). Relative paths (the run, the dumps' annotation files) are
    read from ``project``. Returns the page and ``{"seconds", "bytes", "images", "candidates"}``.

    Raises:
        ValueError: when the run has no dump to show.
    """
    from analysis.inputs import runs
    from analysis.measures.seeds import load_seed_dump
    from analysis.scoring.fast import one_torch_thread
    from analysis.studies import explorer as explore

    from .progress import progress

    start = time.perf_counter()
    project, out = Path(project), Path(out)
    full_run = project / run_dir
    summary = runs.load_summary(full_run)
    seed, names = explorer_plan(full_run, summary, seed, detectors)
    if not names:
        raise ValueError(f"{full_run}: no dump of the paper's detectors for seed {seed}: nothing to explore")
    dumps = OnDemand({m: partial(load_seed_dump, full_run, seed, m) for m in names})
    cells = len(dumps) * len(explore.ALPHAS) * len(explore.NMS_IOUS)
    with one_torch_thread(), progress(total=cells, desc="explore: α × NMS IoU grid", unit="cell") as bar:
        slider = explore.slider_data(dumps, project, done=bar.update)
    with one_torch_thread(), progress(total=len(dumps), desc="explore: candidate browser", unit="dump") as bar:
        browser = explore.browser_data(dumps, project, done=bar.update)
    for im in browser["images"]:
        im["src"] = image_uri(im.pop("path"))
    given = runs.input_kind(summary)
    what, spread = ("Input set", "page 02") if given else ("Run", "pages 02 and 04")
    note = (f"{what} <code>{html.escape(str(run_dir))}</code>, seed {seed} (one seed: the spread over seeds is on "
            f"{spread}), detectors " + ", ".join(f"<code>{html.escape(n)}</code>" for n in names) + ".")
    page = explorer_html(slider, browser, note, fingerprint)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(plotly_js(), out / PLOTLY_JS)
    target = out / PAGE
    atomic_write_text(target, page)
    return target, {"seconds": time.perf_counter() - start, "bytes": len(page.encode()),
                    "images": len(browser["images"]),
                    "candidates": sum(len(c["s"]) for im in browser["images"] for c in im["cands"].values())}
