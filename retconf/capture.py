"""Pre-NMS candidates of any mmdet 3 dense head, taken from the head's own post-processing.

mmdet's dense heads turn raw outputs into detections in ``_predict_by_feat_single`` (one image,
all levels). :func:`recording` wraps that method on the head *instance* for the duration of one
call (mmdet's source is untouched) and records its inputs: per level the raw classification
output, the box regression, the score factors (a separate quality score such as centerness or
a predicted IoU, before it is multiplied in) and the priors. A small adapter per
post-processing family turns the record into :class:`Level` s — classification probability,
quality score (NaN where the head has none) and a box decoder — and states the head's ranking
rule as a :class:`retconf.fusion.Fusion`.

Glossary: L levels, A priors of a level (anchors or points), K classes, N selected pairs.

==========================  ===========  =============================  =====================
head (mmdet 3.3)            quality      score NMS ranks by (deployed)  re-scoring from a dump
==========================  ===========  =============================  =====================
RetinaHead                  none         cls                            exact
QualityRetinaHead (ours)    obj          its ``fusion`` (α 0.4 pow)     exact for the grid
FCOSHead, ATSSHead,         centerness / cls · quality, after top-k     exact for the grid
DDODHead, other base heads  predicted    (``mul``, ``after_topk``)
                            IoU
GFLHead                     none (in     cls                            exact (cls only)
                            cls)
VFNetHead                   none (in     cls                            exact (cls only)
                            cls)
TOODHead                    alignment    sqrt(cls · prob) (``geo``)     exact for the grid
                            probability
PAAHead                     predicted    sqrt(cls · IoU) (``geo``) over exact for the grid;
                            IoU          the top-k *anchors*, then      voted boxes to
                                         score voting                   float32 rounding
YOLOXHead                   objectness   cls · obj (``mul``), one       exact for the grid
                                         class per anchor, no top-k
==========================  ===========  =============================  =====================

"Exact for the grid": re-scoring with any fusion of :func:`retconf.fusion.fusion_grid` and the
dump's ``score_thr``/``nms_pre`` sees exactly the candidates live inference would (tested per
family); other α values or a lower ``score_thr`` are approximations. Besides the ranking rule,
each adapter states the rest of its head's post-processing (:attr:`Adapter.post_process`:
selection, score voting, whether ``min_bbox_size`` and ``max_per_img`` apply), which the dump
records and :func:`analysis.scoring.rescore.inference_kwargs` follows. PAA's voted boxes match to float32
rounding only: on a level with fewer anchors than ``nms_pre`` PAA keeps its candidates in anchor
order, which a dump does not record, so the vote sums in another order. Heads that
post-process in yet another way (CenterNet, YOLOv3, FoveaBox, RepPoints, ...) have no adapter
and are refused with a message naming the method.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from mmdet.models.dense_heads.base_dense_head import BaseDenseHead
from torch import Tensor

from .errors import ConfigError
from .fusion import BASE_POST_PROCESS, Fusion


class UnsupportedHead(ConfigError):
    """A dense head whose post-processing no adapter understands (a config error: the CLI
    reports it in one line)."""


@dataclass
class Record:
    """What one ``predict_by_feat`` call of one image passed to ``_predict_by_feat_single``
    (``args``: its bound arguments) and the outputs of the modules an adapter hooks
    (``outputs[name]``: one tensor per level, in forward order)."""

    args: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)


@dataclass
class Level:
    """One pyramid level of one image.

    ``cls`` (Tensor[A, K]) classification probability before any quality is folded in;
    ``quality`` (Tensor[A]) the separate quality score, NaN where the head has none;
    ``priors`` (Tensor[A, 2] points or Tensor[A, 4] anchors, the network input frame);
    ``decode(anchors)``: boxes (Tensor[N, 4], input frame) of the given prior indices
    (Tensor[N]), computed as the head computes them.
    """

    cls: Tensor
    quality: Tensor
    priors: Tensor
    decode: Callable[[Tensor], Tensor]


def base_post_process(head: Any) -> dict:
    """``BaseDenseHead._bbox_post_process`` (:data:`retconf.fusion.BASE_POST_PROCESS`)."""
    return dict(BASE_POST_PROCESS)


@dataclass(frozen=True)
class Adapter:
    """How to read one family's record: the method it wraps (``method``), the modules whose
    outputs it needs (``hooks``), the levels (``levels(head, record)``), the ranking rule
    (``rule(head, record)``, None for plain ``cls`` ranking with no separate quality) and the
    rest of the post-processing (``post_process(head)``: ``selection`` of
    :meth:`retconf.fusion.Fusion.select`, ``score_voting``, whether ``min_bbox_size`` and
    ``max_per_img`` apply),
    which the dump's metadata records for the re-scoring."""

    name: str
    levels: Callable[[Any, Record], list[Level]]
    rule: Callable[[Any, Record], Fusion | None]
    hooks: tuple[str, ...] = ()
    method: str = "_predict_by_feat_single"
    post_process: Callable[[Any], dict] = base_post_process


