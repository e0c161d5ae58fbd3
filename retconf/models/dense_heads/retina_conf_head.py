"""RetinaNet-Conf head: the quality branch on the classification tower, fused as
``obj^0.4 · cls^0.6`` (the paper's setting)."""
from __future__ import annotations

from mmdet.registry import MODELS

from .quality_retina_head import QualityRetinaHead


@MODELS.register_module()
class RetinaConfHead(QualityRetinaHead):
    """RetinaNet + object confidence branch on the classification tower (paper, Section 3)."""

    def __init__(self, *args, fusion: dict | None = None, **kwargs) -> None:
        super().__init__(*args, quality_tower="cls",
                         fusion={"mode": "pow", "alpha": 0.4, **(fusion or {})}, **kwargs)
