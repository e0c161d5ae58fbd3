"""``retconf dump``: raw pre-NMS candidates, post-NMS detections and ground-truth matching of a
detector on a dataset, as Parquet shards with a written schema.

Glossary: K classes, L levels, A anchors of a level, G ground truths of an image.

Files in the output directory:

- ``candidates-NNNNN.parquet``: one row per kept (anchor, class) pair before NMS.
- ``detections-NNNNN.parquet``: one row per post-NMS detection of live inference.
- ``images-NNNNN.parquet``: one row per image (positive-anchor count, number of ground truths).
- ``metadata.json``: config, checkpoint hash, the annotation file matched against and its SHA-256
  (``ann_sha256``: an analysis against a changed or different file is refused,
  :func:`analysis.inputs.io.annotation_file`), versions, seed, test settings, the candidate rule,
  the schema and, per shard, its image ids and each file's SHA-256,
  so that a replaced, duplicated, missing or foreign shard is detected on loading. Written last: a dump without it is incomplete, and rerunning the same
  command resumes after the last complete shard.
- ``dump-key.json``: checkpoint hash, annotation file hash, model and test-data settings and shard size of the dump
  being written; a rerun with anything else starts afresh instead of resuming.

Any mmdet 3 dense head :mod:`retconf.capture` has an adapter for can be dumped (RetinaNet,
retconf's quality heads, FCOS, ATSS, GFL, VarifocalNet, TOOD, DDOD, PAA, YOLOX, ...): ``cls`` is the raw
classification probability, ``obj`` the head's separate quality score (NaN where it has none),
and ``metadata.json`` names the head, its quality score (``quality``) and the rule NMS ranks by
(``fusion``: mode, α, threshold and whether it applies before or after the per-level top-k;
None: ``cls``) and the rest of its post-processing (``post_process``: how it selects candidates
per level — top-k over pairs, over anchors (PAA) or one class per anchor (YOLOX) — score voting,
whether ``min_bbox_size`` and ``max_per_img`` apply). The ranking score of a candidate is that
rule applied to its ``cls`` and ``obj`` (:func:`analysis.scoring.rescore.select_candidates`).

Candidate rule (:func:`retconf.fusion.fusion_grid`): for each level, the union over a grid of
rules (the deployed one, ``cls``, ``mul``, ``cls_thr``, ``mul_thr``, ``pow`` with α = 0.0, 0.1,
…, 0.9 and ``pow_thr`` with α = 0.4 and the deployed α) of the pairs that live inference would
keep (ranking score > ``score_thr``, then the top ``nms_pre`` pairs, or the head's own
selection). Re-scoring with any rule
of that grid and the same ``score_thr``/``nms_pre`` therefore sees exactly the candidates live
inference would; other α values or a lower ``score_thr`` are approximations (pairs outside every
grid selection are missing). Heads without a separate quality score keep the ``cls`` selection.
"""
from __future__ import annotations

import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from analysis.geometry.boxes import box_iou, match_gt  # noqa: F401  (the matching rule, in the analysis layer; re-exported)
from analysis.inputs.schema import (
    BY_IOU,
    CANDIDATE_COLUMNS,
    DETECTION_COLUMNS,
    IMAGE_COLUMNS,
    IOU_POPULATION,
    SCHEMA_VERSION,
    SELECTED,
)

from .io import atomic_write_bytes, atomic_write_text
from .io import sha256_file as _sha256  # the one file hash (checkpoints, shards)


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


def load_model(config: str, checkpoint: str, out: Path, cfg_options: dict | None,
               data_root: str | None, allow_partial_checkpoint: bool) -> tuple[Any, Any]:
    """The test config (batch size 1, no backbone download) and the model with the checkpoint
    loaded, in eval mode. Raises the checkpoint errors of :mod:`retconf.checkpoint`."""
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    import retconf.plugin  # noqa: F401  (registers retconf's heads, losses and hooks)

    from .apis import prepare
    from .checkpoint import check_checkpoint_fits, fitting_state, load_checkpoint_file

    register_all_modules()
    cfg = prepare(config, str(out), cfg_options, data_root, "none", ("test",))
    cfg.test_dataloader.batch_size = 1
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model)
    ckpt = load_checkpoint_file(checkpoint)
    check_checkpoint_fits(checkpoint, model, ckpt, allow_partial=allow_partial_checkpoint)
    state = fitting_state(ckpt["state_dict"], model) if allow_partial_checkpoint else ckpt["state_dict"]
    model.load_state_dict(state, strict=not allow_partial_checkpoint)
    return cfg, model.eval()


