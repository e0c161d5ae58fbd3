"""Analysis of prediction dumps: pure functions, DataFrame in -> DataFrame/dict out.

The lower layer: it imports nothing from ``retconf`` and needs no mmdet, mmengine or mmcv (the
light install, docs/install.md); ``retconf`` stands on it.

- :mod:`analysis.fusion`: score fusion and the :class:`~analysis.fusion.Fusion` ranking rule (shared
  with the heads and the dump); :mod:`analysis.ablation_tables`: the paper's Tables 2–4 grids.
- :mod:`analysis.boxes`: box IoU (mmdet's ``bbox_overlaps``) and the dump's ground-truth matching.
- :mod:`analysis.nms`: mmcv's ``nms`` / ``batched_nms`` (mmcv's own, or a tested port without it).
- :mod:`analysis.coco_check`: COCO annotation files loaded and checked; :mod:`analysis.errors`.
- :mod:`analysis.io`: load and validate ``retconf dump`` directories.
- :mod:`analysis.runs`: the layout of a ``retconf reproduce`` run directory and its ``summary.json``.
- :mod:`analysis.rescore`: re-score cached candidates under any fusion: fuse, select, run the
  inference NMS (α and fusion sweeps without re-running the detector).
- :mod:`analysis.coco`: COCO AP (faster-coco-eval), labels to category ids, COCO results json input.
- :mod:`analysis.tables`: the rows of each paper table and figure from one dump (for ``over_seeds``).
- :mod:`analysis.metrics`: misalignment counts (intro Table 1), proportions (Figure 2), rank
  correlation, NMS wrong-survivor rate, the IoU oracle, side-by-side with the paper.
- :mod:`analysis.matching`: ground truth and COCO-style matching of detections (pycocotools rules).
- :mod:`analysis.calibration`: D-ECE (netcal), LaECE, reliability data, isotonic recalibration.
- :mod:`analysis.lrp`: LRP / optimal LRP with its components and per-class thresholds.
- :mod:`analysis.tide`: TIDE error breakdown (tidecv) and AP against the IoU threshold.
- :mod:`analysis.quality`: the ranking scores (cls, obj, fused, oracle) and per-dump rows of all of these.

Drawing lives apart from computing (plots arrive with the notebooks).
"""

__all__ = ["ablation_tables", "boxes", "calibration", "coco", "coco_check", "errors", "fusion", "io", "lrp", "matching",
           "metrics", "nms", "quality", "rescore", "runs", "tables", "tide"]
