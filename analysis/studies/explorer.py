"""Data for exploring dumps: an α × NMS-IoU grid of exactly re-scored COCO metrics with their
precision–recall curves, and per-image candidate sets for a candidate browser. The static
explorer page (:mod:`retconf.explore`) embeds what :func:`slider_data` and :func:`browser_data`
return (JSON-able dicts); :class:`LiveRescorer` re-scores live for the JupyterLab sliders
(:func:`analysis.views.widgets.live_widgets`). Computing only: the re-scoring is
:mod:`analysis.scoring.fast`, the metrics :func:`analysis.measures.coco.coco_precision` (or
:mod:`analysis.measures.coco_fast`), the drawing :mod:`retconf.explore` and
:mod:`analysis.views.widgets`.

Glossary: C candidate rows of a dump, M candidates NMS sees, D detections, T COCO IoU thresholds
(10), R recall points (101), K classes, A α values, N NMS IoU thresholds, I images.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..geometry.matching import ground_truth
from ..inputs.io import Dump
from ..measures.coco import RECALL, GroundTruth, ann_path, array_stats, dump_coco_truth, pr_curves
from ..measures.metrics import fusion_formula, oracle_candidates, wrong_survivors
from ..measures.quality import oracle_fusion
from ..scoring.fast import Prepared, fast_rescore, nms_inputs, nms_rows, one_torch_thread, prepare
from ..scoring.fusion import Fusion
from ..scoring.rescore import deployed_fusion, deployed_rule
from .tables import deployed_nms

# α 0.0 … 0.9: the dump's candidate grid (exact); at α = 1 the product ranks by obj alone and every
# label of an anchor ties
ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(10))
NMS_IOUS: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7)
GRID_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "AR")
# The ranking rules whose survivors the browser shows, as bits of a candidate's ``rules`` field.
RULES: tuple[str, ...] = ("cls only", "deployed", "IoU oracle")
TOP_N = 30  # candidates per image and detector: the top by the deployed score …
SURVIVORS_N = 10  # … and the top survivors of each rule (by that rule's score)
WORST_N = 20  # images per worst-image list
MAX_IMAGES = 300  # images in the browser (a larger test set keeps the worst ones, then by id)
MISSED_IOU = 0.5  # a ground truth is missed when no detection of its class covers it at this IoU


def alpha_rule(meta: dict, alpha: float) -> Fusion:
    """The ranking rule of the α slider for a dump: the product ``obj^α·cls^(1-α)`` in the dump's
    fusion order for a head with a quality score; ``cls`` (α does not apply) for one without."""
    f = deployed_fusion(meta)
    if f["mode"] == "cls":
        return Fusion("cls")
    return Fusion("pow", alpha, f["thr"], f["order"])


def grid_cell(gt: GroundTruth, dets: pd.DataFrame) -> dict:
    """One (α, NMS IoU) cell of the slider grid: :data:`GRID_METRICS` (full precision) and
    the :func:`pr_curves`; the values of :func:`evaluate`, computed by
    :func:`analysis.measures.coco.array_stats`."""
    return rows_cell(gt, dets["image_id"].to_numpy(np.int64), dets["label"].to_numpy(np.int64),
                     dets["score"].to_numpy(np.float64), dets[["x1", "y1", "x2", "y2"]].to_numpy(np.float64), dets)


def rows_cell(gt: GroundTruth, image: np.ndarray, label: np.ndarray, score: np.ndarray, boxes: np.ndarray,
              dets: pd.DataFrame | None = None) -> dict:
    """:func:`grid_cell` of D detections given as arrays: ``image``, ``label`` int64[D], ``score``
    float[D], ``boxes`` float[D, 4] (x1, y1, x2, y2; float32 as in a dump, or float64); ``dets``
    the same as a frame, when at hand, for the fallback."""
    stats, precision = array_stats(gt, image, label, score, boxes, dets)
    return {**{m: stats[m] for m in GRID_METRICS}, **pr_curves(precision)}


def detector_grid(prep: Prepared, meta: dict, gt: GroundTruth, alphas: Sequence[float] = ALPHAS,
                  nms_ious: Sequence[float] = NMS_IOUS, done: Callable[[int], None] | None = None
                  ) -> list[list[dict]]:
    """:func:`grid_cell` for each α (A rows) and NMS IoU (N columns) of one dump
    (:func:`alpha_rule`); a detector without a quality score is re-scored once per NMS IoU.
    ``done(n)`` is called after each α row with its N cells (progress)."""
    out: list[list[dict]] = []
    hints: dict = {}
    for a in alphas:
        rule = alpha_rule(meta, a)
        if rule.mode == "cls" and out:
            out.append(out[0])
            if done:
                done(len(nms_ious))
            continue
        rows, score = nms_inputs(prep, rule)
        row = []
        for t in nms_ious:
            kept, kscore = nms_rows(prep, rows, score, t, hints=hints)
            row.append(rows_cell(gt, prep.image[kept], prep.label[kept], kscore, prep.boxes[kept]))
        out.append(row)
        if done:
            done(len(nms_ious))
    return out


def slider_data(dumps: Mapping[str, Dump], root: str | Path | None = None, alphas: Sequence[float] = ALPHAS,
                nms_ious: Sequence[float] = NMS_IOUS, done: Callable[[int], None] | None = None) -> dict:
    """The α × NMS-IoU grid of every dump (name → :class:`analysis.inputs.io.Dump`), JSON-able:
    ``{"alphas": [A], "nms_ious": [N], "recall": [R], "detectors": [{"name", "rule", "deployed":
    {"alpha", "nms_iou"}, "alpha_applies", "grid": A × N :func:`grid_cell`}]}``. Relative
    annotation paths are read from ``root``. ``done(n)``: called as cells are finished, A · N
    per dump in all (progress)."""
    detectors = []
    for name, dump in dumps.items():
        prep, f = prepare(dump.candidates, dump.meta), deployed_fusion(dump.meta)
        applies = f["mode"] != "cls"
        detectors.append({
            "name": name, "alpha_applies": applies,
            "rule": "obj^α·cls^(1-α)" + (" (fused after the top-k)" if f["order"] == "after_topk" else "")
            if applies else "cls (no quality score: α does not apply)",
            "deployed": {"rule": fusion_formula(f), "alpha": f["alpha"] if f["mode"] == "pow" else None,
                         "nms_iou": prep.settings["nms_iou"]},
            "grid": detector_grid(prep, dump.meta, dump_coco_truth(dump, root), alphas, nms_ious, done)})
        del dump, prep  # ``dumps`` may read them on demand: one in memory at a time
    return {"alphas": list(alphas), "nms_ious": list(nms_ious), "recall": [round(float(r), 2) for r in RECALL],
            "detectors": detectors}


# ------------------------------------------------------------------ the candidate browser

def rule_fusions(meta: dict) -> dict[str, Fusion]:
    """The browser's ranking rules (:data:`RULES`) of a dump: ``cls`` alone, the deployed fusion
    and the IoU oracle's fusion (:func:`analysis.measures.quality.oracle_fusion`, scored on candidates
    whose ``obj`` is ``iou_any``)."""
    return {"cls only": Fusion("cls"), "deployed": deployed_rule(meta), "IoU oracle": Fusion.of(oracle_fusion(meta))}


def rule_survivors(dump: Dump) -> dict[str, pd.DataFrame]:
    """Each :data:`RULES` rule's detections (:func:`fast_rescore` rows with ``row`` and ``score``)
    under the dump's own inference settings. The oracle's are approximate: the dump holds the
    candidates the predicted scores' rules keep."""
    rules = rule_fusions(dump.meta)
    prep = prepare(dump.candidates, dump.meta)
    oracle = prepare(oracle_candidates(dump.candidates), dump.meta)
    return {name: fast_rescore(oracle if name == "IoU oracle" else prep, rule) for name, rule in rules.items()}


