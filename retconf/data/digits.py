"""Embedded detection dataset: real handwritten digits composed onto real photographs.

No download is needed: the digits are scikit-learn's bundled ``load_digits`` set (1,797 8×8
scans of handwriting) and the backgrounds are photographs bundled with scikit-learn
(``load_sample_images``) and scikit-image (``skimage.data``). Each image is a random crop of a
photograph with 0–``max_objects`` digits blended on it (intensity as alpha, random colour), so
some digits are high-contrast and easy while others are faint and hard.

Boxes are derived from the stroke mask *after* resizing (tight boxes), not from the 8×8 cell,
whose empty margins would bias every IoU analysis. Digit instances are split between train and
val so the val set measures generalisation to unseen handwriting.

Glossary: H, W image height/width; h, w digit height/width in pixels.

``DigitsConfig(coco=True)`` (see :func:`coco_shaped`) makes the same kind of data shaped like COCO
2017: non-square images of mixed sizes, objects from ~10 px to half the image, COCO's 80
categories with their non-contiguous ids (the ten digits stand for ten of them; the other 70
have no instances), non-contiguous image ids and COCO 2017's file names, so the paper's COCO
recipes run on it unchanged.

Determinism: every image draws from ``numpy.random.default_rng([seed, split, index])``, images
are PNG (lossless, byte-stable) and the json is written with sorted keys, so the same
parameters give byte-identical files on any machine with the same library versions.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..errors import DatasetError  # re-exported: retconf.data.digits.DatasetError

CLASSES: tuple[str, ...] = tuple(str(i) for i in range(10))
SPLITS: tuple[str, ...] = ("train", "val")
# COCO 2017's 80 detection categories in mmdet's order (``CocoDataset.METAINFO['classes']``) and
# their non-contiguous ids 1..90, for the COCO-shaped variant (``DigitsConfig.coco``).
COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog",
    "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella",
    "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball", "kite",
    "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket", "bottle",
    "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch", "potted plant",
    "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors",
    "teddy bear", "hair drier", "toothbrush")
COCO_IDS: tuple[int, ...] = tuple(i for i in range(1, 91)
                                  if i not in (12, 26, 29, 30, 45, 66, 68, 69, 71, 83))
# Digit d is annotated as COCO category COCO_CLASSES[DIGIT_TO_COCO[d]]: spread over the list so
# that label index, category id and id - 1 all differ (e.g. digit 9 -> "toothbrush", id 90).
DIGIT_TO_COCO: tuple[int, ...] = (0, 2, 11, 15, 24, 39, 45, 56, 62, 79)
# Photographs shipped inside scikit-image (scikit-learn's china/flower are added in _backgrounds).
_SKIMAGE_PHOTOS: tuple[str, ...] = (
    "astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field",
)
MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class DigitsConfig:
    """Parameters of the embedded dataset (defaults: the tiny-detector preset)."""

    num_train: int = 2000
    num_val: int = 300
    image_size: int = 192
    min_size: int = 12
    max_size: int = 120
    max_objects: int = 6
    overlap_prob: float = 0.2
    empty_prob: float = 0.03
    low_contrast_prob: float = 0.15
    seed: int = 0
    # COCO-shaped: non-square images whose long side is drawn from [25/32, 1] * image_size,
    # objects up to half the image, the 80 COCO categories (the digits take ten of them, see
    # DIGIT_TO_COCO) and COCO 2017's file layout. False keeps the default dataset byte-identical.
    coco: bool = False

    def validate(self) -> None:
        """Raise :class:`DatasetError` naming the first invalid field."""
        checks: list[tuple[str, bool, str]] = [
            ("num_train", self.num_train >= 1, "must be >= 1"),
            ("num_val", self.num_val >= 1, "must be >= 1"),
            ("image_size", 32 <= self.image_size <= 4096, "must be in [32, 4096]"),
            ("min_size", self.min_size >= 4, "must be >= 4"),
            ("max_size", self.min_size <= self.max_size, f"must be >= min_size ({self.min_size})"),
            ("max_size", self.max_size <= self.image_size, f"must be <= image_size ({self.image_size})"),
            ("max_objects", 1 <= self.max_objects <= 100, "must be in [1, 100]"),
            ("overlap_prob", 0.0 <= self.overlap_prob <= 1.0, "must be in [0, 1]"),
            ("empty_prob", 0.0 <= self.empty_prob < 1.0, "must be in [0, 1)"),
            ("low_contrast_prob", 0.0 <= self.low_contrast_prob <= 1.0, "must be in [0, 1]"),
            # COCO-shaped: the smallest image's short side is 0.6 * 25/32 * image_size
            ("min_size", not self.coco or self.min_size <= int(self.image_size * 25 // 32 * 0.6) // 2,
             "must be <= half the smallest short side (0.23 * image_size) when coco=True"),
        ]
        for name, ok, why in checks:
            if not ok:
                raise DatasetError(f"{name}={getattr(self, name)!r} {why}")

    def num_images(self, split: str) -> int:
        return self.num_train if split == "train" else self.num_val

    def split_dir(self, split: str) -> str:
        """Image folder (and annotation suffix) of ``split``: ``val`` or, COCO-shaped, ``val2017``."""
        return f"{split}2017" if self.coco else split


def coco_shaped(num_train: int = 8, num_val: int = 4, seed: int = 0) -> DigitsConfig:
    """The COCO-shaped variant: 500-640 px long side, objects 10 px to half the image, the 80 COCO
    categories, ``annotations/instances_{train,val}2017.json`` with ``train2017/``, ``val2017/``."""
    return DigitsConfig(num_train=num_train, num_val=num_val, image_size=640, min_size=10,
                        max_size=320, max_objects=8, empty_prob=0.0, seed=seed, coco=True)


# --------------------------------------------------------------------------- sources
@lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    """Return (images float32[N, 8, 8] in [0, 1], labels int64[N]) of scikit-learn's digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.images / 16.0).astype(np.float32), d.target.astype(np.int64)


