"""Data for exploring dumps: an α × NMS-IoU grid of exactly re-scored COCO metrics with their
precision–recall curves, and per-image candidate sets for a candidate browser. The static
explorer page (:mod:`retconf.explore`) embeds what :func:`slider_data` and :func:`browser_data`
return (JSON-able dicts); :func:`live_widgets` re-scores live in JupyterLab. Computing only;
drawing lives in :mod:`retconf.explore` (the page) and in :func:`live_widgets`'s figure.

Re-scoring is :mod:`analysis.rescore`'s procedure (fuse, select, class-aware NMS, top
``max_per_img``), made fast and kept exact: NMS of an image runs on the prefix of its candidates,
in the order mmcv's NMS sorts them (ties included), that holds its first ``max_per_img``
survivors (greedy NMS decides a box from the boxes above it alone), with the box offsets mmcv's
``batched_nms`` computes over the whole image. The
tests check that the detections equal :func:`analysis.rescore.rescore`'s and the metrics
:func:`analysis.coco.coco_ap`'s.

Glossary: C candidate rows of a dump, M candidates NMS sees, D detections, T COCO IoU thresholds
(10), R recall points (101), K classes, A α values, N NMS IoU thresholds, I images.
"""
from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np
import pandas as pd
import torch

from . import coco_fast
from .coco import COCO_METRICS
from .fusion import Fusion
from .matching import ground_truth, label_cat_ids
from .metrics import fusion_formula, oracle_candidates, wrong_survivors
from .nms import batched_nms, nms_indices
from .quality import oracle_fusion
from .rescore import deployed_fusion, deployed_rule, inference_kwargs, nms_per_image, select_candidates, select_rows

# α 0.0 … 0.9: the dump's candidate grid (exact); at α = 1 the product ranks by obj alone and every
# label of an anchor ties
ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(10))
NMS_IOUS: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7)
GRID_METRICS: tuple[str, ...] = ("AP", "AP50", "AP75", "AR")
RECALL = np.linspace(0.0, 1.0, 101)  # COCO's recall points
# The ranking rules whose survivors the browser shows, as bits of a candidate's ``rules`` field.
RULES: tuple[str, ...] = ("cls only", "deployed", "IoU oracle")
TOP_N = 30  # candidates per image and detector: the top by the deployed score …
SURVIVORS_N = 10  # … and the top survivors of each rule (by that rule's score)
WORST_N = 20  # images per worst-image list
MAX_IMAGES = 300  # images in the browser (a larger test set keeps the worst ones, then by id)
MISSED_IOU = 0.5  # a ground truth is missed when no detection of its class covers it at this IoU


# ------------------------------------------------------------------ fast, exact re-scoring

@dataclass(frozen=True)
class Prepared:
    """A dump's candidates as arrays for repeated re-scoring (:func:`prepare`).

    ``cls``, ``obj`` (Tensor[C], obj NaN → 1 as :func:`analysis.rescore.select_candidates`),
    ``image``, ``level``, ``label`` (int64[C]), ``boxes`` (float32[C, 4]), ``big`` (bool[C]:
    wider and taller than ``min_bbox_size``, all True when it is negative), ``boxmax`` (float32[C],
    each box's largest coordinate), ``settings`` (the dump's
    :func:`analysis.rescore.inference_kwargs`) and the ``candidates`` themselves."""

    candidates: pd.DataFrame
    cls: torch.Tensor
    obj: torch.Tensor
    image: np.ndarray
    level: np.ndarray
    label: np.ndarray
    boxes: np.ndarray
    big: np.ndarray
    boxmax: np.ndarray
    settings: dict


