"""retconf: RetinaNet-Conf reproduction toolkit, an mmdet 3 plugin.

``import retconf`` (what ``custom_imports = dict(imports=['retconf'])`` does) registers the
project's modules with mmdet's registries.
"""

__version__ = "0.1.0"

import warnings  # noqa: E402

# mmengine 0.10 imports pkg_resources (hence setuptools < 81, see scripts/constraints.txt), and
# setuptools warns about it on every run; the warning says nothing a user of retconf can act on.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

from . import engine, models  # noqa: E402,F401  (registration only)

__all__ = ["__version__", "engine", "models"]
