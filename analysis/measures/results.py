"""Any detector's COCO results json as an input of the post-NMS analyses: its detections shaped
like a dump's post-NMS half (:class:`Results`), and the per-file rows page 08 shows, for
:func:`analysis.measures.seeds.over_seeds` on an input set (``retconf report RESULTS.json ...``).

A results file carries one score per detection and no candidates: the scores are ``fused`` (the
file's score) and ``oracle`` (the paper's ``score^0.6 · IoU^0.4`` with the class-agnostic IoU
of the detection), never ``cls`` or ``obj``; what needs the candidates before NMS (pages 01, 02,
03, 06, 07, the pre-NMS reliability and the pyramid levels of page 05) needs a dump.

Glossary: D detections of a file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..geometry.matching import category_ids, ground_truth
from ..inputs.io import DumpError
from .coco import coco_ap, detections_from_coco_results
from .quality import ap_iou_rows, calibration_rows, lrp_rows, ranking_scores, reliability_rows, size_rows
from .tide import tide_errors

_CACHE: dict[tuple, Results] = {}  # (results path, size, mtime, annotation path, size, mtime) -> Results


@dataclass
class Results:
    """One COCO results file read against its annotation file: ``detections`` (D rows, the
    dump's post-NMS columns: ``score`` = ``cls`` = the file's score, ``obj`` NaN, IoU matches)
    and ``meta`` (``ann_file``, ``cat_ids`` in the annotation file's order, ``classes`` None,
    ``fusion`` None, ``results_file``)."""

    path: Path
    meta: dict
    detections: pd.DataFrame
    images: pd.DataFrame | None = field(default=None)

    @property
    def candidates(self) -> pd.DataFrame:
        raise DumpError(f"{self.path}: a COCO results json holds detections after NMS only; this analysis needs "
                        "the candidates before NMS (write a dump with `retconf dump`)")

    def ann_file(self) -> str:
        """The annotation file the detections were matched against."""
        return str(self.meta["ann_file"])


def load_results(results_json: str | Path, ann_file: str | Path) -> Results:
    """:class:`Results` of ``results_json`` against ``ann_file`` (read once per file version).

    Raises:
        ValueError: naming the results file and the first entry that cannot belong to the
            ground truth (:func:`analysis.measures.coco.check_coco_results`), or the annotation file.
    """
    res, ann = Path(results_json), Path(ann_file)
    key = (str(res.resolve()), *_stamp(res), str(ann.resolve()), *_stamp(ann))
    if key not in _CACHE:
        dets = detections_from_coco_results(str(res), str(ann))
        gt = ground_truth(ann)
        meta = {"ann_file": str(ann), "classes": None, "results_file": str(res), "fusion": None,
                "cat_ids": category_ids(_categories(ann), None), "num_images": len(gt.attrs["image_ids"]),
                "warnings": suspicious_results(dets, _image_sizes(ann))}
        _CACHE[key] = Results(res, meta, dets)
    cached = _CACHE[key]
    return Results(cached.path, dict(cached.meta), cached.detections)


# A share of entries above which :func:`suspicious_results` speaks: a few odd boxes happen in any
# real file (boxes clipped at the border, a detector's stray outputs); a systematic mistake shows
# in a large share.
SUSPICIOUS_SHARE = 0.2


def suspicious_results(dets: pd.DataFrame, sizes: dict[int, tuple[float, float]],
                       share: float = SUSPICIOUS_SHARE) -> list[str]:
    """What looks wrong in a results file's detections ``dets`` (D rows, corners ``x1 = x``,
    ``x2 = x + w`` of the file's ``[x, y, w, h]``) against the image sizes ``sizes``
    (image id -> (width, height); images without a size are not judged), one sentence each:

    - boxes that look like corners ``[x1, y1, x2, y2]``: ``w ≥ x`` and ``h ≥ y`` (always so for
      corners) while ``x + w`` or ``y + h`` lies beyond the image (rare for real boxes), for more
      than ``share`` of the entries;
    - scores outside [0, 1] (logits, or unnormalised scores), any of them;
    - boxes entirely outside their image, for more than ``share`` of the entries.

    Returns an empty list for a file with nothing odd."""
    out: list[str] = []
    n = len(dets)
    if not n:
        return out
    score = dets["score"].to_numpy(float)
    outside_01 = int(_outside_unit(score).sum())
    if outside_01:
        out.append(f"{outside_01} of {n} scores ({outside_01 / n:.0%}) lie outside [0, 1] (range {score.min():.3g} … "
                   f"{score.max():.3g}): logits or unnormalised scores? The calibration sections refuse them")
    wh = np.array([sizes.get(int(i), (np.nan, np.nan)) for i in dets["image_id"]], float).reshape(-1, 2)
    known = ~np.isnan(wh).any(axis=1)
    if not known.any():
        return out
    x, y = dets["x1"].to_numpy(float), dets["y1"].to_numpy(float)
    w, h = dets["x2"].to_numpy(float) - x, dets["y2"].to_numpy(float) - y
    W, H = wh[:, 0], wh[:, 1]
    beyond = (x + w > W * 1.02 + 1) | (y + h > H * 1.02 + 1)
    corners = known & (w >= x) & (h >= y) & beyond
    if corners.sum() > share * known.sum():
        out.append(f"{corners.sum()} of {known.sum()} boxes ({corners.sum() / known.sum():.0%}) reach beyond "
                   "their image "
                   "with w ≥ x and h ≥ y: they look like corners [x1, y1, x2, y2]; COCO results boxes are [x, y, w, h]")
    outside = known & ((x >= W) | (y >= H) | (x + w <= 0) | (y + h <= 0))
    if outside.sum() > share * known.sum():
        out.append(f"{outside.sum()} of {known.sum()} boxes ({outside.sum() / known.sum():.0%}) lie entirely outside "
                   "their image: boxes in another scale (normalised, or a resized input) or another image's ids?")
    return out


def _outside_unit(score: np.ndarray) -> np.ndarray:
    """bool[D]: the scores outside [0, 1] (the one test both the warning and the refusal use)."""
    return (score < 0) | (score > 1)


def _image_sizes(ann_file: Path) -> dict[int, tuple[float, float]]:
    """Image id -> (width, height) of the annotation file's images that give both."""
    import json

    return {int(im["id"]): (float(im["width"]), float(im["height"]))
            for im in json.loads(ann_file.read_text()).get("images", []) if "width" in im and "height" in im}


