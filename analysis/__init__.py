"""Analysis of prediction dumps: pure functions, DataFrame in -> DataFrame/dict out.

Empty until the analysis issue lands (misalignment counts, score-IoU scatter data, proportion
curves, alpha/fusion sweeps). Drawing lives apart from computing, as in TIDE.
"""

__all__: list[str] = []
