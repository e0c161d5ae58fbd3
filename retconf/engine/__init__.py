"""mmengine integration: a Runner that resumes safely on current torch, and bookkeeping hooks."""
from .cpu_speed import ChannelsLastHook, CPUAutocastOptimWrapper, cpu_has_bf16
from .feature_cache import FrozenFeatureCacheHook
from .hooks import LossGuardHook, MetricsFileHook, TrainingDiverged
from .runner import SafeRunner

__all__ = ["ChannelsLastHook", "CPUAutocastOptimWrapper", "cpu_has_bf16", "FrozenFeatureCacheHook", "LossGuardHook", "MetricsFileHook", "SafeRunner", "TrainingDiverged"]
