"""Beyond AP, per dump: which score a detector could rank by, and the calibration, LRP, TIDE
and AP(IoU) rows of each, for :func:`analysis.measures.seeds.over_seeds`.

Ranking scores (``SCORES``):

- ``cls``: the classification score;
- ``obj``: the quality score (object confidence / predicted IoU; absent for plain RetinaNet and
  for a COCO results json);
- ``fused``: the deployed fusion (post-NMS: the ``score`` column the detector output; pre-NMS:
  the deployed fusion recomputed from ``cls`` and ``obj``);
- ``oracle``: the deployed fusion with ``obj := iou_any`` (the class-agnostic IoU, the ceiling
  of a quality branch); for a detector that deploys ``cls`` alone (RetinaNet, a results json) the
  paper's ``cls^0.6 · IoU^0.4`` (``pow``, α = 0.4) is used instead.

Post-NMS, every score ranks the *same* detections (those the deployed fusion kept after NMS):
the metrics say how well each score orders and calibrates the detector's output, not what NMS
would have kept under that score (that needs re-running NMS on the candidates,
:func:`analysis.scoring.rescore.rescore`). Pre-NMS metrics (anchor reliability) need a dump's candidates;
a COCO results json provides the post-NMS ones only.

Views (DESIGN.md "compare like with like"): pre-NMS, the class-agnostic ``obj`` is measured on
one row per anchor against ``iou_any``; ``cls``, ``fused`` and ``oracle`` on (anchor, label)
pairs against ``iou_same``. Post-NMS every score is measured as the detection's confidence
against COCO matching (class-aware).
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..geometry.matching import SIZES, coco_match, ground_truth
from ..inputs.io import Dump, DumpShards, PostNMS, annotation_file
from ..scoring.fusion import fuse_arrays
from ..scoring.rescore import deployed_fusion
from . import calibration as cal
from .coco import detections_from_coco_results
from .lrp import olrp
from .metrics import level_name
from .tide import ap_by_iou, tide_errors

SCORES = ("cls", "obj", "fused", "oracle")
ORACLE_DEFAULT = {"mode": "pow", "alpha": 0.4, "thr": 0.5}


def oracle_fusion(meta: dict | None) -> dict:
    """The fusion the oracle uses: the deployed one when it uses ``obj``, else ``pow`` α 0.4."""
    f = deployed_fusion(meta or {})
    return f if f["mode"] != "cls" else dict(ORACLE_DEFAULT)


def ranking_scores(frame: pd.DataFrame, meta: dict | None = None, stage: str = "post") -> dict:
    """Score name -> float[N] for the rows of ``frame`` (see the module docstring); ``obj`` is
    left out when it is all NaN. ``stage='pre'`` recomputes the deployed fusion from cls/obj,
    ``'post'`` takes the ``score`` column."""
    cls = frame["cls"].to_numpy(np.float32)
    obj = frame["obj"].to_numpy(np.float32)
    out = {"cls": cls}
    if len(obj) and not np.isnan(obj).all():
        out["obj"] = obj
    if stage == "post":
        out["fused"] = frame["score"].to_numpy(np.float32)
    else:
        f = deployed_fusion(meta or {})
        out["fused"] = fuse_arrays(cls, np.nan_to_num(obj, nan=1.0), f["mode"], f["alpha"], f["thr"])
    if "iou_any" in frame:
        o = oracle_fusion(meta)
        out["oracle"] = fuse_arrays(cls, frame["iou_any"].to_numpy(np.float32), o["mode"], o["alpha"], o["thr"])
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def ann_path(meta: dict, where: str = "the dump's metadata.json") -> str:
    """A dump's annotation file, resolved like a run directory (relative to the project root) and
    checked against the hash the dump recorded (:func:`analysis.inputs.io.annotation_file`)."""
    return annotation_file(meta, where)


def dump_ground_truth(dump: PostNMS | DumpShards) -> pd.DataFrame:
    """The ground truth of a dump's test set, labels as the dump's (its ``cat_ids``)."""
    return ground_truth(dump.ann_file(), dump.meta.get("classes"), dump.meta.get("cat_ids"))


def scored(dets: pd.DataFrame, scores: dict) -> pd.DataFrame:
    """``dets`` with one column per ranking score (named as in ``scores``)."""
    return dets.assign(**scores)


def calibration_rows(dets: pd.DataFrame, gt: pd.DataFrame, scores: dict, split_seed: int = 0,
                     recalibrate: tuple = ("cls",)) -> list[dict]:
    """LaECE and D-ECE (reference protocol, :mod:`analysis.measures.calibration`) of each score on the
    evaluation half of the images, the fit half giving thresholds (and, for the scores in
    ``recalibrate``, an isotonic and a Platt recalibration: rows "cls (isotonic)", "cls (platt)")."""
    frame = scored(dets, scores)
    fit, ev = cal.split_images(gt.attrs["image_ids"], 0.5, split_seed)
    rows = []
    for name in scores:
        for rc in ((False, "isotonic", "platt") if name in recalibrate else (False,)):
            la = cal.laece_protocol(frame, gt, name, fit, ev, recalibrate=rc)
            de = cal.dece_protocol(frame, gt, name, fit, ev, recalibrate=rc)
            rows.append({"score": name + (f" ({rc})" if rc else ""), "LaECE": la["LaECE"],
                         "LaECE dets": la["detections"], "D-ECE": de["D-ECE"], "D-ECE dets": de["detections"]})
    return rows


def calibration_gaps(cal: pd.DataFrame, model: str, metric: str, scores: Sequence[str]) -> dict[int, str]:
    """Why ``metric`` ("LaECE" or "D-ECE") of ``model`` is undefined on a seed, for the seeds
    where any of ``scores`` has no value: ``{seed: reason}`` (e.g. no detection of a class with
    ground truth passes the operating threshold on the evaluation half).

    Args:
        cal: :func:`calibration_rows` of every (seed, model), with ``seed`` and ``model`` columns.
    """
    if metric not in ("LaECE", "D-ECE"):
        raise ValueError(f"metric must be 'LaECE' or 'D-ECE', got {metric!r}")
    rows = cal[(cal["model"] == model) & cal["score"].isin(list(scores))]
    gaps: dict[int, str] = {}
    for seed, g in rows.groupby("seed", sort=True):
        bad = g[g[metric].isna()]
        if len(bad):
            gaps[int(seed)] = "; ".join(
                f"{metric} of {r['score']} undefined ({int(r[f'{metric} dets'])} detections of a class with ground "
                f"truth pass its operating threshold on the evaluation images)" for _, r in bad.iterrows())
    return gaps


def reliability_rows(dets: pd.DataFrame, gt: pd.DataFrame, scores: dict, n_bins: int = cal.DECE_BINS) -> pd.DataFrame:
    """Post-NMS reliability-diagram data of each score (all detections, both views)."""
    frame = scored(dets, scores)
    return pd.concat([cal.detection_reliability(frame, gt, s, n_bins).assign(score=s) for s in scores],
                     ignore_index=True)


def anchor_rows(cands: pd.DataFrame, meta: dict | None = None, n_bins: int = cal.DECE_BINS) -> pd.DataFrame:
    """Pre-NMS reliability data of each score, overall and per pyramid level (``group``), in the
    views of the module docstring."""
    scores = ranking_scores(cands, meta, stage="pre")
    level = cands["level"].to_numpy()
    parts = []
    for name, s in scores.items():
        if name == "obj":  # class-agnostic: one row per anchor, against the IoU with any ground truth
            key = (cands["image_id"].to_numpy(np.int64) * 16 + cands["level"].to_numpy(np.int64)) * (1 << 32) \
                + cands["anchor"].to_numpy(np.int64)
            first = ~pd.Series(key).duplicated().to_numpy()
            t = cal.anchor_reliability(cands[first], s[first], cands["iou_any"].to_numpy()[first], n_bins,
                                       by=level[first])
        else:
            t = cal.anchor_reliability(cands, s, cands["iou_same"].to_numpy(), n_bins, by=level)
        parts.append(t.assign(score=name))
    return pd.concat(parts, ignore_index=True)


def lrp_rows(dets: pd.DataFrame, gt: pd.DataFrame, scores: dict, sizes=tuple(SIZES)) -> list[dict]:
    """oLRP summary (:func:`analysis.measures.lrp.olrp`) of each score and COCO size."""
    frame = scored(dets, scores)
    return [{"score": s, "size": size, **olrp(frame, gt, s, size=size)} for s in scores for size in sizes]


def ap_iou_rows(dets: pd.DataFrame, ann_file: str, classes, scores: dict,
                cat_ids: Sequence[int] | None = None) -> pd.DataFrame:
    """AP at each IoU threshold (0.50 ... 0.95), overall and per size, of each score (labels to
    category ids as :func:`analysis.measures.tide.ap_by_iou`)."""
    frame = scored(dets, scores)
    return pd.concat([ap_by_iou(frame, ann_file, classes, s, cat_ids).assign(score=s) for s in scores],
                     ignore_index=True)


def detection_levels(dets: pd.DataFrame, cands: pd.DataFrame) -> np.ndarray:
    """Pyramid level of each post-NMS detection, found as the candidate with the same image,
    label and box to 1/100 pixel (-1 where none matches)."""
    def keyed(f: pd.DataFrame) -> pd.DataFrame:
        out = f[["image_id", "label"]].astype(np.int64)
        for c in ("x1", "y1", "x2", "y2"):
            out[c] = np.rint(f[c].to_numpy(np.float32) * np.float32(100)).astype(np.int64)
        return out

    d = keyed(dets)
    def prefilter_key(image_id: np.ndarray, label: np.ndarray, x1: np.ndarray) -> np.ndarray:
        return ((image_id.astype(np.int64) << 11) + label.astype(np.int64) << 24) + (x1 & 0xFFFFFF)

    x1 = np.rint(cands["x1"].to_numpy(np.float32) * np.float32(100)).astype(np.int64)
    ck = prefilter_key(cands["image_id"].to_numpy(), cands["label"].to_numpy(), x1)
    dk = prefilter_key(d["image_id"].to_numpy(), d["label"].to_numpy(), d["x1"].to_numpy())
    near = cands[pd.Series(ck).isin(pd.unique(dk)).to_numpy()]  # cheap hash prefilter, exact merge below
    lv = keyed(near).assign(level=near["level"].to_numpy()).drop_duplicates(list(d.columns))
    merged = d.merge(lv, on=list(d.columns), how="left")
    return merged["level"].fillna(-1).to_numpy(np.int64)


def level_rows(dets: pd.DataFrame, gt: pd.DataFrame, scores: dict, levels: np.ndarray) -> list[dict]:
    """Post-NMS calibration per pyramid level: the detections are matched all together (IoU 0.5
    for precision, 0.0 for precision × IoU) and then split by the level they came from; no
    operating threshold; detections of classes without ground truth are left out (as in D-ECE
    and LaECE). Rows ``score``, ``level`` (named "P3" … "P7", :func:`analysis.measures.metrics.level_name`),
    ``D-ECE-style ECE`` and ``LaECE-style ECE``
    (class-agnostic, 10 bins) and ``n``."""
    frame = scored(dets, scores).assign(_level=levels)
    rows = []
    for s in scores:
        m5, m0 = coco_match(frame, gt, s, cal.DECE_TAU), coco_match(frame, gt, s, cal.LAECE_TAU)
        for lv in sorted(set(levels.tolist())):
            parts = {}
            for name, m, col in (("precision ECE", m5, "tp"), ("precision x IoU ECE", m0, "iou")):
                live = cal.rows_with_gt(m)  # as every calibration metric: classes with ground truth
                live = live[frame["_level"].to_numpy()[live["row"].to_numpy()] == lv]
                t = cal.reliability(live["score"].to_numpy(), live[col].to_numpy(np.float64), cal.DECE_BINS)
                parts[name] = cal.expected_error(t)
                parts["n"] = int(len(live))
            rows.append({"score": s, "level": level_name(lv), **parts})
    return rows


def size_rows(dets: pd.DataFrame, gt: pd.DataFrame, scores: dict, sizes=("small", "medium", "large")) -> list[dict]:
    """Post-NMS calibration per COCO object size: matched with that area range (ground truths of
    other sizes, detections matched to them and unmatched detections of other sizes are
    ignored, as COCO does), no operating threshold; class-agnostic, 10 bins. Rows ``score``,
    ``size``, ``precision ECE``, ``precision x IoU ECE``, ``n``."""
    frame = scored(dets, scores)
    rows = []
    for s in scores:
        for size in sizes:
            row = {"score": s, "size": size}
            for name, tau, col in (("precision ECE", cal.DECE_TAU, "tp"),
                                   ("precision x IoU ECE", cal.LAECE_TAU, "iou")):
                live = cal.rows_with_gt(coco_match(frame, gt, s, tau, area=SIZES[size]))
                t = cal.reliability(live["score"].to_numpy(), live[col].to_numpy(np.float64), cal.DECE_BINS)
                row.update({name: cal.expected_error(t), "n": int(len(live))})
            rows.append(row)
    return rows


# ------------------------------------------------------------ per-dump rows for over_seeds

def dump_calibration(model: str, dump: Dump) -> list[dict]:
    """:func:`calibration_rows` of one dump (post-NMS detections, image split seed 0)."""
    return calibration_rows(dump.detections, dump_ground_truth(dump), ranking_scores(dump.detections, dump.meta))


def dump_reliability(model: str, dump: Dump) -> pd.DataFrame:
    """Reliability data of one dump: post-NMS (``stage='after NMS'``, ``group='all'``) and
    pre-NMS per level (``stage='before NMS'``)."""
    post = reliability_rows(dump.detections, dump_ground_truth(dump), ranking_scores(dump.detections, dump.meta))
    pre = anchor_rows(dump.candidates, dump.meta)
    return pd.concat([post.assign(stage="after NMS", group="all"), pre.assign(stage="before NMS")],
                     ignore_index=True)


def dump_lrp(model: str, dump: Dump) -> list[dict]:
    """:func:`lrp_rows` of one dump."""
    return lrp_rows(dump.detections, dump_ground_truth(dump), ranking_scores(dump.detections, dump.meta))


def dump_tide(model: str, dump: Dump) -> pd.DataFrame:
    """TIDE dAP of one dump's deployed output (``score``)."""
    return tide_errors(dump.detections, dump_ground_truth(dump), "score")


