"""``retconf dump``: raw pre-NMS candidates, post-NMS detections and ground-truth matching of a
detector on a dataset, as Parquet shards with a written schema.

Glossary: K classes, L levels, A anchors of a level, G ground truths of an image.

Files in the output directory:

- ``candidates-NNNNN.parquet``: one row per kept (anchor, class) pair before NMS.
- ``detections-NNNNN.parquet``: one row per post-NMS detection of live inference.
- ``images-NNNNN.parquet``: one row per image (positive-anchor count, number of ground truths).
- ``metadata.json``: config, checkpoint hash, versions, seed, test settings, the candidate rule,
  the schema and, per shard, its image ids and each file's SHA-256,
  so that a replaced, duplicated, missing or foreign shard is detected on loading. Written last: a dump without it is incomplete, and rerunning the same
  command resumes after the last complete shard.
- ``dump-key.json``: checkpoint hash, model and test-data settings and shard size of the dump
  being written; a rerun with anything else starts afresh instead of resuming.

Candidate rule: for each level, the union over a grid of fusions (the deployed one, ``cls``,
``mul``, ``cls_thr``, ``mul_thr``, ``pow`` with α = 0.0, 0.1, …, 0.9 and ``pow_thr`` with
α = 0.4 and the deployed α) of the pairs that live
inference would keep (fused score > ``score_thr``, then the top ``nms_pre`` pairs). Re-scoring
with any fusion of that grid and the same ``score_thr``/``nms_pre`` therefore sees exactly the
candidates live inference would; other α values or a lower ``score_thr`` are approximations
(pairs outside every grid selection are missing). Plain RetinaNet dumps keep the ``cls``
selection and ``obj`` is NaN.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from analysis.schema import CANDIDATE_COLUMNS, DETECTION_COLUMNS, IMAGE_COLUMNS, SCHEMA_VERSION

from .io import atomic_write_bytes, atomic_write_text
from .io import sha256_file as _sha256  # the one file hash (checkpoints, shards)

ALPHA_GRID = tuple(round(0.1 * i, 1) for i in range(10))


def fusion_grid(deployed: Optional[dict]) -> list[dict]:
    """Fusions whose live selections the dump keeps (see the module docstring)."""
    if deployed is None:
        return [dict(mode="cls", alpha=0.0, thr=0.5)]
    grid = [dict(mode=deployed["mode"], alpha=deployed["alpha"], thr=deployed["thr"])]
    grid += [dict(mode=m, alpha=0.0, thr=deployed["thr"]) for m in ("cls", "mul", "cls_thr", "mul_thr")]
    grid += [dict(mode="pow", alpha=a, thr=deployed["thr"]) for a in ALPHA_GRID]
    grid += [dict(mode="pow_thr", alpha=a, thr=deployed["thr"]) for a in sorted({0.4, deployed["alpha"]})]
    return grid


def box_iou(boxes: Any, gt_boxes: Any, eps: float = 1e-6) -> Any:
    """IoU of every box with every ground truth, computed as mmdet's ``bbox_overlaps`` (mode
    ``iou``, union floored at ``eps``) to the bit, without importing mmdet.

    Args:
        boxes (Tensor[N, 4]), gt_boxes (Tensor[G, 4]): corners x1, y1, x2, y2.
    Returns:
        Tensor[N, G].
    """
    import torch

    area1 = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    area2 = (gt_boxes[..., 2] - gt_boxes[..., 0]) * (gt_boxes[..., 3] - gt_boxes[..., 1])
    lt = torch.max(boxes[..., :, None, :2], gt_boxes[..., None, :, :2])
    rb = torch.min(boxes[..., :, None, 2:], gt_boxes[..., None, :, 2:])
    wh = (rb - lt).clamp(min=0)
    overlap = wh[..., 0] * wh[..., 1]
    union = area1[..., None] + area2[..., None, :] - overlap
    return overlap / torch.max(union, union.new_tensor([eps]))


def match_gt(boxes: Any, labels: Any, gt_boxes: Any, gt_labels: Any) -> dict[str, Any]:
    """Best IoU of each box with a ground truth of the same class and of any class: the one
    matching rule of dumps and of COCO results json input
    (:func:`analysis.coco.detections_from_coco_results`).

    All boxes must be in one frame (the dump uses original-image pixels).

    Args:
        boxes (Tensor[N, 4]), labels (Tensor[N]); gt_boxes (Tensor[G, 4]), gt_labels (Tensor[G]).
    Returns:
        the :data:`analysis.schema.MATCH_COLUMNS`: ``iou_same`` (Tensor[N]), ``iou_any`` (Tensor[N]),
        ``gt_same`` / ``gt_any`` (Tensor[N], index of the matched same-class / any-class ground
        truth, -1 when there is none), ``gt_area`` (Tensor[N], box area of the ``gt_any``
        ground truth in pixels², NaN when there is none).
    """
    import torch

    n = boxes.shape[0]
    none = torch.full((n,), -1, dtype=torch.long)
    if gt_boxes.shape[0] == 0 or n == 0:
        zeros = boxes.new_zeros(n)
        return {"iou_same": zeros, "iou_any": zeros.clone(), "gt_same": none, "gt_any": none.clone(),
                "gt_area": boxes.new_full((n,), float("nan"))}
    iou = box_iou(boxes, gt_boxes)
    same = torch.where(labels[:, None] == gt_labels[None, :], iou, iou.new_full((), -1.0))
    iou_same, gt_same = same.max(1)
    gt_same = torch.where(iou_same >= 0, gt_same, none)
    iou_any, gt_any = iou.max(1)
    gt_any = torch.where(iou_any > 0, gt_any, none)
    areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
    gt_area = torch.where(gt_any >= 0, areas[gt_any.clamp(min=0)], boxes.new_full((), float("nan")))
    return {"iou_same": iou_same.clamp(min=0), "iou_any": iou_any, "gt_same": gt_same,
            "gt_any": gt_any, "gt_area": gt_area}


def ground_truth(data_info: dict) -> tuple[Any, Any]:
    """An image's ground truth in original-image pixels, from the dataset's parsed annotations
    (``dataset.get_data_info(i)``), never from the test pipeline: whether ``LoadAnnotations``
    runs before ``Resize`` (boxes scaled) or after it (boxes as in the file) does not matter.
    Crowd / ignored instances (``ignore_flag``) are left out, as in mmdet's ``gt_instances``.

    Returns:
        boxes (Tensor[G, 4], x1 y1 x2 y2, float32), labels (Tensor[G], int64).
    """
    import torch

    kept = [i for i in data_info.get("instances", []) if not i.get("ignore_flag", 0)]
    boxes = torch.tensor([i["bbox"] for i in kept], dtype=torch.float32).reshape(-1, 4)
    return boxes, torch.tensor([i["bbox_label"] for i in kept], dtype=torch.long)


def scale_xy(boxes: Any, scale_factor: Any, inverse: bool = False) -> Any:
    """Boxes (Tensor[N, 4]) scaled by ``scale_factor`` = (w_scale, h_scale) as mmdet's
    ``Resize`` records it: original → input frame, or input → original with ``inverse``
    (what mmdet's ``rescale=True`` post-processing does). Padding (bottom/right, by the data
    preprocessor) moves no coordinate."""
    import torch

    s = torch.tensor([float(scale_factor[0]), float(scale_factor[1])] * 2, dtype=boxes.dtype)
    return boxes / s if inverse else boxes * s


def positive_anchor_count(priors: Any, gt_input: Any, thr: float = 0.5) -> int:
    """Anchors whose IoU with some ground truth exceeds ``thr`` (the paper's "positive
    anchors"), with anchors and ground truth both in the network's input frame.

    Args:
        priors (Tensor[A, 4]) all levels' anchors; gt_input (Tensor[G, 4]).
    """
    from mmdet.structures.bbox import bbox_overlaps

    if len(gt_input) == 0:
        return 0
    return int((bbox_overlaps(priors, gt_input).max(1).values > thr).sum())


def _frame(columns: dict, data: dict) -> Any:
    import pandas as pd

    return pd.DataFrame({c: np.asarray(data[c]).astype(t, copy=False) for c, t in columns.items()})


def _parquet_bytes(df: Any) -> bytes:
    import io

    buf = io.BytesIO()
    df.to_parquet(buf, index=False, engine="pyarrow")
    return buf.getvalue()


def shard_record(out: Path, shard: int) -> dict:
    """What ``load_dump`` checks a shard against: its image ids and the SHA-256 of each of its
    files, read back from disk (resumed shards included)."""
    import pyarrow.parquet as pq

    ids = pq.read_table(out / f"images-{shard:05d}.parquet", columns=["image_id"]).column(0).to_numpy()
    return {"image_ids": [int(i) for i in ids],
            "sha256": {kind: _sha256(out / f"{kind}-{shard:05d}.parquet")
                       for kind in ("candidates", "detections", "images")}}


KEY_FILE = "dump-key.json"


def _start_or_resume(out: Path, key: dict) -> None:
    """Resume only a dump of the same checkpoint and settings: shards in ``out`` that another
    checkpoint, config or shard size wrote (or whose origin is unknown) are removed first, so
    a rerun after retraining never mixes old shards into the new dump."""
    text = json.dumps(key, sort_keys=True, default=str)
    ours = sorted(out.glob("*-[0-9][0-9][0-9][0-9][0-9].parquet")) + [out / "metadata.json"]
    existing = [f for f in ours if f.is_file()]
    marker = out / KEY_FILE
    if existing and not (marker.is_file() and marker.read_text() == text):
        print(f"{out}: the shards there come from another checkpoint or settings; starting afresh")
        for f in existing:
            f.unlink()
    atomic_write_text(marker, text)


def dump_predictions(config: str, checkpoint: str, out: str | Path, data_root: Optional[str] = None,
                     cfg_options: Optional[dict] = None, shard_size: int = 64,
                     progress: bool = True, allow_partial_checkpoint: bool = False) -> dict:
    """Run the detector on its test set and write the dump (see the module docstring).

    Resumable: complete shards are kept and skipped. Returns the metadata dict.
    """
    import mmdet
    import mmengine
    import torch
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    from mmengine.runner import Runner
    from .progress import progress as progress_bar

    import retconf.plugin

    from .apis import prepare
    from .runtime import release_dataloaders
    from .checkpoint import check_checkpoint_fits, fitting_state, load_checkpoint_file
    from .fusion import fuse_scores
    from mmdet.models.utils import filter_scores_and_topk

    register_all_modules()
    out = Path(out)
    cfg = prepare(config, str(out), cfg_options, data_root, "none", ("test",))
    cfg.test_dataloader.batch_size = 1
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    ckpt = load_checkpoint_file(checkpoint)
    check_checkpoint_fits(checkpoint, model, ckpt, allow_partial=allow_partial_checkpoint)
    state = fitting_state(ckpt["state_dict"], model) if allow_partial_checkpoint else ckpt["state_dict"]
    model.load_state_dict(state, strict=not allow_partial_checkpoint)
    model.eval()
    head = model.bbox_head
    deployed = dict(head.fusion) if hasattr(head, "fusion") else None
    grid = fusion_grid(deployed)
    test_cfg = head.test_cfg
    score_thr, nms_pre = test_cfg.get("score_thr", 0.0), test_cfg.get("nms_pre", -1)
    loader = Runner.build_dataloader(cfg.test_dataloader)
    dataset = loader.dataset
    n_images = len(dataset)
    infos = {int(info["img_id"]): info for info in (dataset.get_data_info(i) for i in range(n_images))}
    n_shards = (n_images + shard_size - 1) // shard_size
    out.mkdir(parents=True, exist_ok=True)
    checkpoint_sha256 = _sha256(checkpoint)
    _start_or_resume(out, {
        "schema_version": SCHEMA_VERSION, "checkpoint_sha256": checkpoint_sha256, "shard_size": shard_size,
        "model": cfg.model.to_dict(), "test_dataloader": cfg.test_dataloader.to_dict()})
    done = {i for i in range(n_shards) if all((out / f"{kind}-{i:05d}.parquet").is_file()
                                               for kind in ("candidates", "detections", "images"))}
    rows: dict[str, dict[str, list]] = {}

    def flush(shard: int) -> None:
        for kind, columns in (("candidates", CANDIDATE_COLUMNS), ("detections", DETECTION_COLUMNS),
                              ("images", IMAGE_COLUMNS)):
            data = {c: np.concatenate(rows[kind][c]) if rows[kind][c] else np.zeros(0) for c in columns}
            atomic_write_bytes(out / f"{kind}-{shard:05d}.parquet", _parquet_bytes(_frame(columns, data)))
        rows.clear()

    bar = progress_bar(total=n_images, desc="dump", unit="img", disable=not progress)
    start = time.time()
    with torch.no_grad():
        for index, batch in enumerate(loader):
            shard = index // shard_size
            bar.update(1)
            if shard in done:
                continue
            if not rows:
                rows.update({k: {c: [] for c in cols} for k, cols in (
                    ("candidates", CANDIDATE_COLUMNS), ("detections", DETECTION_COLUMNS), ("images", IMAGE_COLUMNS))})
            data = model.data_preprocessor(batch, False)
            sample = data["data_samples"][0]
            feats = model.extract_feat(data["inputs"])
            outs = head(feats)
            meta = sample.metainfo
            img_id = int(meta["img_id"])
            gt_boxes, gt_labels = ground_truth(infos[img_id])  # original-image pixels
            sizes = [f.shape[-2:] for f in outs[0]]
            priors = head.prior_generator.grid_priors(sizes, device="cpu")  # input frame
            positives = positive_anchor_count(torch.cat(priors), scale_xy(gt_boxes, meta["scale_factor"]))
            cand = rows["candidates"]
            for level, pri in enumerate(priors):
                cls = outs[0][level][0].permute(1, 2, 0).reshape(-1, head.cls_out_channels).sigmoid()
                deltas = outs[1][level][0].permute(1, 2, 0).reshape(-1, 4)
                obj = (outs[2][level][0].permute(1, 2, 0).reshape(-1).sigmoid() if len(outs) > 2
                       else torch.full((cls.shape[0],), float("nan")))
                keep = torch.zeros_like(cls, dtype=torch.bool)
                for f in grid:
                    fused = cls if deployed is None else fuse_scores(cls, obj, f["mode"], f["alpha"], f["thr"])
                    _, labels, anchors, _ = filter_scores_and_topk(fused, score_thr, nms_pre)
                    keep[anchors, labels] = True
                anchors, labels = keep.nonzero(as_tuple=True)
                boxes = head.bbox_coder.decode(pri[anchors], deltas[anchors], max_shape=meta["img_shape"])
                boxes = scale_xy(boxes, meta["scale_factor"], inverse=True)
                match = match_gt(boxes, labels, gt_boxes, gt_labels)
                for c, v in (("image_id", np.full(len(anchors), img_id)), ("level", np.full(len(anchors), level)),
                             ("anchor", anchors.numpy()), ("label", labels.numpy()),
                             ("cls", cls[anchors, labels].numpy()), ("obj", obj[anchors].numpy()),
                             ("x1", boxes[:, 0].numpy()), ("y1", boxes[:, 1].numpy()),
                             ("x2", boxes[:, 2].numpy()), ("y2", boxes[:, 3].numpy()),
                             *((k, v.numpy()) for k, v in match.items())):
                    cand[c].append(v)
            det = head.predict_by_feat(*outs, batch_img_metas=[meta], rescale=True)[0]
            d_match = match_gt(det.bboxes, det.labels, gt_boxes, gt_labels)
            n = len(det)
            d_cls = det.cls_scores if "cls_scores" in det else det.scores
            d_obj = det.obj_scores if "obj_scores" in det else torch.full((n,), float("nan"))
            for c, v in (("image_id", np.full(n, img_id)), ("label", det.labels.numpy()),
                         ("score", det.scores.numpy()), ("cls", d_cls.numpy()), ("obj", d_obj.numpy()),
                         ("x1", det.bboxes[:, 0].numpy()), ("y1", det.bboxes[:, 1].numpy()),
                         ("x2", det.bboxes[:, 2].numpy()), ("y2", det.bboxes[:, 3].numpy()),
                         *((k, v.numpy()) for k, v in d_match.items())):
                rows["detections"][c].append(v)
            h, w = meta["ori_shape"]
            for c, v in (("image_id", [img_id]), ("num_gt", [len(gt_labels)]),
                         ("positive_anchors", [positives]), ("width", [w]), ("height", [h])):
                rows["images"][c].append(np.asarray(v))
            if (index + 1) % shard_size == 0 or index + 1 == n_images:
                flush(shard)
    bar.close()
    release_dataloaders(loader)
    meta = {
        "schema_version": SCHEMA_VERSION, "complete": True, "config": str(config),
        "checkpoint": str(checkpoint), "checkpoint_sha256": checkpoint_sha256,
        "ann_file": cfg.test_evaluator.get("ann_file"), "num_images": n_images, "num_shards": n_shards,
        "shards": [shard_record(out, i) for i in range(n_shards)],
        "classes": list(dataset.metainfo["classes"]), "cat_ids": [int(c) for c in getattr(dataset, "cat_ids", [])],
        "head": type(head).__name__,
        "fusion": deployed, "test_cfg": mmengine.config.ConfigDict(test_cfg).to_dict(),
        "candidate_rule": {"fusions": grid, "score_thr": score_thr, "nms_pre": nms_pre},
        "seed": (cfg.get("randomness") or {}).get("seed"),
        "versions": {"retconf": retconf.__version__, "mmdet": mmdet.__version__, "torch": torch.__version__,
                     "mmengine": mmengine.__version__, "python": platform.python_version()},
        "schema": {"candidates": CANDIDATE_COLUMNS, "detections": DETECTION_COLUMNS, "images": IMAGE_COLUMNS},
        "seconds": round(time.time() - start, 1),
    }
    atomic_write_text(out / "metadata.json", json.dumps(meta, indent=1, sort_keys=True, default=str))
    return meta
