"""Losses of the quality branch."""
from .quality_loss import QUALITY_LOSSES, QualityLoss, elementwise_quality_loss, quality_loss

__all__ = ["QUALITY_LOSSES", "QualityLoss", "elementwise_quality_loss", "quality_loss"]