def dump_ap_iou(model: str, dump: Dump) -> pd.DataFrame:
    """:func:`ap_iou_rows` of one dump."""
    return ap_iou_rows(dump.detections, dump.ann_file(), dump.meta.get("classes"),
                       ranking_scores(dump.detections, dump.meta), dump.meta.get("cat_ids"))


def dump_levels(model: str, dump: Dump) -> list[dict]:
    """:func:`level_rows` of one dump."""
    dets = dump.detections
    return level_rows(dets, dump_ground_truth(dump), ranking_scores(dets, dump.meta),
                      detection_levels(dets, dump.candidates))


def dump_sizes(model: str, dump: Dump) -> list[dict]:
    """:func:`size_rows` of one dump."""
    return size_rows(dump.detections, dump_ground_truth(dump), ranking_scores(dump.detections, dump.meta))


def results_json_metrics(results_json: str | Path, ann_file: str | Path) -> dict:
    """Every post-NMS metric of any detector's COCO results json (scores ``fused`` = its score and
    ``oracle``): ``{"calibration", "reliability", "lrp", "calibration by size", "tide", "ap_iou"}``
    frames."""
    dets = detections_from_coco_results(str(results_json), str(ann_file))
    gt = ground_truth(ann_file)
    scores = ranking_scores(dets, None)
    scores.pop("cls")  # identical to the score itself
    return {"calibration": pd.DataFrame(calibration_rows(dets, gt, scores, recalibrate=("fused",))),
            "reliability": reliability_rows(dets, gt, scores), "lrp": pd.DataFrame(lrp_rows(dets, gt, scores)),
            "calibration by size": pd.DataFrame(size_rows(dets, gt, scores)),
            "tide": tide_errors(dets, gt, "score"), "ap_iou": ap_iou_rows(dets, str(ann_file), None, scores)}
