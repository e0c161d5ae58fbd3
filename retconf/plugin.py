"""``import retconf.plugin``: register retconf's modules with mmdet's registries (the heads and
losses of :mod:`retconf.models`, the hooks, runner and optim wrapper of :mod:`retconf.engine`)."""
from . import engine, models  # noqa: F401  (registration)

__all__ = ["engine", "models"]
