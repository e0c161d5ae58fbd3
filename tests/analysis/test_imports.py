"""``analysis`` stands on its own: importing every module (and fusing scores) loads no mmdet,
mmengine or mmcv — only the dump schema's light stack (and torch for the shared fusion)."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

CHECK = """
import importlib, pkgutil, sys
import numpy as np
import analysis
for m in pkgutil.iter_modules(analysis.__path__):
    importlib.import_module("analysis." + m.name)
from analysis.rescore import fused_scores
fused_scores(np.array([0.5], np.float32), np.array([0.2], np.float32), "pow", 0.4, 0.5)
heavy = sorted({k.split(".")[0] for k in sys.modules} & {"mmdet", "mmengine", "mmcv"})
print("heavy:", heavy)
sys.exit(1 if heavy else 0)
"""


def test_importing_analysis_loads_no_mmdet() -> None:
    res = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr[-2000:]
    assert "heavy: []" in res.stdout


def test_importing_retconf_plugin_registers_the_heads() -> None:
    code = ("import retconf.plugin\nfrom mmdet.registry import HOOKS, MODELS, OPTIM_WRAPPERS\n"
            "assert MODELS.get('RetinaConfHead') and MODELS.get('QualityLoss')\n"
            "assert HOOKS.get('ChannelsLastHook') and OPTIM_WRAPPERS.get('CPUAutocastOptimWrapper')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
