"""Any detector's COCO results json as an input of the post-NMS analyses: its detections shaped
like a dump's post-NMS half (:class:`Results`), and the per-file rows page 08 shows, for
:func:`analysis.seeds.over_seeds` on an input set (``retconf report RESULTS.json ...``).

A results file carries one score per detection and no candidates: the scores are ``fused`` (the
file's score) and ``oracle`` (the paper's ``score^0.6 · IoU^0.4`` with the class-agnostic IoU
of the detection), never ``cls`` or ``obj``; what needs the candidates before NMS (pages 01, 02,
03, 06, 07, the pre-NMS reliability and the pyramid levels of page 05) needs a dump.

Glossary: D detections of a file.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import pandas as pd

from .coco import coco_ap, detections_from_coco_results
from .io import DumpError
from .matching import category_ids, ground_truth

_CACHE: dict[tuple, "Results"] = {}  # (results path, size, mtime, annotation path, size, mtime) -> Results


@dataclass
class Results:
    """One COCO results file read against its annotation file: ``detections`` (D rows, the
    dump's post-NMS columns: ``score`` = ``cls`` = the file's score, ``obj`` NaN, IoU matches)
    and ``meta`` (``ann_file``, ``cat_ids`` in the annotation file's order, ``classes`` None,
    ``fusion`` None, ``results_file``)."""

    path: Path
    meta: dict
    detections: pd.DataFrame
    images: Optional[pd.DataFrame] = field(default=None)

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
            ground truth (:func:`analysis.coco.check_coco_results`), or the annotation file.
    """
    res, ann = Path(results_json), Path(ann_file)
    key = (str(res.resolve()), *_stamp(res), str(ann.resolve()), *_stamp(ann))
    if key not in _CACHE:
        dets = detections_from_coco_results(str(res), str(ann))
        gt = ground_truth(ann)
        meta = {"ann_file": str(ann), "classes": None, "results_file": str(res), "fusion": None,
                "cat_ids": category_ids(_categories(ann), None), "num_images": len(gt.attrs["image_ids"])}
        _CACHE[key] = Results(res, meta, dets)
    cached = _CACHE[key]
    return Results(cached.path, dict(cached.meta), cached.detections)


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _categories(ann_file: Path) -> list[dict]:
    import json

    return json.loads(ann_file.read_text())["categories"]


def results_scores(res) -> dict:
    """Score name -> float64[D] of a results file's detections: ``fused`` (its score) and
    ``oracle`` (:func:`analysis.quality.ranking_scores` without ``cls``, which equals the score)."""
    from .quality import ranking_scores

    scores = ranking_scores(res.detections, None)
    scores.pop("cls")
    return scores


# ------------------------------------------------- per-file rows for over_seeds (page 08)

def results_ap(model: str, res) -> dict:
    """COCO AP, AP50 … AR of the file's detections (its categories, the annotation file's order)."""
    return coco_ap(res.detections, res.ann_file(), None, res.meta.get("cat_ids"))


def results_calibration(model: str, res) -> list[dict]:
    """LaECE and D-ECE of ``fused`` (also recalibrated: isotonic, Platt) and ``oracle``
    (:func:`analysis.quality.calibration_rows`)."""
    from .quality import calibration_rows

    return calibration_rows(res.detections, ground_truth(res.ann_file()), results_scores(res), recalibrate=("fused",))


def results_reliability(model: str, res) -> pd.DataFrame:
    """Post-NMS reliability-diagram data of each score (:func:`analysis.quality.reliability_rows`)."""
    from .quality import reliability_rows

    return reliability_rows(res.detections, ground_truth(res.ann_file()), results_scores(res))


def results_sizes(model: str, res) -> list[dict]:
    """Calibration error per COCO size (:func:`analysis.quality.size_rows`)."""
    from .quality import size_rows

    return size_rows(res.detections, ground_truth(res.ann_file()), results_scores(res))


def results_lrp(model: str, res) -> list[dict]:
    """oLRP with its components per score and size (:func:`analysis.quality.lrp_rows`)."""
    from .quality import lrp_rows

    return lrp_rows(res.detections, ground_truth(res.ann_file()), results_scores(res))


def results_tide(model: str, res) -> pd.DataFrame:
    """TIDE dAP per error type of the file's score (:func:`analysis.tide.tide_errors`)."""
    from .tide import tide_errors

    return tide_errors(res.detections, ground_truth(res.ann_file()), "score")


def results_ap_iou(model: str, res) -> pd.DataFrame:
    """AP at IoU 0.50 … 0.95 of each score (:func:`analysis.quality.ap_iou_rows`)."""
    from .quality import ap_iou_rows

    return ap_iou_rows(res.detections, res.ann_file(), None, results_scores(res), res.meta.get("cat_ids"))
