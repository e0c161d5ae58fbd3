"""Re-scoring cached candidates under another fusion, with the inference-time NMS, and COCO
evaluation: α and fusion sweeps without re-running the detector.

Glossary: C candidate rows of one image (an (anchor, class) pair each), D detections.

The procedure mirrors ``QualityRetinaHead`` with ``order='before_topk'``: per level, fuse,
keep scores > ``score_thr``, keep the top ``nms_pre``; then mmcv's ``batched_nms`` over the
image and the top ``max_per_img``. With the deployed fusion it reproduces live inference.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pandas as pd


def fused_scores(cls: np.ndarray, obj: np.ndarray, mode: str, alpha: float, thr: float) -> np.ndarray:
    """Fusion of :mod:`retconf.fusion` on float arrays ``cls``, ``obj`` (shape [C])."""
    import torch

    from retconf.fusion import fuse_scores

    return fuse_scores(torch.tensor(cls), torch.tensor(obj), mode, alpha, thr).numpy()


def preselect(cands: pd.DataFrame, mode: str, alpha: float, thr: float, score_thr: float,
              nms_pre: int, min_bbox_size: float = 0.0, order: str = "before_topk") -> pd.DataFrame:
    """The candidates NMS sees, for all images at once: fused ``score`` > ``score_thr``, top
    ``nms_pre`` per (image, level), boxes larger than ``min_bbox_size`` (as mmdet's
    ``_bbox_post_process``). Rows come out ordered by image, level and descending rank score.

    ``order='after_topk'`` is mmdet's order (``QualityRetinaHead`` ``fusion.order``): threshold
    and top-k on ``cls``, then fuse the survivors. Exact on a dump, whose candidate grid holds
    the ``cls`` selection."""
    if order not in ("before_topk", "after_topk"):
        raise ValueError(f"order {order!r} is not 'before_topk' or 'after_topk'")
    score = fused_scores(cands["cls"].to_numpy(), np.nan_to_num(cands["obj"].to_numpy(), nan=1.0),
                         mode, alpha, thr).astype(np.float32)
    rank = score if order == "before_topk" else cands["cls"].to_numpy(dtype=np.float32)
    rows = select_rows(cands["image_id"].to_numpy(), cands["level"].to_numpy(), rank, score_thr, nms_pre)
    if min_bbox_size >= 0:
        w = cands["x2"].to_numpy()[rows] - cands["x1"].to_numpy()[rows]
        h = cands["y2"].to_numpy()[rows] - cands["y1"].to_numpy()[rows]
        rows = rows[(w > min_bbox_size) & (h > min_bbox_size)]
    return cands.iloc[rows].assign(score=score[rows])


def select_rows(image: np.ndarray, level: np.ndarray, rank: np.ndarray, score_thr: float,
                nms_pre: int) -> np.ndarray:
    """Row numbers of the candidates NMS sees: ``rank`` > ``score_thr``, then the top
    ``nms_pre`` by ``rank`` per (image, level) (all when ``nms_pre`` ≤ 0), ordered by image,
    level and descending rank (ties in input order, as a stable sort).

    Args:
        image, level, rank: per candidate, shape [N].
    Returns:
        int64[M] indices into the N candidates.
    """
    idx = np.flatnonzero(rank > score_thr)
    img, lvl = image[idx], level[idx]
    order = np.lexsort((-rank[idx], lvl, img))  # last key is primary; lexsort is stable
    idx, img, lvl = idx[order], img[order], lvl[order]
    if nms_pre > 0 and len(idx):
        new = np.r_[True, (img[1:] != img[:-1]) | (lvl[1:] != lvl[:-1])]
        pos = np.arange(len(idx))
        start = np.maximum.accumulate(np.where(new, pos, 0))
        idx = idx[pos - start < nms_pre]
    return idx


def nms_per_image(frame: pd.DataFrame, nms_iou: float, max_per_img: int) -> pd.DataFrame:
    """mmcv ``batched_nms`` (class-aware) on each image of a :func:`preselect` output, then the
    top ``max_per_img``; ``score`` is replaced by the score NMS returns."""
    from mmcv.ops import batched_nms

    if frame.empty:
        return frame
    boxes, scores, labels, starts, ends = nms_inputs(frame)
    rows, new_scores = [], []
    cfg = dict(type="nms", iou_threshold=nms_iou)
    for a, b in zip(starts, ends):
        dets, keep = batched_nms(boxes[a:b], scores[a:b], labels[a:b], cfg)
        rows.append(keep[:max_per_img].numpy() + a)
        new_scores.append(dets[:max_per_img, -1].numpy())
    out = frame.iloc[np.concatenate(rows)].copy()
    out["score"] = np.concatenate(new_scores)
    return out.reset_index(drop=True)


def nms_inputs(frame: pd.DataFrame) -> tuple:
    """Tensors for per-image NMS of a :func:`preselect` output: boxes (Tensor[M, 4]), scores
    (Tensor[M]), labels (Tensor[M]) and each image's row range (int arrays ``starts``, ``ends``)."""
    import torch

    boxes = torch.tensor(frame[["x1", "y1", "x2", "y2"]].to_numpy(np.float32))
    scores = torch.tensor(frame["score"].to_numpy(np.float32))
    labels = torch.tensor(frame["label"].to_numpy(np.int64))
    image = frame["image_id"].to_numpy()
    starts = np.flatnonzero(np.r_[True, image[1:] != image[:-1]])
    return boxes, scores, labels, starts, np.r_[starts[1:], len(image)]