def image_counts(dump: Dump) -> pd.DataFrame:
    """Per image (one row each, by image id): ``num_gt``; ``wrong``, the deployed pipeline's wrong
    survivors (:func:`analysis.measures.metrics.wrong_survivors` as
    :func:`analysis.studies.tables.dump_wrong_survivors` counts them); ``missed``, ground truths that no
    detection of their class covers with IoU ≥ :data:`MISSED_IOU`."""

    pre, kept, uncapped, nms_iou = deployed_nms(dump)
    rows = wrong_survivors(pre, kept, nms_kept=uncapped, nms_iou=nms_iou)
    wrong = rows[rows["wrong"]].groupby("image_id").size()
    d = dump.detections
    hit = d[(d["gt_same"] >= 0) & (d["iou_same"] >= MISSED_IOU)].drop_duplicates(["image_id", "gt_same"])
    covered = hit.groupby("image_id").size()
    images = dump.images.set_index("image_id").sort_index()
    out = pd.DataFrame({"num_gt": images["num_gt"].astype(np.int64)})
    out["wrong"] = wrong.reindex(out.index, fill_value=0).astype(np.int64)
    out["missed"] = (out["num_gt"] - covered.reindex(out.index, fill_value=0)).astype(np.int64)
    return out.rename_axis("image_id").reset_index()


