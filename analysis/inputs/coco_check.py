"""Validation of COCO-format annotation files before anything trains or evaluates on them.

Every problem is reported as one :class:`DatasetError` that names the file, the entry and the
field, e.g. ``instances_val.json: annotations[5] (id 12) points at unknown image_id 999``.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from .errors import DatasetError

REQUIRED = ("images", "annotations", "categories")
# Boxes may overhang their image by this many pixels (rounding in real annotations).
BORDER_TOLERANCE = 1.0
# Images larger than this are refused as decompression bombs, before any decoding. It is
# Pillow's warning threshold (about 0.25 GiB as 8-bit RGB); COCO's largest image is 640x640.
MAX_IMAGE_PIXELS = 89_478_485
# EXIF orientations that swap width and height (90 or 270 degree rotations).
_TRANSPOSING = {5, 6, 7, 8}
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# A JPEG marker inside entropy-coded data: 0xFF followed by neither stuffing (0x00), a restart
# marker (0xD0-0xD7) nor fill (0xFF).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


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


def _check_area_and_crowd(where: str, ann: dict) -> None:
    """``area`` must be a positive number: mmdet's CocoDataset fails on a missing one and silently
    drops an annotation with area <= 0 (a zero-area segment) from training, while COCO
    evaluation still counts it (as a small object). ``iscrowd`` must be 0 or 1."""
    area = ann.get("area")
    if "area" not in ann:
        raise DatasetError(f"{where} has no field 'area' (mmdet and COCO evaluation need it)")
    if isinstance(area, bool) or not isinstance(area, (int, float)) or not math.isfinite(area):
        raise DatasetError(f"{where}: field 'area' must be a finite number, got {area!r}")
    if area <= 0:
        raise DatasetError(f"{where}: area {area} (a zero-area segment): mmdet would leave it out of "
                           "training while COCO evaluation still counts it")
    if ann.get("iscrowd", 0) not in (0, 1):
        raise DatasetError(f"{where}: field 'iscrowd' must be 0 or 1, got {ann.get('iscrowd')!r}")


def _png_complete(f: Path) -> bool:
    """Whether a PNG file runs through its IEND chunk (walks chunk headers, reads no pixel data)."""
    size = f.stat().st_size
    with open(f, "rb") as fh:
        fh.seek(max(size - 12, 0))
        if fh.read(12) == _PNG_IEND:
            return True
        pos = 8
        while pos + 8 <= size:
            fh.seek(pos)
            head = fh.read(8)
            length = int.from_bytes(head[:4], "big")
            if head[4:8] == b"IEND":
                return True
            pos += 12 + length
    return False


def _jpeg_complete(f: Path) -> bool:
    """Whether a JPEG file reaches its end-of-image marker. Fast path: the file ends with it
    (0xFFD9 cannot occur inside entropy-coded data); otherwise the segments are walked, which
    allows data appended after the marker (as some cameras write)."""
    with open(f, "rb") as fh:
        fh.seek(-2, os.SEEK_END)
        if fh.read(2) == b"\xff\xd9":
            return True
        fh.seek(0)
        data = fh.read()
    pos, n = 2, len(data)
    while pos + 2 <= n:
        if data[pos] != 0xFF:
            return False
        marker = data[pos + 1]
        if marker == 0xD9:
            return True
        if marker == 0xFF:
            pos += 1
            continue
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        if pos + 4 > n:
            return False
        pos += 2 + int.from_bytes(data[pos + 2:pos + 4], "big")
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker
            m = _JPEG_MARKER.search(data, pos)
            if m is None:
                return False
            pos = m.start()
    return False


def check_image_file(f: Path, img: dict, ann_name: str, decode: bool,
                     max_pixels: int = MAX_IMAGE_PIXELS) -> None:
    """Check one image file against its ``images[]`` entry.

    Header mode (``decode=False``): the header must parse, the size must be at most
    ``max_pixels`` and, after EXIF orientation (which the pipeline's OpenCV decoder applies),
    equal the entry's width x height; PNG and JPEG files must be complete (end marker present,
    found without decoding). ``decode=True`` also decodes the file exactly as mmdet's
    ``LoadImageFromFile`` does (OpenCV, 'color') and checks the decoded size.

    Raises:
        DatasetError: naming the file, the image id and what is wrong.
    """
    from PIL import Image

    where = f"(image id {img['id']} of {ann_name})"
    if not f.is_file():
        raise DatasetError(f"{f}: image file missing {where}")
    if f.stat().st_size == 0 or not os.access(f, os.R_OK):
        raise DatasetError(f"{f}: image file unreadable or empty {where}")
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # the header alone: our limit below
    try:
        with Image.open(f) as im:
            (w, h), fmt = im.size, im.format
            orientation = im.getexif().get(0x0112, 1) if fmt == "JPEG" else 1
    except Exception as e:  # noqa: BLE001 - Pillow raises several types for bad files
        raise DatasetError(f"{f}: not a readable image ({' '.join(str(e).split())}) {where}") from e
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    if w * h > max_pixels:
        raise DatasetError(f"{f}: {w}x{h} = {w * h} pixels exceeds the decompression-bomb limit of "
                           f"{max_pixels} pixels {where}")
    complete = {"PNG": _png_complete, "JPEG": _jpeg_complete}.get(fmt or "")
    if complete is not None and not complete(f):
        raise DatasetError(f"{f}: truncated {fmt} file (it ends before its end-of-image marker) {where}")
    turned = orientation in _TRANSPOSING
    if turned:
        w, h = h, w
    if decode:
        import cv2
        import numpy as np

        # what mmcv.imfrombytes(flag='color', backend='cv2') does inside LoadImageFromFile
        array = cv2.imdecode(np.fromfile(f, dtype=np.uint8), cv2.IMREAD_COLOR)
        if array is None:
            raise DatasetError(f"{f}: the pipeline's decoder (OpenCV) cannot decode this {fmt} file {where}")
        h, w = array.shape[:2]
    if (w, h) != (img["width"], img["height"]):
        how = (f" as the pipeline loads it (EXIF orientation {orientation} turns the stored "
               f"{h}x{w} image)" if turned else "")
        raise DatasetError(f"{f}: image is {w}x{h}{how} but {ann_name} says width {img['width']}, "
                           f"height {img['height']} {where}")


def validate_coco(ann_file: str | os.PathLike, img_dir: str | os.PathLike | None = None,
                  decode: bool = False, max_pixels: int = MAX_IMAGE_PIXELS) -> dict:
    """Check a COCO detection json (and, with ``img_dir``, its image files: see
    :func:`check_image_file`; ``decode`` selects the full decode over the header-only check).

    Returns:
        counts: ``{"images": int, "annotations": int, "categories": int}`` and ``thin_boxes``:
        where the annotations narrower or lower than 1 px are (accepted: mmdet leaves them out
        of training, COCO evaluation counts them, as on COCO itself).
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
    files: dict = {}
    for i, img in enumerate(data["images"]):
        for field in ("id", "file_name", "width", "height"):
            if not isinstance(img, dict) or field not in img:
                raise DatasetError(f"{path.name}: images[{i}] has no field {field!r}")
        sized = isinstance(img["width"], int) and isinstance(img["height"], int)
        if not sized or img["width"] <= 0 or img["height"] <= 0:
            raise DatasetError(f"{path.name}: images[{i}] (id {img['id']}) width/height must be positive integers")
        if img["width"] * img["height"] > max_pixels:
            raise DatasetError(f"{path.name}: images[{i}] (id {img['id']}) claims {img['width']}x{img['height']} "
                               f"pixels, over the decompression-bomb limit of {max_pixels}")
        if img["id"] in images:
            raise DatasetError(f"{path.name}: images[{i}] repeats image id {img['id']}")
        if img["file_name"] in files:
            raise DatasetError(f"{path.name}: images[{i}] (id {img['id']}) repeats file_name "
                               f"{img['file_name']!r} of image id {files[img['file_name']]}")
        images[img["id"]] = img
        files[img["file_name"]] = img["id"]
    categories: dict = {}
    names: dict = {}
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or "id" not in cat or "name" not in cat:
            raise DatasetError(f"{path.name}: categories[{i}] needs fields 'id' and 'name'")
        if cat["id"] in categories:
            raise DatasetError(f"{path.name}: categories[{i}] repeats category id {cat['id']}")
        if cat["name"] in names:
            # mmdet maps class names to ids: both ids would get labels and shift every later class
            raise DatasetError(f"{path.name}: categories[{i}] (id {cat['id']}) repeats the name "
                               f"{cat['name']!r} of category id {names[cat['name']]}")
        categories[cat["id"]] = cat
        names[cat["name"]] = cat["id"]
    ann_ids: set = set()
    thin: list[str] = []
    for i, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict):
            raise DatasetError(f"{path.name}: annotations[{i}] must be an object")
        where = f"{path.name}: annotations[{i}] (id {ann.get('id')})"
        if "id" not in ann:
            raise DatasetError(f"{path.name}: annotations[{i}] has no field 'id'")
        if ann["id"] in ann_ids:
            # COCO evaluation indexes annotations by id: one of the two would be lost
            raise DatasetError(f"{where} repeats annotation id {ann['id']}")
        ann_ids.add(ann["id"])
        if ann.get("image_id") not in images:
            raise DatasetError(f"{where} points at unknown image_id {ann.get('image_id')!r}")
        if ann.get("category_id") not in categories:
            raise DatasetError(f"{where} points at unknown category_id {ann.get('category_id')!r}")
        _check_box(path, i, ann, images[ann["image_id"]])
        _check_area_and_crowd(where, ann)
        w, h = ann["bbox"][2:]
        if w < 1 or h < 1:
            thin.append(where)
    if img_dir is not None:
        root = Path(img_dir)
        for img in images.values():
            check_image_file(root / img["file_name"], img, path.name, decode, max_pixels)
    return {"images": len(images), "annotations": len(data["annotations"]), "categories": len(categories),
            "thin_boxes": thin}