def prepare(candidates: pd.DataFrame, meta: dict) -> Prepared:
    """:class:`Prepared` arrays of ``candidates`` (C rows) under the inference settings of
    ``meta`` (a dump's metadata)."""
    settings = inference_kwargs(meta)
    boxes = candidates[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    mbs = settings["min_bbox_size"]
    big = (w > mbs) & (h > mbs) if mbs >= 0 else np.ones(len(boxes), bool)
    return Prepared(candidates, torch.tensor(candidates["cls"].to_numpy(np.float32)),
                    torch.tensor(np.nan_to_num(candidates["obj"].to_numpy(np.float32), nan=1.0)),
                    candidates["image_id"].to_numpy(np.int64), candidates["level"].to_numpy(np.int64),
                    candidates["label"].to_numpy(np.int64), boxes, big, boxes.max(1), settings)


def select(prep: Prepared, rule: Fusion) -> tuple[np.ndarray, np.ndarray]:
    """The candidates NMS sees under ``rule``: row numbers int64[M] into ``prep.candidates``
    (ordered by image, level, then as the head passes them) and their fused scores float32[M];
    the rows of :func:`analysis.rescore.select_candidates`."""
    s = prep.settings
    if s["selection"] != "pairs":
        frame = select_candidates(prep.candidates.assign(_row=np.arange(len(prep.candidates))), rule, s["score_thr"],
                                  s["nms_pre"], s["min_bbox_size"], s["selection"])
        return frame["_row"].to_numpy(np.int64), frame["score"].to_numpy(np.float32)
    score = rule.scores(prep.cls, prep.obj).numpy().astype(np.float32, copy=False)
    rank = score if rule.order == "before_topk" else prep.cls.numpy()
    rows = select_rows(prep.image, prep.level, rank, s["score_thr"], s["nms_pre"])
    rows = rows[prep.big[rows]]
    return rows, score[rows]


def _first_survivors(boxes_at: Callable[[np.ndarray], np.ndarray], score: np.ndarray, nms_iou: float, cap: int,
                     start: Optional[int] = None) -> tuple[np.ndarray, int]:
    """The first ``cap`` survivors of greedy NMS over one image's M boxes with scores float32[M]
    (``boxes_at(positions)``: those boxes, float32[n, 4], offset per class as ``batched_nms``
    does; only the prefix NMS needs is made): positions into the M boxes,
    in NMS order, and the length of the prefix that held them (all M when fewer survive). The
    boxes are ordered as mmcv's NMS orders them (torch's sort, which breaks ties its own way),
    and NMS runs on the top ``start`` (default 4·cap) of that order (more, as the survival rate
    so far suggests and at most 4×, until ``cap`` survive or all are in), ranked by position so
    that no tie is broken again: a box's fate depends only on the boxes above it, so any
    ``start`` gives the same survivors."""
    order = torch.sort(torch.from_numpy(score), 0, True).indices.numpy()  # as mmcv's nms_cpu sorts
    n = len(order)
    m = min(n, max(cap, 4 * cap if start is None else start))
    while True:
        top = order[:m]
        keep = nms_indices(torch.from_numpy(boxes_at(top)), torch.arange(m, 0, -1, dtype=torch.float32), nms_iou).numpy()
        if len(keep) >= cap or m == n:
            keep = keep[:cap]
            return top[keep], int(keep[-1]) + 1 if len(keep) == cap else n
        m = min(n, 4 * m, max(m + cap, int(1.2 * m * cap / len(keep)) + 8))


def nms_rows(prep: Prepared, rows: np.ndarray, score: np.ndarray, nms_iou: float,
             max_per_img: Optional[int] = -1, hints: Optional[dict] = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-image NMS of :func:`select`'s output, as :func:`analysis.rescore.nms_per_image` (mmcv
    ``batched_nms``, then the top ``max_per_img``): the surviving rows int64[D] (by image, then in
    NMS order) and their scores float32[D]. ``max_per_img`` -1: the dump's setting; None: no cap
    (then, and for an image of 10,000 boxes or more, ``batched_nms`` itself runs). Score voting
    goes through :func:`analysis.rescore.nms_per_image`. ``hints`` (image id → prefix length,
    updated in place): where each image's NMS starts (:func:`_first_survivors`), a little past
    the prefix the last call needed (else past what the images before needed); the result does
    not depend on it, only the time."""
    s = prep.settings
    cap = s["max_per_img"] if max_per_img == -1 else max_per_img
    if not len(rows):
        return rows, score
    if s["score_voting"] or cap is None:
        frame = prep.candidates.iloc[rows].assign(score=score, _row=rows)
        out = nms_per_image(frame, nms_iou, cap, s["score_voting"])
        return out["_row"].to_numpy(np.int64), out["score"].to_numpy(np.float32)
    image = prep.image[rows]
    starts = np.flatnonzero(np.r_[True, image[1:] != image[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    # batched_nms' class offsets, over each whole image: label · (max coordinate + 1), in float32
    tops = np.maximum.reduceat(prep.boxmax[rows], starts) + np.float32(1)
    kept, needs = [], []
    for a, b, top in zip(starts, ends, tops):
        seg = rows[a:b]
        if b - a >= 10_000:  # batched_nms' per-class loop
            _, keep = batched_nms(torch.from_numpy(prep.boxes[seg]), torch.from_numpy(score[a:b]),
                                  torch.from_numpy(prep.label[seg]), dict(type="nms", iou_threshold=nms_iou))
            kept.append(a + keep.numpy()[:cap])
        else:
            def boxes_at(pos: np.ndarray, seg: np.ndarray = seg, top: np.float32 = top) -> np.ndarray:
                r = seg[pos]
                return prep.boxes[r] + (prep.label[r].astype(np.float32) * top)[:, None]

            i = int(image[a])
            if hints is not None and i in hints:
                start = hints[i] + hints[i] // 5 + 8
            else:  # a little more than the images before needed
                start = int(1.2 * np.mean(needs[-32:])) + 8 if needs else None
            pos, need = _first_survivors(boxes_at, score[a:b], nms_iou, cap, start)
            needs.append(need)
            if hints is not None:
                hints[i] = need
            kept.append(a + pos)
    kept = np.concatenate(kept)
    return rows[kept], score[kept]


def fast_rescore(prep: Prepared, rule: Fusion, nms_iou: Optional[float] = None,
                 max_per_img: Optional[int] = -1) -> pd.DataFrame:
    """Detections of every image re-scored with ``rule`` and NMS at ``nms_iou`` (None: the dump's):
    the rows of :func:`analysis.rescore.rescore` (same candidates, same order, ``score`` the fused
    score) with ``row``, the candidate's row number in ``prep.candidates``."""
    rows, score = select(prep, rule)
    kept, kscore = nms_rows(prep, rows, score, prep.settings["nms_iou"] if nms_iou is None else nms_iou, max_per_img)
    return prep.candidates.iloc[kept].assign(score=kscore, row=kept).reset_index(drop=True)


# ------------------------------------------------------------------ COCO metrics and PR curves

@dataclass(frozen=True)
class GroundTruth:
    """A loaded COCO annotation file (faster-coco-eval ``COCO``), the category id of each label
    (int64[K]) and the file arranged for :func:`analysis.coco_fast.evaluate`, for evaluating many
    detection sets (:func:`evaluate`, :func:`grid_cell`)."""

    coco: Any
    cat_ids: np.ndarray
    truth: coco_fast.Truth


def coco_ground_truth(ann_file: str | Path, classes: Optional[Sequence[str]] = None,
                      cat_ids: Optional[Sequence[int]] = None) -> GroundTruth:
    """:class:`GroundTruth` of ``ann_file`` with the project's label rule
    (:func:`analysis.matching.label_cat_ids`; ``cat_ids``: a dump's ``meta['cat_ids']``)."""
    from faster_coco_eval import COCO

    coco = COCO(str(ann_file))
    ids = np.asarray(label_cat_ids(coco.dataset["categories"], classes, cat_ids), np.int64)
    return GroundTruth(coco, ids, coco_fast.truth(coco, ids))


def ann_path(dump, root: Optional[str | Path] = None) -> Path:
    """A dump's annotation file, checked against the hash the dump recorded like every other
    reader of it (:meth:`analysis.io.Dump.ann_file`): a relative ``ann_file`` is taken relative to
    ``root`` when given, else as :func:`analysis.runs.run_path` finds it."""
    if root is None:
        return Path(dump.ann_file())
    from .io import annotation_file

    meta = dict(dump.meta, ann_file=str(Path(root) / dump.meta["ann_file"]))
    return Path(annotation_file(meta, dump.path / "metadata.json"))


def dump_ground_truth(dump, root: Optional[str | Path] = None) -> GroundTruth:
    """:func:`coco_ground_truth` of a dump's annotation file (:func:`ann_path`)."""
    return coco_ground_truth(ann_path(dump, root), dump.meta["classes"], dump.meta.get("cat_ids"))


def evaluate(gt: GroundTruth, dets: pd.DataFrame) -> tuple[dict, np.ndarray]:
    """COCO bbox metrics of ``dets`` (D rows: ``image_id``, ``label``, ``score``, box corners),
    the numbers :func:`analysis.coco.coco_ap` gives, and the precision array float64[T, R, K]
    (area all, 100 detections; -1 where a class has no ground truth)."""
    from faster_coco_eval import COCOeval_faster

    if dets.empty:
        return {n: 0.0 for n in COCO_METRICS}, np.full((10, len(RECALL), len(gt.cat_ids)), -1.0)
    b = dets[["x1", "y1", "x2", "y2"]].to_numpy(np.float64)
    arr = np.c_[dets["image_id"].to_numpy(np.float64), b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1],
                dets["score"].to_numpy(np.float64), gt.cat_ids[dets["label"].to_numpy()]]
    ev = COCOeval_faster(gt.coco, gt.coco.loadRes(arr), "bbox", print_function=lambda *a, **k: None)
    ev.params.imgIds = gt.coco.getImgIds()
    ev.params.catIds = [int(c) for c in gt.cat_ids]
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return ({n: float(v) for n, v in zip(COCO_METRICS, ev.stats[:12])},
            np.asarray(ev.eval["precision"], np.float64)[:, :, :, 0, -1])


def pr_curves(precision: np.ndarray) -> dict:
    """Precision at each of the R recall points, averaged over the classes with ground truth:
    ``"iou50"`` at IoU 0.5, ``"mean"`` over the T IoU thresholds 0.50:0.95 as well (the curve whose
    average is AP). Lists of R floats (None where no class has a value)."""
    def mean(p: np.ndarray, axes: tuple[int, ...]) -> list:
        valid = p > -1
        total, count = np.where(valid, p, 0.0).sum(axes), valid.sum(axes)
        return [round(float(t / c), 4) if c else None for t, c in zip(total, count)]

    return {"iou50": mean(precision[0], (1,)), "mean": mean(precision.transpose(1, 0, 2), (1, 2))}


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
    :func:`analysis.coco_fast.evaluate` (faster-coco-eval itself for detection sets too large
    for its arrays, :func:`analysis.coco_fast.fits`)."""
    return rows_cell(gt, dets["image_id"].to_numpy(np.int64), dets["label"].to_numpy(np.int64),
                     dets["score"].to_numpy(np.float64), dets[["x1", "y1", "x2", "y2"]].to_numpy(np.float64), dets)


def rows_cell(gt: GroundTruth, image: np.ndarray, label: np.ndarray, score: np.ndarray, boxes: np.ndarray,
              dets: Optional[pd.DataFrame] = None) -> dict:
    """:func:`grid_cell` of D detections given as arrays: ``image``, ``label`` int64[D], ``score``
    float[D], ``boxes`` float[D, 4] (x1, y1, x2, y2; float32 as in a dump, or float64); ``dets``
    the same as a frame, when at hand, for the fallback."""
    if len(image) and coco_fast.fits(gt.truth, len(image)):
        b = boxes.astype(np.float64)
        stats, precision = coco_fast.evaluate(gt.truth, image, gt.cat_ids[label], score.astype(np.float64),
                                              np.c_[b[:, :2], b[:, 2:] - b[:, :2]])
    else:
        if dets is None:
            dets = pd.DataFrame({"image_id": image, "label": label, "score": score,
                                 **{c: boxes[:, j] for j, c in enumerate(("x1", "y1", "x2", "y2"))}})
        stats, precision = evaluate(gt, dets)
    return {**{m: stats[m] for m in GRID_METRICS}, **pr_curves(precision)}


def detector_grid(prep: Prepared, meta: dict, gt: GroundTruth, alphas: Sequence[float] = ALPHAS,
                  nms_ious: Sequence[float] = NMS_IOUS) -> list[list[dict]]:
    """:func:`grid_cell` for each α (A rows) and NMS IoU (N columns) of one dump
    (:func:`alpha_rule`); a detector without a quality score is re-scored once per NMS IoU."""
    out: list[list[dict]] = []
    hints: dict = {}
    for a in alphas:
        rule = alpha_rule(meta, a)
        if rule.mode == "cls" and out:
            out.append(out[0])
            continue
        rows, score = select(prep, rule)
        row = []
        for t in nms_ious:
            kept, kscore = nms_rows(prep, rows, score, t, hints=hints)
            row.append(rows_cell(gt, prep.image[kept], prep.label[kept], kscore, prep.boxes[kept]))
        out.append(row)
    return out


def slider_data(dumps: Mapping[str, Any], root: Optional[str | Path] = None, alphas: Sequence[float] = ALPHAS,
                nms_ious: Sequence[float] = NMS_IOUS) -> dict:
    """The α × NMS-IoU grid of every dump (name → :class:`analysis.io.Dump`), JSON-able:
    ``{"alphas": [A], "nms_ious": [N], "recall": [R], "detectors": [{"name", "rule", "deployed":
    {"alpha", "nms_iou"}, "alpha_applies", "grid": A × N :func:`grid_cell`}]}``. Relative
    annotation paths are read from ``root``."""
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
            "grid": detector_grid(prep, dump.meta, dump_ground_truth(dump, root), alphas, nms_ious)})
    return {"alphas": list(alphas), "nms_ious": list(nms_ious), "recall": [round(float(r), 2) for r in RECALL],
            "detectors": detectors}


# ------------------------------------------------------------------ the candidate browser

def rule_fusions(meta: dict) -> dict[str, Fusion]:
    """The browser's ranking rules (:data:`RULES`) of a dump: ``cls`` alone, the deployed fusion
    and the IoU oracle's fusion (:func:`analysis.quality.oracle_fusion`, scored on candidates
    whose ``obj`` is ``iou_any``)."""
    return {"cls only": Fusion("cls"), "deployed": deployed_rule(meta), "IoU oracle": Fusion.of(oracle_fusion(meta))}


def rule_survivors(dump) -> dict[str, pd.DataFrame]:
    """Each :data:`RULES` rule's detections (:func:`fast_rescore` rows with ``row`` and ``score``)
    under the dump's own inference settings. The oracle's are approximate: the dump holds the
    candidates the predicted scores' rules keep."""
    rules = rule_fusions(dump.meta)
    prep = prepare(dump.candidates, dump.meta)
    oracle = prepare(oracle_candidates(dump.candidates), dump.meta)
    return {name: fast_rescore(oracle if name == "IoU oracle" else prep, rule) for name, rule in rules.items()}


