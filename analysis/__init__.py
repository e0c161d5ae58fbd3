"""Analysis of prediction dumps: pure functions, DataFrame in -> DataFrame/dict out.

- :mod:`analysis.io`: load and validate ``retconf dump`` directories.
- :mod:`analysis.rescore`: re-score cached candidates under any fusion, run the inference NMS,
  evaluate COCO AP (α and fusion sweeps without re-running the detector).
- :mod:`analysis.metrics`: misalignment counts (intro Table 1), proportions (Figure 2), rank
  correlation, NMS wrong-survivor rate, the IoU oracle, side-by-side with the paper.

Drawing lives apart from computing (plots arrive with the notebooks).
"""

__all__ = ["io", "metrics", "rescore"]