def _flat(t: Tensor, width: int) -> Tensor:
    """A level's map (Tensor[C, H, W]) as rows (Tensor[H·W·C/width, width]), mmdet's order."""
    return t.permute(1, 2, 0).reshape(-1, width)


def _probabilities(head: Any, logits: Tensor) -> Tensor:
    """Classification probabilities (Tensor[A, K]) from logits (Tensor[A, K or K+1]) as
    ``BaseDenseHead._predict_by_feat_single`` computes them."""
    if head.use_sigmoid_cls:
        return logits.sigmoid()
    return logits.softmax(-1)[:, :-1]


def _nan(n: int) -> Tensor:
    return torch.full((n,), float("nan"))


def base_levels(head: Any, record: Record) -> list[Level]:
    """``BaseDenseHead._predict_by_feat_single`` (RetinaNet, FCOS, ATSS, VFNet, DDOD, ours):
    sigmoid/softmax classification, ``score_factors`` through a sigmoid as the quality, boxes
    by ``bbox_coder.decode(priors, deltas, max_shape)``."""
    a = record.args
    img_shape = a["img_meta"]["img_shape"]
    dim = head.bbox_coder.encode_size
    levels = []
    for cls, deltas, factor, priors in zip(a["cls_score_list"], a["bbox_pred_list"],
                                           a["score_factor_list"], a["mlvl_priors"]):
        probs = _probabilities(head, _flat(cls, head.cls_out_channels))
        quality = _nan(len(probs)) if factor is None else factor.permute(1, 2, 0).reshape(-1).sigmoid()
        flat = _flat(deltas, dim)
        levels.append(Level(probs, quality, priors, lambda i, p=priors, d=flat: head.bbox_coder.decode(
            p[i], d[i], max_shape=img_shape)))
    return levels


def base_rule(head: Any, record: Record) -> Fusion | None:
    """Our quality heads deploy their ``fusion``; other base heads with score factors (FCOS,
    ATSS, DDOD) multiply them into the classification score after the per-level top-k (mmdet's
    ``_bbox_post_process``); heads without (RetinaNet, VFNet) rank by ``cls``.

    A quality head with ``fusion.legacy_level_bug`` (the original code's per-level rule, no
    :class:`Fusion`) gets its product without the flag: that rule builds the candidate grid, while
    the dump's ``meta['fusion']`` (``head.fusion`` itself) keeps the flag, and re-scoring the
    deployed rule of such a dump is refused (:func:`analysis.scoring.rescore.deployed_fusion`)."""
    if hasattr(head, "fusion"):
        return Fusion.of({k: v for k, v in head.fusion.items() if k != "legacy_level_bug"})
    has_factors = record.args["score_factor_list"][0] is not None
    return Fusion("mul", order="after_topk") if has_factors else None


def gfl_levels(head: Any, record: Record) -> list[Level]:
    """``GFLHead._predict_by_feat_single``: quality joined into the sigmoid class score;
    boxes from the integral of the predicted distribution times the stride around the anchor
    centre."""
    a = record.args
    img_shape = a["img_meta"]["img_shape"]
    levels = []
    for cls, deltas, stride, priors in zip(a["cls_score_list"], a["bbox_pred_list"],
                                           head.prior_generator.strides, a["mlvl_priors"]):
        probs = _flat(cls, head.cls_out_channels).sigmoid()
        dist = head.integral(deltas.permute(1, 2, 0)) * stride[0]
        levels.append(Level(probs, _nan(len(probs)), priors, lambda i, p=priors, d=dist: head.bbox_coder.decode(
            head.anchor_center(p[i]), d[i], max_shape=img_shape)))
    return levels