def rescore(candidates: pd.DataFrame, mode: str = "pow", alpha: float = 0.4, thr: float = 0.5,
            score_thr: float = 0.05, nms_pre: int = 1000, nms_iou: float = 0.5,
            max_per_img: int = 100, min_bbox_size: float = 0.0, order: str = "before_topk") -> pd.DataFrame:
    """Detections of every image after re-scoring (one row per detection)."""
    return nms_per_image(preselect(candidates, mode, alpha, thr, score_thr, nms_pre, min_bbox_size, order),
                         nms_iou, max_per_img)


def category_ids(categories: Sequence[dict], classes: Optional[Sequence[str]] = None) -> list[int]:
    """Category id of each label, by mmdet's rule (``CocoDataset.cat_ids``, ``CocoMetric``):
    the annotation file's categories whose name is in ``classes``, in the file's order; label
    ``i`` is the ``i``-th of them. ``classes`` None: every category, in the file's order.

    This is the rule the model was trained with, so it is used everywhere a label becomes a
    category id (dumps, re-scoring, results json). It differs from "the id of ``classes[i]``"
    when the file lists the categories in another order than ``classes``.

    Args:
        categories: the ``categories`` list of a COCO annotation file.
        classes: the dataset's ``metainfo.classes``.
    """
    if classes is None:
        return [int(c["id"]) for c in categories]
    wanted = set(classes)
    return [int(c["id"]) for c in categories if c["name"] in wanted]


def coco_ap(detections: pd.DataFrame, ann_file: str, classes: Optional[Sequence[str]] = None,
            cat_ids: Optional[Sequence[int]] = None) -> dict:
    """COCO bbox metrics of ``detections`` (columns image_id, label, score, x1..y2) with the
    faster-coco-eval evaluator. Labels become category ids by ``cat_ids`` (a dump's
    ``meta['cat_ids']``) or else by :func:`category_ids`, evaluated on those categories as
    mmdet's ``CocoMetric`` does. Returns ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR"...}``."""
    from faster_coco_eval import COCO, COCOeval_faster

    gt = COCO(ann_file)
    ids = list(cat_ids) if cat_ids else category_ids(gt.dataset["categories"], classes)
    results = [{"image_id": int(r.image_id), "category_id": ids[int(r.label)],
                "bbox": [float(r.x1), float(r.y1), float(r.x2 - r.x1), float(r.y2 - r.y1)],
                "score": float(r.score)} for r in detections.itertuples()]
    names = ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR", "ARs", "ARm", "ARl"]
    if not results:
        return {n: 0.0 for n in names}
    dt = gt.loadRes(results)
    ev = COCOeval_faster(gt, dt, "bbox", print_function=lambda *a, **k: None)
    ev.params.imgIds = gt.getImgIds()
    ev.params.catIds = ids
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
    return {n: float(v) for n, v in zip(names, ev.stats[:12])}