def worst_images(counts: pd.Series, n: int = WORST_N) -> list[list[int]]:
    """The ``n`` images with the largest positive count, as ``[image_id, count]`` pairs, largest
    first, ties by ascending image id (``counts``: indexed by image id)."""
    c = counts[counts > 0]
    frame = pd.DataFrame({"image_id": c.index.to_numpy(np.int64), "count": c.to_numpy(np.int64)})
    frame = frame.sort_values(["count", "image_id"], ascending=[False, True], kind="stable").head(n)
    return frame.to_numpy().tolist()


def embedded_rows(candidates: pd.DataFrame, deployed_score: np.ndarray, survivors: Mapping[str, pd.DataFrame],
                  top_n: int = TOP_N, survivors_n: int = SURVIVORS_N) -> pd.DataFrame:
    """The candidates the browser embeds, per image: the ``top_n`` by ``deployed_score``
    (float32[C]) and the first ``survivors_n`` survivors of each rule (in NMS order), each once.
    Returns those rows of ``candidates`` with ``score`` (the deployed score) and ``rules`` (bit i
    set when the pair survives rule i of :data:`RULES`, among all its survivors), ordered by
    image and descending deployed score."""
    image = candidates["image_id"].to_numpy(np.int64)
    order = np.lexsort((-deployed_score, image))  # by image, then by score (stable on ties)
    first = np.r_[True, image[order][1:] != image[order][:-1]] if len(order) else np.zeros(0, bool)
    pos = np.arange(len(order)) - np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
    keep = np.zeros(len(candidates), bool)
    keep[order[pos < top_n]] = True
    bits = np.zeros(len(candidates), np.int64)
    for i, name in enumerate(RULES):
        s = survivors[name]
        bits[s["row"].to_numpy()] |= 1 << i
        keep[s.groupby("image_id", sort=False).head(survivors_n)["row"].to_numpy()] = True
    rows = np.flatnonzero(keep)
    out = candidates.iloc[rows].assign(score=deployed_score[rows], rules=bits[rows])
    return out.sort_values(["image_id", "score"], ascending=[True, False], kind="stable")


def _columns(frame: pd.DataFrame) -> dict:
    """One image's embedded candidates as compact columns (boxes to 0.1 px, scores to 0.001;
    ``o`` None where the head has no quality score)."""
    r3 = lambda c: np.round(frame[c].to_numpy(np.float64), 3).tolist()  # noqa: E731
    obj = frame["obj"].to_numpy(np.float64)
    return {"b": np.round(frame[["x1", "y1", "x2", "y2"]].to_numpy(np.float64), 1).ravel().tolist(),
            "l": frame["label"].astype(int).tolist(), "v": frame["level"].astype(int).tolist(),
            "c": r3("cls"), "o": [None if np.isnan(v) else round(float(v), 3) for v in obj],
            "i": r3("iou_same"), "s": r3("score"), "r": frame["rules"].astype(int).tolist()}


def image_records(ann_file: str | Path) -> dict[int, dict]:
    """Image id → ``{"file_name", "width", "height"}`` of a COCO annotation file."""
    data = json.loads(Path(ann_file).read_text())
    return {int(i["id"]): {"file_name": i["file_name"], "width": int(i["width"]), "height": int(i["height"])}
            for i in data["images"]}


