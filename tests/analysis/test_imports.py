"""``analysis`` stands on its own: it imports nothing from ``retconf``, and every module imports,
fuses, matches, re-scores (NMS included) and checks COCO files with mmdet, mmengine and mmcv
made unimportable; ``retconf``'s old names re-export the moved pieces; ``retconf.capture`` and
``retconf.dump`` no longer import each other."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# Prepended to a subprocess: importing any of these packages raises ImportError, as on a machine
# that never installed them (the light install of docs/install.md).
BLOCK = """
import sys
BLOCKED = {"mmdet", "mmengine", "mmcv"}
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"blocked for this test: {name}")
        return None
sys.meta_path.insert(0, _Block())
"""

CHECK = BLOCK + """
import importlib, json, pkgutil
import numpy as np, pandas as pd, torch
import analysis
for m in pkgutil.walk_packages(analysis.__path__, "analysis."):
    importlib.import_module(m.name)
loaded = sorted({k.split(".")[0] for k in sys.modules} & {"mmdet", "mmengine", "mmcv", "retconf"})
print("loaded:", loaded, flush=True)
from analysis.scoring.fusion import fuse_arrays
from analysis.scoring.rescore import nms_per_image
fuse_arrays(np.array([0.5], np.float32), np.array([0.2], np.float32), "pow", 0.4, 0.5)
kept = nms_per_image(pd.DataFrame(json.loads(sys.argv[1])), 0.5, 100)
print("kept:", json.dumps([[int(i), int(l), float(s)] for i, l, s in zip(kept.image_id, kept.label, kept.score)]))
from analysis.geometry.boxes import match_gt
match_gt(torch.tensor([[0., 0., 10., 10.]]), torch.tensor([1]), torch.tensor([[0., 0., 10., 5.]]), torch.tensor([1]))
loaded = sorted({k.split(".")[0] for k in sys.modules} & {"mmdet", "mmengine", "mmcv", "retconf"})
print("still loaded:", loaded)
sys.exit(1 if loaded else 0)
"""


def _frame() -> dict:
    """Two images of overlapping boxes on a coarse grid with tied scores (a select_candidates output)."""
    import numpy as np

    rng = np.random.default_rng(3)
    n = 60
    xy = rng.integers(0, 40, (n, 2)).astype(np.float32)
    wh = rng.integers(4, 20, (n, 2)).astype(np.float32)
    return {"image_id": sorted(rng.integers(1, 3, n).tolist()), "label": rng.integers(0, 3, n).tolist(),
            "score": np.round(rng.uniform(0.05, 1, n), 1).tolist(),
            "x1": xy[:, 0].tolist(), "y1": xy[:, 1].tolist(), "x2": (xy + wh)[:, 0].tolist(), "y2": (xy + wh)[:, 1].tolist()}


def test_analysis_imports_and_rescores_with_mmdet_mmengine_mmcv_blocked() -> None:
    import json

    import pandas as pd

    frame = _frame()
    res = subprocess.run([sys.executable, "-c", CHECK, json.dumps(frame)], capture_output=True, text=True,
                         cwd=ROOT, timeout=300)
    assert "loaded: []" in res.stdout, res.stdout + res.stderr[-3000:]
    assert res.returncode == 0 and "still loaded: []" in res.stdout, res.stdout + res.stderr[-3000:]
    # the NMS that ran without mmcv keeps what mmcv's batched_nms keeps (this process has mmcv)
    from analysis.scoring.rescore import nms_per_image

    want = nms_per_image(pd.DataFrame(frame), 0.5, 100)
    got = json.loads(res.stdout.split("kept: ", 1)[1].splitlines()[0])
    assert got == [[int(i), int(lab), float(s)] for i, lab, s in zip(want.image_id, want.label, want.score)]


def _imports(path: Path) -> set[str]:
    """Every module an ``import`` statement of ``path`` names, at any depth (function-level too);
    relative imports resolved against the package of ``path``."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            mod = ".".join(p for p in (base, node.module or "") if p)
            names |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return names


def test_no_analysis_module_imports_retconf_anywhere() -> None:
    found = {p.name: sorted(n for n in _imports(p) if n.split(".")[0] == "retconf")
             for p in sorted((ROOT / "analysis").rglob("*.py"))}
    assert {k: v for k, v in found.items() if v} == {}


def test_capture_and_dump_do_not_import_each_other() -> None:
    capture, dump = _imports(ROOT / "retconf" / "capture.py"), _imports(ROOT / "retconf" / "dump.py")
    assert "retconf.capture" in dump  # the dump drives the capture ...
    assert not any(n.startswith("retconf.dump") for n in capture)  # ... which no longer reaches back


def test_old_retconf_names_are_the_analysis_objects() -> None:
    import analysis.geometry.boxes as boxes
    import analysis.inputs.coco_check as cc
    import analysis.inputs.errors as errors
    import analysis.paper.ablation_tables as at
    import analysis.scoring.fusion as fusion
    import retconf.ablations
    import retconf.data.coco_check
    import retconf.dump
    import retconf.errors
    import retconf.fusion

    assert retconf.fusion.Fusion is fusion.Fusion and retconf.fusion.fusion_grid is fusion.fusion_grid
    assert retconf.fusion.TABLE4_RULES is fusion.TABLE4_RULES and retconf.fusion.topk_pairs is fusion.topk_pairs
    assert retconf.ablations.TABLE_ROWS is at.TABLE_ROWS and retconf.ablations.GRIDS is at.GRIDS
    assert retconf.ablations.TRAINED_VARIANTS is at.TRAINED_VARIANTS
    assert retconf.dump.box_iou is boxes.box_iou and retconf.dump.match_gt is boxes.match_gt
    assert retconf.data.coco_check.validate_coco is cc.validate_coco
    assert retconf.data.coco_check.load_coco_json is cc.load_coco_json
    assert retconf.errors.DatasetError is errors.DatasetError is cc.DatasetError
    assert issubclass(errors.DatasetError, retconf.errors.RetconfError)


def test_retconf_report_parses_without_mmengine_and_refuses_cfg_options_in_one_line() -> None:
    code = BLOCK + """
from retconf.cli import build_parser
args = build_parser().parse_args(["report", "some/dumps"])
print("parsed", args.command)
build_parser().parse_args(["test", "cfg.py", "ckpt.pth", "--cfg-options", "a=1"])
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert "parsed report" in res.stdout, res.stderr[-2000:]
    assert res.returncode == 2 and "--cfg-options needs mmengine" in res.stderr, res.stderr[-2000:]


def test_importing_retconf_plugin_registers_the_heads() -> None:
    code = ("import retconf.plugin\nfrom mmdet.registry import HOOKS, MODELS, OPTIM_WRAPPERS\n"
            "assert MODELS.get('RetinaConfHead') and MODELS.get('QualityLoss')\n"
            "assert HOOKS.get('ChannelsLastHook') and OPTIM_WRAPPERS.get('CPUAutocastOptimWrapper')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