def alpha_sweep(candidates: pd.DataFrame, ann_file: str, alphas: list[float], classes: list[str],
                cat_ids: Optional[Sequence[int]] = None, **kwargs) -> pd.DataFrame:
    """AP for each α of the ``pow`` fusion (Table 5 layout: one row per α); labels map to
    categories as in :func:`coco_ap`."""
    rows = []
    for a in alphas:
        rows.append({"alpha": a, **coco_ap(rescore(candidates, "pow", a, **kwargs), ann_file, classes, cat_ids)})
    return pd.DataFrame(rows)


ALPHAS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(10))


def alpha_table(dumps: dict, alphas: Sequence[float] = ALPHAS) -> pd.DataFrame:
    """Table 5 layout for several quality heads: rows (alpha, model) as in the paper's CSV.

    Args:
        dumps: model name -> :class:`analysis.io.Dump` (each re-scored with its own settings).
    """
    parts = [alpha_rows(name, d, alphas).assign(model=name) for name, d in dumps.items()]
    table = pd.concat(parts, ignore_index=True)
    cols = ["alpha", "model"] + [c for c in table.columns if c not in ("alpha", "model")]
    return table[cols].sort_values(["alpha", "model"], kind="stable").reset_index(drop=True)


def alpha_rows(model: str, dump, alphas: Sequence[float] = ALPHAS) -> pd.DataFrame:
    """:func:`alpha_sweep` of one dump with its own inference settings (for ``over_seeds``)."""
    return alpha_sweep(dump.candidates, dump.meta["ann_file"], list(alphas), dump.meta["classes"],
                       dump.meta.get("cat_ids"), **inference_kwargs(dump.meta))


# Table 4 rows: paper label -> (mode, alpha). The filtered product is exact on dumps whose
# candidate grid holds it (retconf.dump.fusion_grid), otherwise exact only where a level keeps
# fewer than nms_pre pairs.
TABLE4_FUSIONS = {"cls": ("cls", 0.0), "cls(obj>0.5)": ("cls_thr", 0.0), "cls*obj": ("mul", 0.0),
                  "cls*obj(obj>0.5)": ("mul_thr", 0.0), "product(alpha=0.4;obj>0.5)": ("pow_thr", 0.4),
                  "product(alpha=0.4)": ("pow", 0.4)}


def fusion_table(candidates: pd.DataFrame, ann_file: str, classes: list[str], thr: float = 0.5,
                 fusions: dict = TABLE4_FUSIONS, cat_ids: Optional[Sequence[int]] = None,
                 **kwargs) -> pd.DataFrame:
    """AP of each fusion mode on one dump (Table 4 layout: one row per fusion); labels map to
    categories as in :func:`coco_ap`."""
    rows = []
    for label, (mode, alpha) in fusions.items():
        dets = rescore(candidates, mode, alpha, thr, **kwargs)
        rows.append({"fusion": label, **coco_ap(dets, ann_file, classes, cat_ids)})
    return pd.DataFrame(rows)


def check_coco_results(results: list, gt: dict, results_json: str, ann_file: str) -> None:
    """Refuse COCO results that cannot belong to the ground truth ``gt`` (read from ``ann_file``).

    Raises:
        ValueError: naming the first entry whose image_id or category_id ``gt`` lacks, or whose
            score or bbox is not finite (entries lacking a field are left to the caller).
    """
    import math

    image_ids = {img["id"] for img in gt.get("images", [])}
    cat_ids = {c["id"] for c in gt.get("categories", [])}
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            continue
        for field, known in (("image_id", image_ids), ("category_id", cat_ids)):
            if field in r and r[field] not in known:
                raise ValueError(f"{results_json}: entry {i} has {field} {r[field]!r}, which {ann_file} does not have")
        box = r.get("bbox") if isinstance(r.get("bbox"), list) else []
        if any(isinstance(v, float) and not math.isfinite(v) for v in [r.get("score"), *box]):
            raise ValueError(f"{results_json}: entry {i} has a non-finite score or bbox ({r.get('score')!r}, {r.get('bbox')!r})")