def image_dir(ann_file: str | Path) -> Path:
    """Where a COCO-layout dataset keeps an annotation file's images: ``annotations/instances_<split>.json``
    → ``<split>/`` beside ``annotations/`` (COCO 2017 and the embedded dataset)."""
    ann_file = Path(ann_file)
    return ann_file.parent.parent / ann_file.stem.removeprefix("instances_")


def browser_images(counts: Mapping[str, pd.DataFrame], image_ids: Sequence[int], max_images: int = MAX_IMAGES,
                   worst_n: int = WORST_N) -> list[int]:
    """The images the browser holds, ascending: all when they are at most ``max_images``, else
    each detector's worst (:func:`worst_images` by wrong survivors and by missed objects), then
    the rest by ascending id, up to ``max_images``."""
    ids = sorted(int(i) for i in image_ids)
    if len(ids) <= max_images:
        return ids
    chosen: list[int] = []
    for c in counts.values():
        s = c.set_index("image_id")
        for col in ("wrong", "missed"):
            chosen += [i for i, _ in worst_images(s[col], worst_n) if i not in chosen]
    chosen += [i for i in ids if i not in set(chosen)]
    return sorted(chosen[:max_images])


def browser_data(dumps: Mapping[str, Dump], root: str | Path | None = None, top_n: int = TOP_N,
                 survivors_n: int = SURVIVORS_N, worst_n: int = WORST_N, max_images: int = MAX_IMAGES,
                 done: Callable[[int], None] | None = None) -> dict:
    """The candidate browser's data for dumps (name → :class:`analysis.inputs.io.Dump`) of one test set:
    ``{"detectors": [{"name", "rules": {rule: formula}}], "rules": RULES, "caps": {...},
    "images": [{"id", "file", "path", "width", "height", "gt": [[x1, y1, x2, y2, label, crowd]],
    "counts": {name: {"wrong", "missed", "num_gt"}}, "cands": {name: columns}}],
    "worst": {name: {"wrong": [[id, n]], "missed": [[id, n]]}}, "classes": [K]}``. ``path`` is the
    image file (None when it is not on disk); candidates are capped per image and detector
    (:func:`embedded_rows`). Each dump is read once, in one pass, and let go before the next
    (``dumps`` may read them on demand: one in memory at a time); ``done(1)`` after each."""
    counts: dict[str, pd.DataFrame] = {}
    embedded: dict[str, pd.DataFrame] = {}
    detectors = []
    first: dict = {}
    for name, dump in dumps.items():
        if not first:
            first = {"meta": dump.meta, "ann": ann_path(dump, root), "ids": dump.images["image_id"].tolist(),
                     "nms_iou": prepare(dump.candidates.iloc[:0], dump.meta).settings["nms_iou"]}
        counts[name] = image_counts(dump)
        prep = prepare(dump.candidates, dump.meta)
        rule = deployed_rule(dump.meta)
        deployed = rule.scores(prep.cls, prep.obj).numpy().astype(np.float32, copy=False)
        embedded[name] = embedded_rows(dump.candidates, deployed, rule_survivors(dump), top_n, survivors_n)
        rules = {n: fusion_formula(f.as_dict()) + (" with obj := IoU_any" if n == "IoU oracle" else "")
                 for n, f in rule_fusions(dump.meta).items()}
        detectors.append({"name": name, "rules": rules})
        del dump, prep, deployed
        if done:
            done(1)
    ann, meta = first["ann"], first["meta"]
    gt = ground_truth(ann, meta["classes"], meta.get("cat_ids"))
    records, folder = image_records(ann), image_dir(ann)
    ids = browser_images(counts, first["ids"], max_images, worst_n)
    wanted = set(ids)
    per = {name: {int(i): _columns(g) for i, g in rows[rows["image_id"].isin(wanted)].groupby("image_id", sort=False)}
           for name, rows in embedded.items()}
    by_image = {int(i): g for i, g in gt.groupby("image_id", sort=False)}
    empty: dict[str, list] = {"b": [], "l": [], "v": [], "c": [], "o": [], "i": [], "s": [], "r": []}
    images = []
    for i in ids:
        rec = records.get(i, {"file_name": None, "width": 0, "height": 0})
        path = folder / rec["file_name"] if rec["file_name"] else None
        g = by_image.get(i)
        images.append({
            "id": i, "file": rec["file_name"], "path": str(path) if path is not None and path.is_file() else None,
            "width": rec["width"], "height": rec["height"],
            "gt": [] if g is None else [[round(float(r.x1), 1), round(float(r.y1), 1), round(float(r.x2), 1),
                                         round(float(r.y2), 1), int(r.label), int(r.iscrowd)] for r in g.itertuples()],
            "counts": {n: {k: int(v) for k, v in c.set_index("image_id").loc[i].items()} for n, c in counts.items()},
            "cands": {n: per[n].get(i, empty) for n in per}})
    return {"detectors": detectors, "rules": list(RULES), "classes": list(meta["classes"]),
            "caps": {"top_n": top_n, "survivors_n": survivors_n, "worst_n": worst_n, "max_images": max_images,
                     "images_in_test_set": len(first["ids"]), "missed_iou": MISSED_IOU,
                     "nms_iou": first["nms_iou"]},
            "images": images,
            "worst": {n: {col: worst_images(c.set_index("image_id")[col], worst_n) for col in ("wrong", "missed")}
                      for n, c in counts.items()}}