def candidate_rows(cap: Any, meta: dict, gt_boxes: Any, gt_labels: Any, score_thr: float,
                   nms_pre: int, iou_population: float = IOU_POPULATION) -> dict[str, Any]:
    """The :data:`CANDIDATE_COLUMNS` of one image: per level, the union of the pairs each fusion
    of :func:`retconf.fusion.fusion_grid` keeps (``population`` bit ``SELECTED``) and, for every
    anchor whose decoded box overlaps a ground truth with IoU ≥ ``iou_population``, the pair of
    that ground truth's class whatever its scores (bit ``BY_IOU``; every prior of the level is
    decoded for it: A·H·W boxes against G ground truths per level), with boxes in original
    pixels and matched."""
    import torch

    from .fusion import fusion_grid

    img_id = int(meta["img_id"])
    grid = fusion_grid(cap.rule)
    cols: dict[str, list] = {c: [] for c in CANDIDATE_COLUMNS}
    for level, lv in enumerate(cap.levels):
        keep = torch.zeros_like(lv.cls, dtype=torch.bool)
        for fusion in grid:
            _, labels, anchors = fusion.select(lv.cls, lv.quality, score_thr, nms_pre, cap.post_process["selection"])
            keep[anchors, labels] = True
        by_iou = torch.zeros_like(keep)
        if len(gt_boxes) and lv.cls.shape[0]:
            every = torch.arange(lv.cls.shape[0])
            iou = box_iou(scale_xy(lv.decode(every), meta["scale_factor"], inverse=True), gt_boxes)
            best, gt = iou.max(1)
            near = best >= iou_population
            by_iou[every[near], gt_labels[gt[near]].long()] = True
        anchors, labels = (keep | by_iou).nonzero(as_tuple=True)
        population = keep[anchors, labels].to(torch.int8) * SELECTED + by_iou[anchors, labels].to(torch.int8) * BY_IOU
        boxes = scale_xy(lv.decode(anchors), meta["scale_factor"], inverse=True)
        match = match_gt(boxes, labels, gt_boxes, gt_labels)
        for c, v in (("image_id", np.full(len(anchors), img_id)), ("level", np.full(len(anchors), level)),
                     ("anchor", anchors.numpy()), ("label", labels.numpy()),
                     ("cls", lv.cls[anchors, labels].numpy()), ("obj", lv.quality[anchors].numpy()),
                     *_box_columns(boxes), *((k, v.numpy()) for k, v in match.items()),
                     ("population", population.numpy())):
            cols[c].append(v)
    return {c: np.concatenate(v) if v else np.zeros(0) for c, v in cols.items()}


def _box_columns(boxes: Any) -> tuple:
    return tuple((c, boxes[:, i].numpy()) for i, c in enumerate(("x1", "y1", "x2", "y2")))


