"""Analysis of prediction dumps: pure functions, DataFrame in -> DataFrame/dict out.

The lower layer: it imports nothing from ``retconf`` and needs no mmdet, mmengine or mmcv (the
light install, docs/install.md); ``retconf`` stands on it. Seven groups, each importing only
from the groups listed before it (tests/analysis/test_layers.py checks it; docs/layout.md gives
every module):

- :mod:`analysis.inputs`: reading and checking dumps, run directories and COCO files.
- :mod:`analysis.geometry`: box IoU, NMS, COCO-style matching.
- :mod:`analysis.scoring`: score fusion and re-scoring cached candidates.
- :mod:`analysis.measures`: COCO metrics, misalignment, calibration, LRP, TIDE, seed statistics.
- :mod:`analysis.paper`: the paper's tables, its claims registry and the findings that test it.
- :mod:`analysis.studies`: each report page's computations.
- :mod:`analysis.views`: drawing and display only.
"""

GROUPS: tuple[str, ...] = ("inputs", "geometry", "scoring", "measures", "paper", "studies", "views")

__all__ = list(GROUPS)