def tood_levels(head: Any, record: Record) -> list[Level]:
    """``TOODHead``: the class score it ranks by is sqrt(σ(class logits) · σ(alignment
    logits)); the two are read from the ``tood_cls`` and ``cls_prob_module`` outputs. Boxes are
    the head's decoded boxes times the stride (no clipping, as TOOD does)."""
    a = record.args
    levels = []
    for logits, prob, deltas, stride, priors in zip(
            record.outputs["tood_cls"], record.outputs["cls_prob_module"], a["bbox_pred_list"],
            head.prior_generator.strides, a["mlvl_priors"]):
        probs = _flat(logits[0], head.cls_out_channels).sigmoid()
        quality = prob[0].permute(1, 2, 0).reshape(-1).sigmoid()
        boxes = _flat(deltas, 4) * stride[0]
        levels.append(Level(probs, quality, priors, lambda i, b=boxes: b[i]))
    return levels


def _geo_rule(head: Any, record: Record) -> Fusion:
    return Fusion("geo", 0.5)


def _paa_post_process(head: Any) -> dict:
    """``PAAHead._bbox_post_process``: the top ``nms_pre`` anchors by their best
    sqrt(cls · IoU), ``multiclass_nms`` on the pairs above ``score_thr``, then score voting
    (``with_score_voting``); no ``min_bbox_size`` filter."""
    return {**BASE_POST_PROCESS, "selection": "anchors", "score_voting": bool(head.with_score_voting),
            "min_bbox_size": False}


def yolox_levels(head: Any, record: Record) -> list[Level]:
    """``YOLOXHead.predict_by_feat`` (it has no ``_predict_by_feat_single``): sigmoid class
    scores and objectness per level, boxes by the head's ``_bbox_decode`` from the priors with
    their strides. ``priors`` of a level are its points (the stride columns dropped)."""
    a = record.args
    featmap_sizes = [c.shape[2:] for c in a["cls_scores"]]
    mlvl_priors = head.prior_generator.grid_priors(featmap_sizes, dtype=a["cls_scores"][0].dtype,
                                                   device=a["cls_scores"][0].device, with_stride=True)
    # the sigmoids over all levels at once, as YOLOX takes them (a vectorised sigmoid can round
    # an element differently at another offset)
    sizes = [len(p) for p in mlvl_priors]
    probs = torch.cat([_flat(c[0], head.cls_out_channels) for c in a["cls_scores"]]).sigmoid().split(sizes)
    quality = torch.cat([o[0].permute(1, 2, 0).reshape(-1) for o in a["objectnesses"]]).sigmoid().split(sizes)
    levels = []
    for p, q, deltas, priors in zip(probs, quality, a["bbox_preds"], mlvl_priors):
        flat = _flat(deltas[0], 4)
        levels.append(Level(p, q, priors[:, :2], lambda i, pr=priors, d=flat: head._bbox_decode(
            pr[i], d[i][None])[0]))
    return levels


def _yolox_rule(head: Any, record: Record) -> Fusion:
    return Fusion("mul")


def _yolox_post_process(head: Any) -> dict:
    """``YOLOXHead``: each anchor's most probable class, kept where objectness · cls ≥
    ``score_thr`` over all levels at once (no top-k); no ``min_bbox_size`` filter and no
    ``max_per_img`` limit (mmdet 3.3's YOLOX keeps every box NMS keeps)."""
    return {**BASE_POST_PROCESS, "selection": "argmax", "min_bbox_size": False, "max_per_img": False}


def _no_quality(head: Any, record: Record) -> None:
    return None


def _methods() -> dict:
    """``_predict_by_feat_single`` → adapter (built lazily: the mmdet heads import on demand)."""
    from mmdet.models.dense_heads import GFLHead, PAAHead, TOODHead

    return {
        BaseDenseHead._predict_by_feat_single: Adapter("base", base_levels, base_rule),
        GFLHead._predict_by_feat_single: Adapter("gfl", gfl_levels, _no_quality),
        TOODHead._predict_by_feat_single: Adapter("tood", tood_levels, _geo_rule,
                                                  hooks=("tood_cls", "cls_prob_module")),
        PAAHead._predict_by_feat_single: Adapter("paa", base_levels, _geo_rule, post_process=_paa_post_process),
    }


