"""mmengine integration: a Runner that resumes safely on current torch, and bookkeeping hooks."""
from .hooks import LossGuardHook, MetricsFileHook, TrainingDiverged
from .runner import SafeRunner

__all__ = ["LossGuardHook", "MetricsFileHook", "SafeRunner", "TrainingDiverged"]
