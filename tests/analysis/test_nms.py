"""analysis.geometry.nms: without mmcv, hard NMS (:func:`analysis.geometry.nms.nms_reference` and the
``batched_nms`` around it) keeps exactly what mmcv 2.1's compiled op keeps, ties and IoUs at the
threshold included; Soft-NMS without mmcv is refused in one line naming what to install."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.geometry import nms as N

mmcv_ops = pytest.importorskip("mmcv.ops")


def _boxes(seed: int, n: int, grid: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Boxes on a coarse grid (many IoUs exactly at 0.5 and equal areas), scores with ties."""
    rng = np.random.default_rng(seed)
    xy = rng.integers(0, 12, (n, 2)) * grid
    wh = rng.integers(1, 5, (n, 2)) * grid
    boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
    scores = np.round(rng.uniform(0, 1, n), 1).astype(np.float32)
    return torch.from_numpy(boxes), torch.from_numpy(scores), torch.from_numpy(rng.integers(0, 4, n))


@pytest.fixture
def no_mmcv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(N, "mmcv_ops", lambda: None)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("thr", [0.3, 0.5, 0.6, 1 / 3])
@pytest.mark.parametrize("offset", [0, 1])
def test_reference_nms_keeps_what_mmcv_keeps(seed: int, thr: float, offset: int) -> None:
    boxes, scores, _ = _boxes(seed, 300, 2.5 if seed % 2 else 0.1)
    _, want = mmcv_ops.nms(boxes, scores, thr, offset)
    assert torch.equal(N.nms_reference(boxes, scores, thr, offset), want)


@pytest.mark.parametrize("cfg", [dict(type="nms", iou_threshold=0.5), dict(type="nms", iou_threshold=0.6),
                                 dict(type="nms", iou_threshold=0.5, class_agnostic=True),
                                 dict(type="nms", iou_threshold=0.5, split_thr=50)])
def test_batched_nms_without_mmcv_equals_mmcvs(no_mmcv: None, cfg: dict) -> None:
    for seed in range(4):
        boxes, scores, labels = _boxes(seed, 400, 1.5)
        want_dets, want = mmcv_ops.batched_nms(boxes, scores, labels, cfg)
        dets, keep = N.batched_nms(boxes, scores, labels, cfg)
        assert torch.equal(keep, want) and torch.equal(dets, want_dets)
    assert len(N.nms(torch.zeros((0, 4)), torch.zeros(0), 0.5)[1]) == 0


def test_with_mmcv_it_is_mmcvs_own_op() -> None:
    boxes, scores, labels = _boxes(0, 50, 1.0)
    assert N.mmcv_ops() is mmcv_ops
    assert torch.equal(N.nms(boxes, scores, 0.5)[1], mmcv_ops.nms(boxes, scores, 0.5)[1])


def test_soft_nms_without_mmcv_names_what_to_install(no_mmcv: None) -> None:
    boxes, scores, labels = _boxes(0, 20, 1.0)
    with pytest.raises(N.MissingOpError, match=r"NMS type 'soft_nms' needs mmcv with compiled ops.*scripts/install.sh"):
        N.batched_nms(boxes, scores, labels, dict(type="soft_nms", iou_threshold=0.5))
    with pytest.raises(ValueError, match="offset=2"):
        N.nms_reference(boxes, scores, 0.5, 2)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cfg", [dict(type="nms", iou_threshold=0.5), dict(type="nms", iou_threshold=0.3),
                                 dict(type="nms", iou_threshold=0.5, class_agnostic=True)])
@pytest.mark.parametrize("cap", [1, 5, 40, 1000])
def test_capped_nms_keeps_the_first_survivors_batched_nms_keeps(seed: int, cfg: dict, cap: int) -> None:
    """The prefix NMS gives batched_nms' keep[:cap] exactly, score ties and IoUs at the threshold
    included, class-aware (offsets over the whole image) and class-agnostic."""
    boxes, scores, labels = _boxes(seed, 400, 2.5 if seed % 2 else 0.1)
    _, keep = mmcv_ops.batched_nms(boxes, scores, labels, dict(cfg))
    got = N.capped_nms(boxes.numpy(), scores.numpy(), labels.numpy(), dict(cfg), cap)
    assert got is not None and got.tolist() == keep[:cap].tolist()


def test_capped_nms_declines_what_is_not_the_same_computation() -> None:
    boxes, scores, labels = _boxes(0, 50, 1.0)
    b, s, lab = boxes.numpy(), scores.numpy(), labels.numpy()
    soft = dict(type="soft_nms", iou_threshold=0.5, sigma=0.5, min_score=1e-3, method="linear")
    assert N.capped_nms(b, s, lab, soft, 10) is None
    assert N.capped_nms(b, s, lab, dict(type="nms", iou_threshold=0.5, split_thr=20), 10) is None
    many = np.repeat(b, N.SPLIT_THR // len(b) + 1, 0)
    assert N.capped_nms(many, np.resize(s, len(many)), np.resize(lab, len(many)),
                        dict(type="nms", iou_threshold=0.5), 10) is None
    assert N.capped_nms(b[:0], s[:0], lab[:0], dict(type="nms", iou_threshold=0.5), 10).tolist() == []
