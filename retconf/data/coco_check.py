"""Validation of COCO-format annotation files before anything trains or evaluates on them.

Every problem is reported as one :class:`DatasetError` that names the file, the entry and the
field, e.g. ``instances_val.json: annotations[5] (id 12) points at unknown image_id 999``.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Optional

from .digits import DatasetError

REQUIRED = ("images", "annotations", "categories")
# Boxes may overhang their image by this many pixels (rounding in real annotations).
BORDER_TOLERANCE = 1.0


def load_coco_json(path: str | os.PathLike) -> dict:
    """Read a COCO json, turning a missing file or bad JSON into a :class:`DatasetError`."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file does not exist")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot be read ({e})") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: top level must be a JSON object with {', '.join(REQUIRED)}")
    return data


def _check_box(path: Path, i: int, ann: dict, image: dict) -> None:
    where = f"{path.name}: annotations[{i}] (id {ann.get('id')})"
    box = ann.get("bbox")
    if not isinstance(box, list) or len(box) != 4 or not all(isinstance(v, (int, float)) for v in box):
        raise DatasetError(f"{where}: field 'bbox' must be 4 numbers [x, y, w, h], got {box!r}")
    if not all(math.isfinite(v) for v in box):
        raise DatasetError(f"{where}: bbox {box} has a non-finite value")
    x, y, w, h = box
    if w <= 0 or h <= 0:
        raise DatasetError(f"{where}: bbox {box} has width or height <= 0")
    W, H = image["width"], image["height"]
    t = BORDER_TOLERANCE
    if x < -t or y < -t or x + w > W + t or y + h > H + t:
        raise DatasetError(f"{where}: bbox {box} lies outside its {W}x{H} image "
                           f"{image.get('file_name')!r} (image_id {image['id']})")


def validate_coco(ann_file: str | os.PathLike, img_dir: Optional[str | os.PathLike] = None) -> dict:
    """Check a COCO detection json (and, with ``img_dir``, that its image files are readable).

    Returns:
        counts: ``{"images": int, "annotations": int, "categories": int}``.
    Raises:
        DatasetError: the first problem found, naming file, entry and field.
    """
    path = Path(ann_file)
    data = load_coco_json(path)
    for key in REQUIRED:
        if key not in data:
            raise DatasetError(f"{path}: missing field {key!r}")
        if not isinstance(data[key], list):
            raise DatasetError(f"{path}: field {key!r} must be a list")
    if not data["images"]:
        raise DatasetError(f"{path}: field 'images' is empty (empty dataset)")
    if not data["categories"]:
        raise DatasetError(f"{path}: field 'categories' is empty")
    images: dict = {}
    for i, img in enumerate(data["images"]):
        for field in ("id", "file_name", "width", "height"):
            if not isinstance(img, dict) or field not in img:
                raise DatasetError(f"{path.name}: images[{i}] has no field {field!r}")
        if not (isinstance(img["width"], int) and isinstance(img["height"], int)) or img["width"] <= 0 or img["height"] <= 0:
            raise DatasetError(f"{path.name}: images[{i}] (id {img['id']}) width/height must be positive integers")
        if img["id"] in images:
            raise DatasetError(f"{path.name}: images[{i}] repeats image id {img['id']}")
        images[img["id"]] = img
    categories = set()
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise DatasetError(f"{path.name}: categories[{i}] needs fields 'id' and 'name'")
        categories.add(cat["id"])
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DatasetError(f"{path.name}: annotations[{i}] must be an object")
        where = f"{path.name}: annotations[{i}] (id {ann.get('id')})"
        if ann.get("image_id") not in images:
            raise DatasetError(f"{where} points at unknown image_id {ann.get('image_id')!r}")
        if ann.get("category_id") not in categories:
            raise DatasetError(f"{where} points at unknown category_id {ann.get('category_id')!r}")
        _check_box(path, i, ann, images[ann["image_id"]])
    if img_dir is not None:
        root = Path(img_dir)
        for img in images.values():
            f = root / img["file_name"]
            if not f.is_file():
                raise DatasetError(f"{f}: image file missing (image id {img['id']} of {path.name})")
            if f.stat().st_size == 0 or not os.access(f, os.R_OK):
                raise DatasetError(f"{f}: image file unreadable or empty (image id {img['id']} of {path.name})")
    return {"images": len(images), "annotations": len(data["annotations"]), "categories": len(categories)}
