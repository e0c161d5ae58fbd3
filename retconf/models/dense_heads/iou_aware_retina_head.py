"""IoU-aware RetinaNet head: the quality branch on the regression tower, fused as
``iou^0.5 · cls^0.5`` (the IoU-aware authors' setting)."""
from __future__ import annotations

from mmdet.registry import MODELS

from .quality_retina_head import QualityRetinaHead


@MODELS.register_module()
class IoUAwareRetinaHead(QualityRetinaHead):
    """RetinaNet + IoU prediction branch on the regression tower (IoU-aware RetinaNet)."""

    def __init__(self, *args, fusion: dict | None = None, **kwargs) -> None:
        super().__init__(*args, quality_tower="reg",
                         fusion={"mode": "pow", "alpha": 0.5, **(fusion or {})}, **kwargs)
