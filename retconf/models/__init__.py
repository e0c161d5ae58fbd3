"""Models: quality-branch heads, their losses, IoU targets and score fusion."""
from . import fusion, targets
from .dense_heads import IoUAwareRetinaHead, QualityRetinaHead, RetinaConfHead
from .losses import QualityLoss

__all__ = ["IoUAwareRetinaHead", "QualityLoss", "QualityRetinaHead", "RetinaConfHead",
           "fusion", "targets"]