def image_counts(dump) -> pd.DataFrame:
    """Per image (one row each, by image id): ``num_gt``; ``wrong``, the deployed pipeline's wrong
    survivors (:func:`analysis.metrics.wrong_survivors` as
    :func:`analysis.tables.dump_wrong_survivors` counts them); ``missed``, ground truths that no
    detection of their class covers with IoU ≥ :data:`MISSED_IOU`."""
    from .tables import deployed_nms

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


def browser_data(dumps: Mapping[str, Any], root: Optional[str | Path] = None, top_n: int = TOP_N,
                 survivors_n: int = SURVIVORS_N, worst_n: int = WORST_N, max_images: int = MAX_IMAGES) -> dict:
    """The candidate browser's data for dumps (name → :class:`analysis.io.Dump`) of one test set:
    ``{"detectors": [{"name", "rules": {rule: formula}}], "rules": RULES, "caps": {...},
    "images": [{"id", "file", "path", "width", "height", "gt": [[x1, y1, x2, y2, label, crowd]],
    "counts": {name: {"wrong", "missed", "num_gt"}}, "cands": {name: columns}}],
    "worst": {name: {"wrong": [[id, n]], "missed": [[id, n]]}}, "classes": [K]}``. ``path`` is the
    image file (None when it is not on disk); candidates are capped per image and detector
    (:func:`embedded_rows`)."""
    first = next(iter(dumps.values()))
    ann = ann_path(first, root)
    gt = ground_truth(ann, first.meta["classes"], first.meta.get("cat_ids"))
    records, folder = image_records(ann), image_dir(ann)
    counts = {name: image_counts(d) for name, d in dumps.items()}
    ids = browser_images(counts, first.images["image_id"].tolist(), max_images, worst_n)
    wanted = set(ids)
    per: dict[str, dict[int, dict]] = {}
    detectors = []
    for name, dump in dumps.items():
        cands = dump.candidates
        prep = prepare(cands, dump.meta)
        rule = deployed_rule(dump.meta)
        deployed = rule.scores(prep.cls, prep.obj).numpy().astype(np.float32, copy=False)
        rows = embedded_rows(cands, deployed, rule_survivors(dump), top_n, survivors_n)
        rows = rows[rows["image_id"].isin(wanted)]
        per[name] = {int(i): _columns(g) for i, g in rows.groupby("image_id", sort=False)}
        detectors.append({"name": name, "rules": {n: fusion_formula(f.as_dict()) + (" with obj := IoU_any" if n == "IoU oracle" else "")
                                                  for n, f in rule_fusions(dump.meta).items()}})
    by_image = {int(i): g for i, g in gt.groupby("image_id", sort=False)}
    empty = {"b": [], "l": [], "v": [], "c": [], "o": [], "i": [], "s": [], "r": []}
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
            "cands": {n: per[n].get(i, empty) for n in dumps}})
    return {"detectors": detectors, "rules": list(RULES), "classes": list(first.meta["classes"]),
            "caps": {"top_n": top_n, "survivors_n": survivors_n, "worst_n": worst_n, "max_images": max_images,
                     "images_in_test_set": int(len(first.images)), "missed_iou": MISSED_IOU,
                     "nms_iou": prepare(first.candidates.iloc[:0], first.meta).settings["nms_iou"]},
            "images": images,
            "worst": {n: {col: worst_images(c.set_index("image_id")[col], worst_n) for col in ("wrong", "missed")}
                      for n, c in counts.items()}}