def digit_indices(split: str) -> np.ndarray:
    """Indices of the digit scans reserved for ``split`` (every 5th scan goes to val)."""
    n = len(_digits()[1])
    idx = np.arange(n)
    return idx[idx % 5 == 4] if split == "val" else idx[idx % 5 != 4]


@lru_cache(maxsize=1)
def _backgrounds() -> tuple[np.ndarray, ...]:
    """Photographs as uint8[H, W, 3] RGB arrays."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    photos = list(load_sample_images().images)
    photos += [getattr(skimage.data, name)() for name in _SKIMAGE_PHOTOS]
    return tuple(np.ascontiguousarray(p[..., :3]).astype(np.uint8) for p in photos)


# --------------------------------------------------------------------------- drawing
def random_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random square crop of a random photograph, resized to uint8[size, size, 3] RGB."""
    import cv2

    photos = _backgrounds()
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    side = int(rng.integers(min(96, ph, pw), min(ph, pw) + 1))
    y0 = int(rng.integers(0, ph - side + 1))
    x0 = int(rng.integers(0, pw - side + 1))
    crop = photo[y0:y0 + side, x0:x0 + side]
    if rng.random() < 0.5:
        crop = cv2.flip(crop, 1)  # = np.ascontiguousarray(crop[:, ::-1]), several times faster
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def random_background_rect(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A random crop with the aspect ratio width/height of a random photograph, resized to
    uint8[height, width, 3] RGB (the COCO-shaped variant's non-square backgrounds)."""
    import cv2

    photos = _backgrounds()
    photo = photos[int(rng.integers(len(photos)))]
    ph, pw = photo.shape[:2]
    cw_max = min(pw, int(ph * width / height))
    cw = int(rng.integers(min(96, cw_max), cw_max + 1))
    ch = max(1, min(ph, int(round(cw * height / width))))
    y0 = int(rng.integers(0, ph - ch + 1))
    x0 = int(rng.integers(0, pw - cw + 1))
    crop = photo[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        crop = cv2.flip(crop, 1)
    interp = cv2.INTER_AREA if cw >= width else cv2.INTER_LINEAR
    return cv2.resize(crop, (width, height), interpolation=interp)


def image_shape(cfg: DigitsConfig, rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) of the next image: square ``image_size``, or COCO-shaped: long side in
    [25/32, 1] * image_size, short side 0.6-0.8 of it, landscape 70 % of the time."""
    if not cfg.coco:
        return cfg.image_size, cfg.image_size
    long = int(rng.integers(cfg.image_size * 25 // 32, cfg.image_size + 1))
    short = int(round(long * rng.uniform(0.6, 0.8)))
    return (long, short) if rng.random() < 0.7 else (short, long)


def digit_alpha(scan: np.ndarray, w: int, h: int) -> np.ndarray:
    """Upsample an 8×8 scan float32[8, 8] to an alpha mask float32[h, w] in [0, 1]."""
    import cv2

    # Pad by one pixel of background so the strokes fade out instead of being cut at the border.
    padded = np.pad(scan, 1)
    alpha = cv2.resize(padded, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(alpha, 0.0, 1.0)


def tight_box(alpha: np.ndarray, thr: float = 0.3) -> tuple[int, int, int, int] | None:
    """Tight box (x0, y0, x1, y1), exclusive end, of pixels with alpha > thr; None if empty."""
    ys, xs = np.nonzero(alpha > thr)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def contrasting_colour(rng: np.random.Generator, patch: np.ndarray, low_contrast: bool) -> np.ndarray:
    """A colour float32[3] far from (or, for hard objects, close to) the patch's mean colour."""
    mean = patch.reshape(-1, 3).mean(0)
    if low_contrast:
        return np.clip(mean + rng.uniform(-60, 60, 3), 0, 255).astype(np.float32)
    for _ in range(20):
        colour = rng.uniform(0, 255, 3)
        if np.abs(colour - mean).sum() > 200:
            return colour.astype(np.float32)
    return (255.0 - mean).astype(np.float32)


def blend_digit(rng: np.random.Generator, image: np.ndarray, alpha: np.ndarray, x: int, y: int,
                low_contrast_prob: float) -> None:
    """Blend a digit mask alpha (float32[h, w]) into image (float32[H, W, 3]) at (x, y), in place.

    The colour contrasts with the covered patch, or with ``low_contrast_prob`` resembles it
    (a hard object); the opacity is drawn from [0.75, 1].
    """
    h, w = alpha.shape
    patch = image[y:y + h, x:x + w]
    colour = contrasting_colour(rng, patch, rng.random() < low_contrast_prob)
    a = (alpha * rng.uniform(0.75, 1.0))[..., None]
    image[y:y + h, x:x + w] = patch * (1 - a) + colour * a


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """IoU of two (x0, y0, x1, y1) boxes."""
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _place(rng: np.random.Generator, W: int, H: int, w: int, h: int,
           boxes: list[tuple[int, int, int, int]], near: tuple[int, int, int, int] | None
           ) -> tuple[int, int] | None:
    """Top-left corner for a w×h digit in a W×H image: overlapping ``near`` (IoU 0.1–0.6) or
    apart from all."""
    for _ in range(30):
        if near is not None:
            cx = (near[0] + near[2]) / 2 + rng.uniform(-0.6, 0.6) * (near[2] - near[0])
            cy = (near[1] + near[3]) / 2 + rng.uniform(-0.6, 0.6) * (near[3] - near[1])
            x, y = int(cx - w / 2), int(cy - h / 2)
        else:
            x, y = int(rng.integers(0, W - w + 1)), int(rng.integers(0, H - h + 1))
        x, y = min(max(x, 0), W - w), min(max(y, 0), H - h)
        cand = (x, y, x + w, y + h)
        ious = [box_iou(cand, b) for b in boxes]
        if near is not None:
            if 0.1 <= box_iou(cand, near) <= 0.6 and all(i <= 0.6 for i in ious):
                return x, y
        elif all(i < 0.05 for i in ious):
            return x, y
    return None


def render_image(cfg: DigitsConfig, split: str, index: int) -> tuple[np.ndarray, list[dict]]:
    """Draw image ``index`` of ``split``.

    Returns:
        image: uint8[H, W, 3] RGB (H = W = image_size unless ``cfg.coco``).
        objects: dicts with ``bbox`` [x, y, w, h] (tight, inside the image) and ``label`` 0–9
        (the digit; :func:`category_id` gives its COCO category id).
    """
    rng = np.random.default_rng([cfg.seed, SPLITS.index(split), index])
    W, H = image_shape(cfg, rng)
    if cfg.coco:
        image = random_background_rect(rng, W, H).astype(np.float32)
    else:
        image = random_background(rng, W).astype(np.float32)
    max_size = min(cfg.max_size, min(W, H) // 2) if cfg.coco else cfg.max_size
    scans, labels = _digits()
    pool = digit_indices(split)
    objects: list[dict] = []
    boxes: list[tuple[int, int, int, int]] = []
    n = 0 if rng.random() < cfg.empty_prob else int(rng.integers(1, cfg.max_objects + 1))
    for _ in range(n):
        k = int(pool[rng.integers(len(pool))])
        # log-uniform height, aspect ratio w/h in [0.5, 1.4] (digits are taller than wide)
        h = int(round(np.exp(rng.uniform(np.log(cfg.min_size), np.log(max_size)))))
        w = int(round(min(max(h * np.exp(rng.uniform(np.log(0.5), np.log(1.4))), 4), W)))
        near = boxes[-1] if boxes and rng.random() < cfg.overlap_prob else None
        xy = _place(rng, W, H, w, h, boxes, near)
        if xy is None:
            continue
        alpha = digit_alpha(scans[k], w, h)
        tb = tight_box(alpha)
        if tb is None or (tb[2] - tb[0]) < 2 or (tb[3] - tb[1]) < 2:
            continue
        x, y = xy
        blend_digit(rng, image, alpha, x, y, cfg.low_contrast_prob)
        box = (x + tb[0], y + tb[1], x + tb[2], y + tb[3])
        boxes.append(box)
        objects.append({"bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                        "label": int(labels[k])})
    noise = rng.normal(0.0, rng.uniform(0.0, 6.0), image.shape)
    return np.clip(image + noise, 0, 255).round().astype(np.uint8), objects


# --------------------------------------------------------------------------- writing
def coco_categories(coco: bool = False) -> list[dict]:
    """The category list: digits "0".."9" with ids 1..10, or (``coco``) COCO's 80 categories
    with their ids, the digits' supercategory naming the digit they stand for."""
    if not coco:
        return [{"id": i + 1, "name": name, "supercategory": "digit"} for i, name in enumerate(CLASSES)]
    digit_of = {k: d for d, k in enumerate(DIGIT_TO_COCO)}
    return [{"id": cid, "name": name,
             "supercategory": f"digit {digit_of[k]}" if k in digit_of else "no instances"}
            for k, (cid, name) in enumerate(zip(COCO_IDS, COCO_CLASSES))]


def category_id(label: int, coco: bool = False) -> int:
    """COCO category id of digit ``label`` (0-9)."""
    return COCO_IDS[DIGIT_TO_COCO[label]] if coco else label + 1


def image_id(split: str, index: int, coco: bool = False) -> int:
    """Image id of image ``index`` of ``split``: 1, 2, ... or, COCO-shaped, non-contiguous ids
    that differ between the splits (as COCO's do)."""
    return 100_000 * (SPLITS.index(split) + 1) + 7 * index + 3 if coco else index + 1


def _write_split(cfg: DigitsConfig, split: str, root: Path,
                 progress: Callable[[Iterator[int], int, str], Iterator[int]]) -> dict:
    """Render and write one split's PNGs under root/split/, returning its COCO dict."""
    import cv2

    img_dir = root / cfg.split_dir(split)
    img_dir.mkdir(parents=True)
    images, annotations = [], []
    n = cfg.num_images(split)
    for i in progress(iter(range(n)), n, split):
        image, objects = render_image(cfg, split, i)
        img_id = image_id(split, i, cfg.coco)
        name = f"{img_id:012d}.png" if cfg.coco else f"{i:06d}.png"
        ok, buf = cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise DatasetError(f"could not encode {img_dir / name}")
        (img_dir / name).write_bytes(buf.tobytes())
        images.append({"id": img_id, "file_name": name, "height": int(image.shape[0]),
                       "width": int(image.shape[1])})
        for obj in objects:
            x, y, w, h = obj["bbox"]
            annotations.append({"id": len(annotations) + 1, "image_id": img_id,
                                "category_id": category_id(obj["label"], cfg.coco), "bbox": [x, y, w, h],
                                "area": w * h, "iscrowd": 0})
    return {"info": {"description": f"retconf digits-on-photos {split}", "version": str(FORMAT_VERSION)},
            "licenses": [], "images": images, "annotations": annotations,
            "categories": coco_categories(cfg.coco)}


def _no_progress(it: Iterator[int], total: int, desc: str) -> Iterator[int]:
    return it


def _manifest(cfg: DigitsConfig) -> dict:
    config = asdict(cfg)
    if not cfg.coco:
        del config["coco"]  # the default dataset's manifest stays as it was before the option
    return {"format_version": FORMAT_VERSION, "config": config}


def generate(cfg: DigitsConfig, out: str | os.PathLike,
             progress: Callable[[Iterator[int], int, str], Iterator[int]] = _no_progress,
             overwrite: bool = False) -> Path:
    """Write the dataset to ``out`` atomically and return its path.

    Layout: ``out/{train,val}/NNNNNN.png``, ``out/annotations/instances_{train,val}.json`` and
    ``out/manifest.json``; COCO-shaped (``cfg.coco``): COCO 2017's ``out/{train,val}2017/`` and
    ``out/annotations/instances_{train,val}2017.json``. Everything is written into a temporary sibling directory that is
    renamed into place at the end, so an interrupted run leaves no half-written dataset. An
    existing dataset with the same manifest is reused as is (cached); a different one is only
    replaced with ``overwrite=True``.
    """
    cfg.validate()
    out = Path(out).absolute()
    if out.exists():
        existing = out / MANIFEST
        if existing.is_file() and json.loads(existing.read_text()) == _manifest(cfg):
            return out
        if not overwrite:
            raise DatasetError(f"{out} already exists and holds another dataset "
                               f"(no matching {MANIFEST}); pass --overwrite to replace it")
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=parent))
    except OSError as e:
        raise DatasetError(f"cannot write to output directory {parent}: {e.strerror}") from e
    try:
        (tmp / "annotations").mkdir()
        for split in SPLITS:
            coco = _write_split(cfg, split, tmp, progress)
            (tmp / "annotations" / f"instances_{cfg.split_dir(split)}.json").write_text(
                json.dumps(coco, sort_keys=True, separators=(",", ":")))
        (tmp / MANIFEST).write_text(json.dumps(_manifest(cfg), sort_keys=True, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
