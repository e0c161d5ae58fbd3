"""mmengine integration: a Runner that resumes safely on current torch, and bookkeeping hooks."""
from .hooks import MetricsFileHook
from .runner import SafeRunner

__all__ = ["MetricsFileHook", "SafeRunner"]