def _batch_methods() -> dict:
    """``predict_by_feat`` → adapter, for heads whose own ``predict_by_feat`` does all the
    post-processing (None: one that only delegates to BaseDenseHead's, as PAA's does)."""
    from mmdet.models.dense_heads import PAAHead, YOLOXHead

    return {
        BaseDenseHead.predict_by_feat: None,
        PAAHead.predict_by_feat: None,
        YOLOXHead.predict_by_feat: Adapter("yolox", yolox_levels, _yolox_rule, method="predict_by_feat",
                                           post_process=_yolox_post_process),
    }


def adapter_for(head: Any) -> Adapter:
    """The adapter of a head, chosen by the post-processing it actually runs (so subclasses that
    keep a parent's method are covered). Raises :class:`UnsupportedHead` naming the method."""
    cls = type(head)
    batch = _batch_methods()
    if cls.predict_by_feat not in batch:
        raise UnsupportedHead(f"{cls.__name__} overrides predict_by_feat "
                              f"({inspect.getsourcefile(cls.predict_by_feat)}): retconf cannot capture its "
                              "candidates yet; supported: BaseDenseHead's, PAAHead's and YOLOXHead's")
    if batch[cls.predict_by_feat] is not None:
        return batch[cls.predict_by_feat]
    method = cls._predict_by_feat_single
    adapter = _methods().get(method)
    if adapter is not None:
        return adapter
    # Our quality heads override the method but keep the base inputs (score factors = quality logits).
    if hasattr(head, "fusion"):
        return Adapter("base", base_levels, base_rule)
    raise UnsupportedHead(f"{cls.__name__}._predict_by_feat_single is its own "
                          f"({inspect.getsourcefile(method)}); supported: BaseDenseHead's, GFLHead's, "
                          "TOODHead's, PAAHead's and retconf's quality heads")


@contextmanager
def recording(head: Any, hooks: tuple[str, ...] = (), method: str = "_predict_by_feat_single") -> Iterator[Record]:
    """Record the next call of ``head``'s ``method`` (and the outputs of the ``hooks``
    submodules during its forward) into the yielded :class:`Record`; the head is restored on
    exit, also after an error."""
    record = Record(outputs={name: [] for name in hooks})
    original = getattr(head, method)
    signature = inspect.signature(original)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        record.args = dict(signature.bind(*args, **kwargs).arguments)
        return original(*args, **kwargs)

    handles = [getattr(head, name).register_forward_hook(
        lambda _m, _i, out, name=name: record.outputs[name].append(out.detach())) for name in hooks]
    setattr(head, method, wrapper)
    try:
        yield record
    finally:
        delattr(head, method)
        for h in handles:
            h.remove()


@dataclass
class Capture:
    """One image: its :class:`Level` s, the live detections (``InstanceData`` in original
    pixels, as ``predict_by_feat(rescale=True)`` returns them), the ranking rule and the rest
    of the post-processing (:attr:`Adapter.post_process`)."""

    levels: list[Level]
    detections: Any
    rule: Fusion | None
    adapter: str
    post_process: dict = field(default_factory=lambda: dict(BASE_POST_PROCESS))


def capture(head: Any, feats: tuple, meta: dict) -> Capture:
    """Run ``head`` on one image's features (``feats``: Tensor[1, C, H, W] per level) and
    capture its candidates and live detections."""
    adapter = adapter_for(head)
    with recording(head, adapter.hooks, adapter.method) as record:
        outs = head(feats)
        detections = head.predict_by_feat(*outs, batch_img_metas=[meta], rescale=True)[0]
    return Capture(adapter.levels(head, record), detections, adapter.rule(head, record), adapter.name,
                   adapter.post_process(head))


def positive_priors(priors: Tensor, gt_input: Tensor, thr: float = 0.5) -> int:
    """The paper's "positive anchors" of an image: anchors (Tensor[A, 4]) whose IoU with some
    ground truth (Tensor[G, 4], input frame) exceeds ``thr``; for point priors (Tensor[A, 2],
    anchor-free heads) the points inside some ground-truth box."""
    if len(gt_input) == 0:
        return 0
    if priors.size(-1) == 2:
        x, y = priors[:, :1], priors[:, 1:2]
        inside = (x > gt_input[:, 0]) & (x < gt_input[:, 2]) & (y > gt_input[:, 1]) & (y < gt_input[:, 3])
        return int(inside.any(1).sum())
    from analysis.geometry.boxes import box_iou  # mmdet's bbox_overlaps to the bit

    return int((box_iou(priors, gt_input).max(1).values > thr).sum())