# ------------------------------------------------------------------ live in JupyterLab

class one_torch_thread:
    """Context manager: torch on one thread inside (small tensors gain nothing from more, and on
    a busy machine its thread pool is many times slower), the previous count restored after."""

    def __enter__(self) -> "one_torch_thread":
        import torch

        self.threads = torch.get_num_threads()
        torch.set_num_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.threads)



class LiveRescorer:
    """Re-scores dumps (name → :class:`analysis.io.Dump`) for any α and NMS IoU:
    :meth:`update` returns each detector's :func:`grid_cell` and how long it took."""

    def __init__(self, dumps: Mapping[str, Any], root: Optional[str | Path] = None):
        self.dumps = dict(dumps)
        self.preps = {n: prepare(d.candidates, d.meta) for n, d in self.dumps.items()}
        self.gts = {n: dump_ground_truth(d, root) for n, d in self.dumps.items()}
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
            self._selected[(name, rule)] = select(prep, rule)
        rows, score = self._selected[(name, rule)]
        kept, kscore = nms_rows(prep, rows, score, nms_iou, hints=self._hints[name])
        return rows_cell(self.gts[name], prep.image[kept], prep.label[kept], kscore, prep.boxes[kept])


def live_widgets(dumps: Mapping[str, Any], root: Optional[str | Path] = None, alpha: float = 0.4, nms_iou: float = 0.5) -> Any:
    """An ipywidgets box for JupyterLab: α and NMS IoU sliders (any value, step 0.01), each detector's
    AP, AP50, AP75 and AR re-scored from its dump on every move (:class:`LiveRescorer`), the time
    the move took, and the precision–recall curves (matplotlib)."""
    import ipywidgets as w
    import matplotlib.pyplot as plt
    from IPython.display import display

    live = LiveRescorer(dumps, root)
    a = w.FloatSlider(value=alpha, min=0.0, max=0.99, step=0.01, description="α", continuous_update=False)
    t = w.FloatSlider(value=nms_iou, min=0.3, max=0.9, step=0.01, description="NMS IoU", continuous_update=False)
    table, plot = w.HTML(), w.Output()

    def redraw(*_: Any) -> None:
        cells, seconds = live.update(a.value, t.value)
        rows = "".join(f"<tr><td>{n}</td>" + "".join(f"<td>{c[m]:.4f}</td>" for m in GRID_METRICS) + "</tr>"
                       for n, c in cells.items())
        table.value = (f"<table><tr><th>detector</th>{''.join(f'<th>{m}</th>' for m in GRID_METRICS)}</tr>{rows}"
                       f"</table><p>re-scored from the dumps in {seconds:.2f} s</p>")
        with plot:
            plot.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(6, 3.5))
            for n, c in cells.items():
                ax.plot(RECALL, [np.nan if v is None else v for v in c["mean"]], label=f"{n} (IoU .50:.95)")
            ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1))
            ax.legend(fontsize=8)
            display(fig)
            plt.close(fig)

    a.observe(redraw, "value")
    t.observe(redraw, "value")
    redraw()
    return w.VBox([w.HBox([a, t]), table, plot])
