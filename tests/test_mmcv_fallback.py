"""retconf.mmcv_fallback: a pure-Python mmcv ("mmcv-lite", the package without ``_ext``) plus the
stand-in ops imports mmdet, agrees with mmcv's compiled NMS and with mmdet's own focal loss, and
runs the three detectors' inference (the CPU dry run of the GPU check's fallback path)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.conftest import ROOT


def _lite_mmcv(dest: Path) -> Path:
    """A copy of the installed mmcv without its compiled ops, with the stand-in installed."""
    import mmcv

    from retconf.mmcv_fallback import install

    src = Path(mmcv.__file__).parent
    shutil.copytree(src, dest / "mmcv", ignore=shutil.ignore_patterns("_ext*.so", "__pycache__"))
    install(dest / "mmcv")
    return dest


def test_install_refuses_a_package_with_compiled_ops(tmp_path: Path) -> None:
    import mmcv

    from retconf.mmcv_fallback import install

    with pytest.raises(ValueError, match="already has compiled ops"):
        install(Path(mmcv.__file__).parent)
    with pytest.raises(ValueError, match="not an mmcv package"):
        install(tmp_path)


CHECK = r'''
import sys, torch
import mmcv, mmcv._ext
assert getattr(mmcv._ext, "FALLBACK", False), mmcv._ext.__file__
from mmcv.ops import batched_nms, nms, sigmoid_focal_loss
from mmdet.models.losses.focal_loss import py_sigmoid_focal_loss
import torch.nn.functional as F
ref = torch.load(sys.argv[1])
boxes, scores, labels = ref["boxes"], ref["scores"], ref["labels"]
dets, keep = nms(boxes, scores, 0.5)
assert torch.equal(keep, ref["nms_keep"]), (keep[:10], ref["nms_keep"][:10])
dets, keep = batched_nms(boxes, scores, labels, dict(type="nms", iou_threshold=0.6))
assert torch.equal(keep, ref["batched_keep"])
# focal loss and its gradient against mmdet's python version (what mmdet runs on CPU)
x = torch.randn(50, 7, dtype=torch.float64, requires_grad=True)
t = torch.randint(0, 8, (50,))
mine = sigmoid_focal_loss(x, t, 2.0, 0.25, None, "none")
g_mine, = torch.autograd.grad(mine.sum(), x)
y = x.detach().clone().requires_grad_(True)
theirs = py_sigmoid_focal_loss(y, F.one_hot(t, 8)[:, :7].double(), None, 2.0, 0.25, "none")
g_theirs, = torch.autograd.grad(theirs.sum(), y)
assert torch.allclose(mine, theirs, atol=1e-10) and torch.allclose(g_mine, g_theirs, atol=1e-10)
try:
    mmcv._ext.roi_align_forward()
except NotImplementedError as e:
    assert "roi_align_forward" in str(e)
else:
    raise AssertionError("a missing op must raise")
# the detectors' inference path (batched_nms inside mmdet) with the stand-in
from mmdet.utils import register_all_modules
from mmengine.config import Config
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
register_all_modules()
import retconf.plugin  # noqa: F401
for config in sys.argv[2:]:
    cfg = Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model).eval()
    sample = DetDataSample(metainfo=dict(img_shape=(192, 192), ori_shape=(192, 192), scale_factor=(1.0, 1.0)))
    with torch.no_grad():
        torch.manual_seed(0)
        out = model.predict(torch.randn(1, 3, 192, 192), [sample])[0].pred_instances
    print(config, len(out))
print("fallback ok")
'''


def test_lite_mmcv_with_the_stand_in_matches_the_compiled_ops(tmp_path: Path) -> None:
    from mmcv.ops import batched_nms, nms

    g = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=g) * 200
    wh = torch.rand(300, 2, generator=g) * 60 + 4
    boxes = torch.cat([xy, xy + wh], 1)
    scores = torch.rand(300, generator=g)
    labels = torch.randint(0, 5, (300,), generator=g)
    ref = {"boxes": boxes, "scores": scores, "labels": labels, "nms_keep": nms(boxes, scores, 0.5)[1],
           "batched_keep": batched_nms(boxes, scores, labels, dict(type="nms", iou_threshold=0.6))[1]}
    torch.save(ref, tmp_path / "ref.pt")
    lite = _lite_mmcv(tmp_path / "lite")
    configs = [str(ROOT / "experiments" / f"{n}_r18-tiny_fpn_digits.py")
               for n in ("retinanet", "iou-aware-retinanet", "retinanet-conf")]
    env = {"PYTHONPATH": f"{lite}:{ROOT}", "PATH": "/usr/bin:/bin"}
    res = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path / "ref.pt"), *configs],
                         capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "fallback ok" in res.stdout