def detection_scores(det: Any, candidates: dict[str, Any], has_quality: bool,
                     tol: float = 1e-2, rule: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """``cls`` and ``obj`` (float32[D]) of live detections.

    The head's own ``cls_scores`` / ``obj_scores`` where it returns them (retconf's quality
    heads); for a head without a separate quality score the detection's score is its class
    score; heads that fold the quality into the score (FCOS's cls · centerness) return only the
    product, so their ``cls`` and ``obj`` are those of the candidate with the same label and box
    (within ``tol`` pixels: mmdet rescales by the reciprocal of the scale factor, the dump
    divides by it) whose ranking score under ``rule`` (a :class:`retconf.fusion.Fusion`) is
    closest to the detection's (near-identical boxes are common). A detection whose box moved
    after NMS (PAA's score voting) is found by label and score alone: the candidate whose ranking
    score equals the detection's. NaN where neither finds one.
    """
    import torch

    n = len(det)
    nan = np.full(n, np.nan, np.float32)
    if "cls_scores" in det:
        return det.cls_scores.numpy(), (det.obj_scores.numpy() if "obj_scores" in det else nan)
    if not has_quality:
        return det.scores.numpy().astype(np.float32), nan
    if n == 0 or len(candidates["label"]) == 0:
        return nan, nan.copy()
    boxes = torch.as_tensor(np.stack([candidates[c] for c in ("x1", "y1", "x2", "y2")], 1), dtype=torch.float32)
    other_label = det.labels[:, None] != torch.as_tensor(candidates["label"]).long()[None]
    dist = (det.bboxes.float()[:, None, :] - boxes[None]).abs().amax(-1)
    dist[other_label] = float("inf")
    near = dist <= tol
    found = near.any(1).numpy()
    if rule is None:
        row = dist.argmin(1).numpy()
    else:
        fused = rule.scores(torch.as_tensor(candidates["cls"]), torch.as_tensor(candidates["obj"])).float()
        gap = (det.scores.float()[:, None] - fused[None]).abs()
        gap[other_label] = float("inf")
        close, by_score = gap.min(1)
        row = torch.where(near, gap, torch.full_like(gap, float("inf"))).argmin(1).numpy()
        by_score_found = (close <= 1e-6 * det.scores.float().abs().clamp(min=1e-12)).numpy()
        row = np.where(found, row, by_score.numpy())
        found = found | by_score_found
    cls = np.where(found, candidates["cls"][row], np.nan).astype(np.float32)
    obj = np.where(found, candidates["obj"][row], np.nan).astype(np.float32)
    return cls, obj


def detection_rows(det: Any, meta: dict, gt_boxes: Any, gt_labels: Any,
                   candidates: dict[str, Any], has_quality: bool, rule: Any = None) -> dict[str, Any]:
    """The :data:`DETECTION_COLUMNS` of one image's live detections (``rule``: the head's
    ranking rule, see :func:`detection_scores`)."""
    n = len(det)
    cls, obj = detection_scores(det, candidates, has_quality, rule=rule)
    match = match_gt(det.bboxes, det.labels, gt_boxes, gt_labels)
    return dict((("image_id", np.full(n, int(meta["img_id"]))), ("label", det.labels.numpy()),
                 ("score", det.scores.numpy()), ("cls", cls), ("obj", obj), *_box_columns(det.bboxes),
                 *((k, v.numpy()) for k, v in match.items())))


def image_rows(model: Any, batch: dict, info: dict, score_thr: float, nms_pre: int) -> tuple[dict, Any]:
    """Candidates, detections and the image row of one test batch (one image), and the
    capture's ranking rule."""
    import torch

    from .capture import capture, positive_priors

    data = model.data_preprocessor(batch, False)
    meta = data["data_samples"][0].metainfo
    gt_boxes, gt_labels = ground_truth(info)  # original-image pixels
    with torch.no_grad():
        cap = capture(model.bbox_head, model.extract_feat(data["inputs"]), meta)
    cands = candidate_rows(cap, meta, gt_boxes, gt_labels, score_thr, nms_pre)
    priors = torch.cat([lv.priors for lv in cap.levels])
    h, w = meta["ori_shape"]
    image = {"image_id": np.asarray([int(meta["img_id"])]), "num_gt": np.asarray([len(gt_labels)]),
             "positive_anchors": np.asarray([positive_priors(priors, scale_xy(gt_boxes, meta["scale_factor"]))]),
             "width": np.asarray([w]), "height": np.asarray([h])}
    selected = (cands["population"].astype(np.int64) & SELECTED) > 0  # what NMS may have seen
    dets = detection_rows(cap.detections, meta, gt_boxes, gt_labels, {c: v[selected] for c, v in cands.items()},
                          cap.rule is not None, cap.rule)
    return {"candidates": cands, "detections": dets, "images": image}, cap


class ShardWriter:
    """Collects image rows and writes them as one shard of each kind, atomically."""

    KINDS = (("candidates", CANDIDATE_COLUMNS), ("detections", DETECTION_COLUMNS), ("images", IMAGE_COLUMNS))

    def __init__(self, out: Path) -> None:
        self.out = out
        self.rows: dict[str, list[dict]] = {kind: [] for kind, _ in self.KINDS}

    def add(self, rows: dict[str, dict]) -> None:
        for kind, value in rows.items():
            self.rows[kind].append(value)

    def flush(self, shard: int) -> None:
        for kind, columns in self.KINDS:
            parts = self.rows[kind]
            data = {c: np.concatenate([p[c] for p in parts]) if parts else np.zeros(0) for c in columns}
            atomic_write_bytes(self.out / f"{kind}-{shard:05d}.parquet", _parquet_bytes(_frame(columns, data)))
        self.rows = {kind: [] for kind, _ in self.KINDS}


def complete_shards(out: Path, n_shards: int) -> set[int]:
    """Shards whose three files are all on disk (written atomically, so complete)."""
    return {i for i in range(n_shards) if all((out / f"{kind}-{i:05d}.parquet").is_file()
                                               for kind, _ in ShardWriter.KINDS)}


def quality_name(head: Any, rule: Any) -> str | None:
    """What the dump's ``obj`` column holds for this head, in words (None: NaN, no separate
    quality score)."""
    names = {"RetinaConfHead": "object confidence (predicted IoU, classification tower)",
             "IoUAwareRetinaHead": "predicted IoU (regression tower)", "FCOSHead": "centerness",
             "ATSSHead": "centerness", "DDODHead": "predicted IoU", "TOODHead": "alignment probability",
             "PAAHead": "predicted IoU", "YOLOXHead": "objectness"}
    if rule is None:
        return None
    return names.get(type(head).__name__, "score factor (sigmoid)")


def ann_sha256(cfg: Any) -> str | None:
    """SHA-256 of the test evaluator's annotation file (the ground truth the dump matches
    against; None when the config names none)."""
    ann = cfg.test_evaluator.get("ann_file")
    return _sha256(ann) if ann else None


def dump_metadata(cfg: Any, config: str, checkpoint: str, checkpoint_sha256: str, out: Path,
                  n_shards: int, dataset: Any, head: Any, cap: Any, score_thr: float, nms_pre: int,
                  seconds: float) -> dict:
    """``metadata.json``: provenance, test settings, the candidate rule, the schema and each
    shard's record (see the module docstring)."""
    import mmdet
    import mmengine
    import torch

    import retconf

    from .fusion import fusion_grid

    n_images = len(dataset)
    rule = cap.rule if cap is not None else None
    # a quality head's own fusion dict: it keeps ``legacy_level_bug``, which ``rule`` (a Fusion) cannot express
    fusion = dict(head.fusion) if hasattr(head, "fusion") else (rule.as_dict() if rule else None)
    return {
        "schema_version": SCHEMA_VERSION, "complete": True, "config": str(config),
        "checkpoint": str(checkpoint), "checkpoint_sha256": checkpoint_sha256,
        "ann_file": cfg.test_evaluator.get("ann_file"), "ann_sha256": ann_sha256(cfg), "num_images": n_images, "num_shards": n_shards,
        "shards": [shard_record(out, i) for i in range(n_shards)],
        "classes": list(dataset.metainfo["classes"]), "cat_ids": [int(c) for c in getattr(dataset, "cat_ids", [])],
        "head": type(head).__name__, "adapter": cap.adapter if cap is not None else None,
        "quality": quality_name(head, rule),
        "fusion": fusion, "post_process": cap.post_process if cap is not None else None,
        "test_cfg": mmengine.config.ConfigDict(head.test_cfg).to_dict(),
        "candidate_rule": {"fusions": [f.as_dict() for f in fusion_grid(rule)], "score_thr": score_thr,
                           "nms_pre": nms_pre},
        "iou_population": IOU_POPULATION,
        "seed": (cfg.get("randomness") or {}).get("seed"),
        "versions": {"retconf": retconf.__version__, "mmdet": mmdet.__version__, "torch": torch.__version__,
                     "mmengine": mmengine.__version__, "python": platform.python_version()},
        "schema": {"candidates": CANDIDATE_COLUMNS, "detections": DETECTION_COLUMNS, "images": IMAGE_COLUMNS},
        "seconds": round(seconds, 1),
    }


def dump_predictions(config: str, checkpoint: str, out: str | Path, data_root: str | None = None,
                     cfg_options: dict | None = None, shard_size: int = 64,
                     progress: bool = True, allow_partial_checkpoint: bool = False) -> dict:
    """Run the detector on its test set and write the dump (see the module docstring).

    Works for any mmdet 3 dense head :mod:`retconf.capture` has an adapter for. Resumable:
    complete shards are kept and skipped. Returns the metadata dict.
    """
    from mmengine.runner import Runner

    from .progress import progress as progress_bar
    from .runtime import release_dataloaders

    out = Path(out)
    cfg, model = load_model(config, checkpoint, out, cfg_options, data_root, allow_partial_checkpoint)
    test_cfg = model.bbox_head.test_cfg
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
        "ann_sha256": ann_sha256(cfg), "model": cfg.model.to_dict(), "test_dataloader": cfg.test_dataloader.to_dict()})
    done = complete_shards(out, n_shards)
    writer, cap = ShardWriter(out), None
    bar = progress_bar(total=n_images, desc="dump", unit="img", disable=not progress)
    start = time.time()
    for index, batch in enumerate(loader):
        bar.update(1)
        shard = index // shard_size
        if shard in done and cap is not None:
            continue
        rows, cap = image_rows(model, batch, infos[int(batch["data_samples"][0].img_id)], score_thr, nms_pre)
        if shard in done:
            continue  # one image of a resumed dump is captured anyway: the metadata needs its rule
        writer.add(rows)
        if (index + 1) % shard_size == 0 or index + 1 == n_images:
            writer.flush(shard)
    bar.close()
    release_dataloaders(loader)
    meta = dump_metadata(cfg, config, checkpoint, checkpoint_sha256, out, n_shards, dataset, model.bbox_head, cap,
                         score_thr, nms_pre, time.time() - start)
    atomic_write_text(out / "metadata.json", json.dumps(meta, indent=1, sort_keys=True, default=str))
    return meta