# ------------------------------------------------------------------ live in JupyterLab

class LiveRescorer:
    """Re-scores dumps (name → :class:`analysis.inputs.io.Dump`) for any α and NMS IoU:
    :meth:`update` returns each detector's :func:`grid_cell` and how long it took."""

    def __init__(self, dumps: Mapping[str, Any], root: str | Path | None = None):
        self.dumps = dict(dumps)
        self.preps = {n: prepare(d.candidates, d.meta) for n, d in self.dumps.items()}
        self.gts = {n: dump_coco_truth(d, root) for n, d in self.dumps.items()}
        self._cache: dict = {}
        self._selected: dict = {}  # (name, rule) -> select()'s output, reused by a move of NMS IoU alone
        self._hints: dict = {n: {} for n in self.dumps}  # name -> nms_rows' per-image prefix lengths

    def update(self, alpha: float, nms_iou: float) -> tuple[dict[str, dict], float]:
        """(name → :func:`grid_cell` at ``alpha`` and ``nms_iou``, seconds spent); a detector
        without a quality score is re-scored once per NMS IoU (α does not apply)."""
        start = time.perf_counter()
        out = {}
        with one_torch_thread():
            out = self._update(alpha, nms_iou)
        return out, time.perf_counter() - start

    def _update(self, alpha: float, nms_iou: float) -> dict[str, dict]:
        now = round(nms_iou, 6)
        self._cache = {k: v for k, v in self._cache.items() if k[1].mode == "cls" or (k[1].alpha, k[2]) == (alpha, now)}
        rules = {name: alpha_rule(dump.meta, alpha) for name, dump in self.dumps.items()}
        todo = [n for n, r in rules.items() if (n, r, now) not in self._cache]
        self._selected = {k: v for k, v in self._selected.items() if k[1].mode == "cls" or k[1] in rules.values()}
        if len(todo) > 1:  # two detectors side by side: the sorts, numpy and torch release the GIL
            with ThreadPoolExecutor(2) as pool:
                cells = list(pool.map(lambda n: self._cell(n, rules[n], nms_iou), todo))
        else:
            cells = [self._cell(n, rules[n], nms_iou) for n in todo]
        self._cache.update({(n, rules[n], now): c for n, c in zip(todo, cells)})
        return {n: self._cache[(n, r, now)] for n, r in rules.items()}

    def _cell(self, name: str, rule: Fusion, nms_iou: float) -> dict:
        """:func:`rows_cell` of one detector re-scored with ``rule`` at ``nms_iou``."""
        prep = self.preps[name]
        if (name, rule) not in self._selected:
            self._selected[(name, rule)] = nms_inputs(prep, rule)
        rows, score = self._selected[(name, rule)]
        kept, kscore = nms_rows(prep, rows, score, nms_iou, hints=self._hints[name])
        return rows_cell(self.gts[name], prep.image[kept], prep.label[kept], kscore, prep.boxes[kept])
