"""Models: quality-branch heads, their losses and IoU targets (score fusion: :mod:`retconf.fusion`)."""
from . import targets
from .dense_heads import IoUAwareRetinaHead, QualityRetinaHead, RetinaConfHead
from .losses import QualityLoss

__all__ = ["IoUAwareRetinaHead", "QualityLoss", "QualityRetinaHead", "RetinaConfHead", "targets"]
