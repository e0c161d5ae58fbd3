"""retconf: RetinaNet-Conf reproduction toolkit, an mmdet 3 plugin.

``import retconf`` (what ``custom_imports = dict(imports=['retconf'])`` does) registers the
project's modules with mmdet's registries.
"""

__version__ = "0.1.0"

from . import engine, models  # noqa: E402,F401  (registration only)

__all__ = ["__version__", "engine", "models"]
