"""The dump schema: the one definition that ``retconf dump`` writes and :mod:`analysis.inputs.io`
reads (no model code here, so analysis imports without mmdet).

Coordinates: every box and IoU is in original-image pixels (the frame of the annotation
file), whatever the test pipeline resized or padded.

Columns:

- ``cls`` raw classification probability of ``label``; ``obj`` the head's class-agnostic
  quality score (object confidence / predicted IoU; NaN for plain RetinaNet); ``score`` (post-NMS
  only) the score NMS ranked by.
- ``population`` (candidates): bit 1 (``SELECTED``) the pair is one a ranking rule of the candidate
  grid keeps (what NMS may see; :attr:`analysis.inputs.io.Dump.candidates` are these rows); bit 2
  (``BY_IOU``) the pair is its anchor's row of the population chosen by the IoU alone: every
  anchor whose decoded box overlaps a ground truth with IoU ≥ ``meta['iou_population']``,
  labelled with that ground truth's class, whatever its scores
  (:attr:`analysis.inputs.io.Dump.iou_population`). Dumps written before the column hold the
  selected rows only.
- ``iou_same`` best IoU with a ground truth of the same class (``gt_same`` its index in the
  image's ground truth, -1: none); ``iou_any`` best IoU with any ground truth (``gt_any``, -1:
  none); ``gt_area`` box area (pixels²) of the ``gt_any`` ground truth, NaN when none.
"""
from __future__ import annotations

# 2: ground truth from the annotations in original-image pixels whatever the test pipeline does;
#    ``gt_any`` / ``gt_area`` columns; the dataset's ``cat_ids`` in the metadata.
SCHEMA_VERSION = 2
KINDS: tuple[str, ...] = ("candidates", "detections", "images")
MATCH_COLUMNS = {"iou_same": "float32", "iou_any": "float32", "gt_same": "int32",
                 "gt_any": "int32", "gt_area": "float32"}
CANDIDATE_COLUMNS = {
    "image_id": "int64", "level": "int8", "anchor": "int32", "label": "int16",
    "cls": "float32", "obj": "float32", "x1": "float32", "y1": "float32", "x2": "float32",
    "y2": "float32", **MATCH_COLUMNS, "population": "int8",
}
SELECTED, BY_IOU = 1, 2  # bits of ``population``
# The IoU above which the dump records every anchor, whatever its scores: a population that
# selects on no score, for comparing scores against the IoU without tilting the comparison.
IOU_POPULATION = 0.3
DETECTION_COLUMNS = {
    "image_id": "int64", "label": "int16", "score": "float32", "cls": "float32", "obj": "float32",
    "x1": "float32", "y1": "float32", "x2": "float32", "y2": "float32", **MATCH_COLUMNS,
}
IMAGE_COLUMNS = {"image_id": "int64", "num_gt": "int32", "positive_anchors": "int32",
                 "width": "int32", "height": "int32"}