def probability_problem(res) -> str | None:
    """Why the calibration of a results file's scores is refused (scores outside [0, 1]: a
    calibration error compares a score with a frequency), or None where it can be measured."""
    score = res.detections["score"]
    bad = int(_outside_unit(score.to_numpy(float)).sum())
    if not bad:
        return None
    return (f"{res.path}: {bad} of {len(score)} scores lie outside [0, 1] (field 'score'; range {score.min():.3g} … "
            f"{score.max():.3g}): calibration needs probabilities")


def _require_probabilities(res) -> None:
    problem = probability_problem(res)
    if problem:
        raise ValueError(problem)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _categories(ann_file: Path) -> list[dict]:
    import json

    return json.loads(ann_file.read_text())["categories"]


def results_scores(res) -> dict:
    """Score name -> float64[D] of a results file's detections: ``fused`` (its score) and
    ``oracle`` (:func:`analysis.measures.quality.ranking_scores` without ``cls``, which equals the score)."""

    scores = ranking_scores(res.detections, None)
    scores.pop("cls")
    return scores


# ------------------------------------------------- per-file rows for over_seeds (page 08)

def results_ap(model: str, res) -> dict:
    """COCO AP, AP50 … AR of the file's detections (its categories, the annotation file's order)."""
    return coco_ap(res.detections, res.ann_file(), None, res.meta.get("cat_ids"))


def results_calibration(model: str, res) -> list[dict]:
    """LaECE and D-ECE of ``fused`` (also recalibrated: isotonic, Platt) and ``oracle``
    (:func:`analysis.measures.quality.calibration_rows`)."""
    _require_probabilities(res)

    return calibration_rows(res.detections, ground_truth(res.ann_file()), results_scores(res), recalibrate=("fused",))


def results_reliability(model: str, res) -> pd.DataFrame:
    """Post-NMS reliability-diagram data of each score (:func:`analysis.measures.quality.reliability_rows`)."""
    _require_probabilities(res)

    return reliability_rows(res.detections, ground_truth(res.ann_file()), results_scores(res))


def results_sizes(model: str, res) -> list[dict]:
    """Calibration error per COCO size (:func:`analysis.measures.quality.size_rows`)."""
    _require_probabilities(res)

    return size_rows(res.detections, ground_truth(res.ann_file()), results_scores(res))


def results_lrp(model: str, res) -> list[dict]:
    """oLRP with its components per score and size (:func:`analysis.measures.quality.lrp_rows`)."""

    return lrp_rows(res.detections, ground_truth(res.ann_file()), results_scores(res))


def results_tide(model: str, res) -> pd.DataFrame:
    """TIDE dAP per error type of the file's score (:func:`analysis.measures.tide.tide_errors`). TIDE
    reads a score only through the order it gives (AP), and tidecv fails on negative scores:
    scores outside [0, 1] (logits) are replaced by their ranks scaled into (0, 1), which keep
    that order, ties included."""

    dets = res.detections
    if probability_problem(res):
        ranks = dets["score"].rank(method="dense")
        dets = dets.assign(score=ranks / (ranks.max() + 1))
    return tide_errors(dets, ground_truth(res.ann_file()), "score")


def results_ap_iou(model: str, res) -> pd.DataFrame:
    """AP at IoU 0.50 … 0.95 of each score (:func:`analysis.measures.quality.ap_iou_rows`)."""

    return ap_iou_rows(res.detections, res.ann_file(), None, results_scores(res), res.meta.get("cat_ids"))
