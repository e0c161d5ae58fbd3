"""retconf: RetinaNet-Conf reproduction toolkit, an mmdet 3 plugin.

``import retconf.plugin`` registers the project's modules (heads, losses, hooks, runner, optim
wrapper) with mmdet's registries. ``import retconf`` does so too when mmengine is already
loaded — which it is when a config's ``custom_imports = dict(imports=['retconf'])`` is
processed — and otherwise stays light, so that ``analysis`` (which uses the pure
:mod:`retconf.fusion`) imports without mmdet.
"""

__version__ = "0.1.0"

import warnings  # noqa: E402

# mmengine 0.10 imports pkg_resources (hence setuptools < 81, see scripts/constraints.txt), and
# setuptools warns about it on every run; the warning says nothing a user of retconf can act on.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)

import sys  # noqa: E402

if "mmengine" in sys.modules:  # a config's custom_imports, or any user of mmdet: register now
    from . import plugin  # noqa: E402,F401

__all__ = ["__version__"]
