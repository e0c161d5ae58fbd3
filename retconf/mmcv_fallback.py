"""A documented fallback for mmcv's compiled ops: the two RetinaNet needs, in plain PyTorch.

mmcv 2.1.0 ships only as a source distribution; its ops (``mmcv._ext``) must be compiled
against the local torch and CUDA, which takes minutes and may fail on a newer toolchain. mmdet
imports ``mmcv.ops`` unconditionally, so without ``_ext`` nothing imports at all. This module
is a stand-in ``mmcv/_ext.py`` for a pure-Python mmcv (the sdist's ``mmcv/`` folder copied as
is, "mmcv-lite"): every op name resolves (``mmcv.ops`` checks that names exist when it is
imported), the ops a RetinaNet-family detector runs are implemented with torch, and any other
op raises ``NotImplementedError`` naming itself when it is called.

Implemented (same signatures and in-place conventions as mmcv's C++/CUDA ops):

- ``nms(boxes, scores, iou_threshold, offset)``: ``torchvision.ops.nms`` (CUDA kernel) when
  torchvision is importable and ``offset == 0``, else a torch loop over an IoU matrix.
- ``sigmoid_focal_loss_forward/backward``: the focal loss of mmcv's kernel written with torch
  ops (forward), its gradient by autograd (backward).

Install it with :func:`install` (``python -m retconf.mmcv_fallback MMCV_PACKAGE_DIR``), which
writes ``MMCV_PACKAGE_DIR/_ext.py``.
"""
from __future__ import annotations

import sys
from pathlib import Path

# Appended to this module's own source when it is installed as ``mmcv/_ext.py`` (the copy must
# not import retconf: retconf imports mmdet, which imports mmcv.ops, which imports _ext).
SHIM_TAIL = """
# --- installed by retconf.mmcv_fallback.install: every other op name resolves to a stub
__getattr__ = missing_op
FALLBACK = True
"""


def missing_op(name: str):
    """Module ``__getattr__`` of the stand-in: any other op exists but raises when called."""
    if name.startswith("__"):
        raise AttributeError(name)

    def op(*args, **kwargs):
        raise NotImplementedError(f"mmcv op {name!r} is not available: mmcv was installed without "
                                  "compiled ops and retconf's fallback implements only nms and "
                                  "sigmoid_focal_loss (build mmcv with MMCV_WITH_OPS=1 for the rest)")
    op.__name__ = name
    return op


def _nms_torch(boxes, scores, iou_threshold: float, offset: int):
    import torch

    order = scores.argsort(descending=True)
    boxes = boxes[order]
    x1, y1, x2, y2 = boxes.unbind(1)
    areas = (x2 - x1 + offset) * (y2 - y1 + offset)
    keep = []
    suppressed = torch.zeros(len(order), dtype=torch.bool, device=boxes.device)
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        w = (torch.minimum(x2[i], x2[i + 1:]) - torch.maximum(x1[i], x1[i + 1:]) + offset).clamp(min=0)
        h = (torch.minimum(y2[i], y2[i + 1:]) - torch.maximum(y1[i], y1[i + 1:]) + offset).clamp(min=0)
        inter = w * h
        iou = inter / (areas[i] + areas[i + 1:] - inter)
        suppressed[i + 1:] |= iou > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=boxes.device)]


def nms(boxes, scores, iou_threshold: float = 0.5, offset: int = 0):
    """Indices (Tensor[K], long) of the boxes (Tensor[N, 4]) kept, by decreasing score (Tensor[N])."""
    import torch

    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    if offset == 0:
        try:
            from torchvision.ops import nms as tv_nms
        except ImportError:
            tv_nms = None
        if tv_nms is not None:
            return tv_nms(boxes.float(), scores.float(), float(iou_threshold))
    return _nms_torch(boxes.float(), scores.float(), float(iou_threshold), int(offset))


def _focal(input, target, weight, gamma: float, alpha: float):
    """Element-wise sigmoid focal loss (Tensor[N, C]) as mmcv's kernel computes it: target[n] is
    a class index, ``C`` meaning background. mmdet never passes ``weight``; mmcv's kernel would
    scale row n by weight[target[n]], which is undefined for background rows, so a non-empty
    ``weight`` is refused."""
    import torch.nn.functional as F

    if weight is not None and weight.numel() > 0:
        raise NotImplementedError("retconf's mmcv fallback: sigmoid_focal_loss with a class weight")
    n, c = input.shape
    t = F.one_hot(target.clamp(max=c), c + 1)[:, :c].to(input.dtype)
    p = input.sigmoid()
    log_p = F.logsigmoid(input)
    log_1mp = F.logsigmoid(-input)
    return -alpha * t * (1 - p).pow(gamma) * log_p - (1 - alpha) * (1 - t) * p.pow(gamma) * log_1mp


def sigmoid_focal_loss_forward(input, target, weight, output, gamma: float = 2.0, alpha: float = 0.25) -> None:
    """Fill ``output`` (Tensor[N, C]) with the element-wise loss, like mmcv's op."""
    output.copy_(_focal(input, target, weight, float(gamma), float(alpha)))


def sigmoid_focal_loss_backward(input, target, weight, grad_input, gamma: float = 2.0, alpha: float = 0.25) -> None:
    """Fill ``grad_input`` (Tensor[N, C]) with d(loss)/d(input) element-wise, like mmcv's op."""
    import torch

    with torch.enable_grad():
        x = input.detach().requires_grad_(True)
        (grad,) = torch.autograd.grad(_focal(x, target, weight, float(gamma), float(alpha)).sum(), x)
    grad_input.copy_(grad)


def install(mmcv_dir: str | Path) -> Path:
    """Write the stand-in ``_ext.py`` into an mmcv package folder without compiled ops."""
    mmcv_dir = Path(mmcv_dir)
    if not (mmcv_dir / "ops" / "__init__.py").is_file():
        raise ValueError(f"{mmcv_dir} is not an mmcv package folder (no ops/__init__.py)")
    compiled = sorted(mmcv_dir.glob("_ext*.so"))
    if compiled:
        raise ValueError(f"{mmcv_dir} already has compiled ops ({compiled[0].name}); not replacing them")
    target = mmcv_dir / "_ext.py"
    target.write_text(Path(__file__).read_text() + SHIM_TAIL)
    return target


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m retconf.mmcv_fallback MMCV_PACKAGE_DIR")
    print(f"wrote {install(sys.argv[1])}")