def detections_from_coco_results(results_json: str, ann_file: str,
                                 classes: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Post-NMS detections of any detector, from a standard COCO results json, with the columns
    post-NMS analyses use (``image_id``, ``label``, ``score``, ``cls`` = score, ``obj`` = NaN,
    box corners and the :data:`analysis.schema.MATCH_COLUMNS`). Labels follow
    :func:`category_ids` (mmdet's rule) for ``classes``. Detections for images or categories
    the ground truth lacks are refused (:func:`check_coco_results`); crowd annotations are not
    matched, as in the dump."""
    import json

    from retconf.data.coco_check import load_coco_json

    gt = load_coco_json(ann_file)
    results = json.loads(open(results_json).read())
    if not isinstance(results, list):
        raise ValueError(f"{results_json}: a COCO results file is a JSON list of detections")
    check_coco_results(results, gt, results_json, ann_file)
    cat_index = {c: i for i, c in enumerate(category_ids(gt["categories"], classes))}
    gts: dict = {}
    for a in gt["annotations"]:  # as mmdet's gt_instances: known categories, no crowd
        if a["category_id"] in cat_index and not a.get("iscrowd", 0):
            x, y, w, h = a["bbox"]
            gts.setdefault(a["image_id"], []).append((x, y, x + w, y + h, cat_index[a["category_id"]]))
    rows = []
    for i, r in enumerate(results):
        try:
            x, y, w, h = r["bbox"]
            label = cat_index[r["category_id"]]
            image_id, score = r["image_id"], float(r["score"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{results_json}: entry {i} lacks a valid image_id/category_id/bbox/score ({e})") from e
        box = np.array([x, y, x + w, y + h], dtype=np.float64)
        g = np.array(gts.get(image_id, []), dtype=np.float64).reshape(-1, 5)
        rows.append((image_id, label, score, score, np.nan, *box, *_match_one(box, label, g)))
    cols = ["image_id", "label", "score", "cls", "obj", "x1", "y1", "x2", "y2",
            "iou_same", "iou_any", "gt_same", "gt_any", "gt_area"]
    return pd.DataFrame(rows, columns=cols)


def _match_one(box: np.ndarray, label: int, gts: np.ndarray) -> tuple:
    """The :data:`analysis.schema.MATCH_COLUMNS` of one box (x1, y1, x2, y2) against ground
    truths ``gts`` (float64[G, 5]: corners and label), as ``retconf.dump.match_gt``."""
    iou = _iou_one(box, gts[:, :4])
    same = np.where(gts[:, 4] == label, iou, -1.0)
    j = int(same.argmax()) if len(same) else -1
    k = int(iou.argmax()) if len(iou) and iou.max() > 0 else -1
    area = float((gts[k, 2] - gts[k, 0]) * (gts[k, 3] - gts[k, 1])) if k >= 0 else np.nan
    return (max(same.max(initial=-1.0), 0.0), iou.max(initial=0.0),
            j if j >= 0 and same[j] >= 0 else -1, k, area)


def _iou_one(box: np.ndarray, gts: np.ndarray) -> np.ndarray:
    """IoU of one box (x1, y1, x2, y2) with each row of gts (Tensor-free, float64[G])."""
    iw = np.clip(np.minimum(box[2], gts[:, 2]) - np.maximum(box[0], gts[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], gts[:, 3]) - np.maximum(box[1], gts[:, 1]), 0, None)
    inter = iw * ih
    union = (box[2] - box[0]) * (box[3] - box[1]) + (gts[:, 2] - gts[:, 0]) * (gts[:, 3] - gts[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def inference_kwargs(meta: dict) -> dict:
    """``rescore`` keyword arguments equal to a dump's inference settings."""
    t = meta["test_cfg"]
    return dict(score_thr=t.get("score_thr", 0.0), nms_pre=t.get("nms_pre", -1),
                nms_iou=t["nms"]["iou_threshold"], max_per_img=t.get("max_per_img", 100),
                min_bbox_size=t.get("min_bbox_size", -1))


DEFAULT_FUSION = {"mode": "cls", "alpha": 0.0, "thr": 0.5}  # what plain RetinaNet deploys


def deployed_fusion(meta: dict) -> dict:
    """The fusion a dump's model deploys (``meta['fusion']``; plain RetinaNet: ``cls``), with
    ``mode``, ``alpha`` and ``thr``."""
    return {**DEFAULT_FUSION, **(meta.get("fusion") or {})}


def dump_ap(dump, mode: str, alpha: float, thr: float = 0.5, order: str = "before_topk",
            candidates: Optional[pd.DataFrame] = None) -> dict:
    """COCO metrics of one dump re-scored with one fusion under the dump's own inference
    settings (``candidates`` replaces the dump's, e.g. by :func:`analysis.metrics.oracle_candidates`)."""
    cands = dump.candidates if candidates is None else candidates
    dets = rescore(cands, mode, alpha, thr, order=order, **inference_kwargs(dump.meta))
    return dump_coco_ap(dump, dets)


def dump_coco_ap(dump, detections: pd.DataFrame) -> dict:
    """:func:`coco_ap` of detections on a dump's images, with its label → category rule."""
    return coco_ap(detections, dump.meta["ann_file"], dump.meta["classes"], dump.meta.get("cat_ids"))


def loss_ablation_rows(model: str, dump) -> list[dict]:
    """Tables 2 and 3 rows that one ``retconf reproduce --full`` model provides.

    Table 2 scores with the classification only (``cls``); Table 3 with the product at α 0.4,
    for the rows the paper has there (CE and CE^w 1e-4). ``model`` is a name from
    :data:`retconf.ablations.TABLE_ROWS` (``retinanet_conf`` is the CE row).

    Returns:
        dicts with ``table``, ``loss``, ``alpha`` and the COCO metrics of :func:`coco_ap`.
    """
    from retconf.ablations import TABLE3, TABLE_ROWS

    rows = []
    for loss in (row for row, m in TABLE_ROWS.items() if m == model):
        rows.append({"table": "table2", "loss": loss, "alpha": 0.0, **dump_ap(dump, "cls", 0.0)})
        if loss in TABLE3:
            alpha = TABLE3[loss]["model.bbox_head.fusion.alpha"]
            rows.append({"table": "table3", "loss": loss, "alpha": alpha, **dump_ap(dump, "pow", alpha)})
    return rows


def deployed_ap(model: str, dump) -> dict:
    """COCO metrics of a dump re-scored with the fusion its model deploys."""
    f = deployed_fusion(dump.meta)
    return dump_ap(dump, f["mode"], f["alpha"], f["thr"])


def cls_only_ap(model: str, dump) -> dict:
    """COCO metrics of one dump with NMS ranked by the classification score alone (the
    paper's Table 1 protocol; plain RetinaNet deploys exactly this)."""
    return dump_ap(dump, "cls", 0.0)


def fusion_rows(model: str, dump) -> pd.DataFrame:
    """:func:`fusion_table` of one dump with its own inference settings (for ``over_seeds``)."""
    return fusion_table(dump.candidates, dump.meta["ann_file"], dump.meta["classes"],
                        cat_ids=dump.meta.get("cat_ids"), **inference_kwargs(dump.meta))


ORACLE_ALPHAS: tuple[float, ...] = (0.2, 0.4, 0.6, 0.9)


def oracle_rows(model: str, dump, alphas: Sequence[float] = ORACLE_ALPHAS) -> list[dict]:
    """AP of the product fusion with the predicted confidence and with the two oracles of
    :func:`analysis.metrics.oracle_candidates` (the IoU oracle, the ceiling of a class-agnostic
    branch, and the IoU + label oracle, which also knows whether the label is right).

    Approximate for the oracles: the dump holds the candidates that the *predicted* obj's
    fusions keep; pairs that only an oracle would lift above ``score_thr`` are missing."""
    from .metrics import ORACLES, oracle_candidates

    oracles = {name: oracle_candidates(dump.candidates, name) for name in ORACLES}
    return [{"alpha": a, "AP predicted obj": dump_ap(dump, "pow", a)["AP"],
             **{f"AP {name}": dump_ap(dump, "pow", a, candidates=c)["AP"] for name, c in oracles.items()}}
            for a in alphas]


def obj_share_rows(model: str, dump, thr: float = 0.5) -> dict:
    """:func:`analysis.metrics.obj_above` of one dump at the ``*_thr`` fusions' threshold."""
    from .metrics import obj_above

    return obj_above(dump.candidates, thr)


def order_rows(model: str, dump, alpha: float = 0.4) -> list[dict]:
    """AP of the product fusion fused before top-k (this project's default) and after it
    (mmdet's order, as the original code effectively did), from one dump."""
    return [{"order": order, **dump_ap(dump, "pow", alpha, order=order)}
            for order in ("before_topk", "after_topk")]
