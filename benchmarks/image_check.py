"""Cost of `retconf data check --images`: header-only check against the full decode, per image,
on COCO-sized JPEGs (640x480, quality 90, cut from scikit-image's photographs) and on the
embedded dataset's 192x192 PNGs, extrapolated to COCO train2017's 118,287 images.

Every figure is measured in this run (CPU time of one process on one core); results go to JSON and markdown.

    python benchmarks/image_check.py --images 300 --out reports/benchmarks/image_check
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.results import write_results  # noqa: E402
from retconf.data.coco_check import validate_coco  # noqa: E402

COCO_TRAIN_IMAGES = 118_287
KINDS = {"coco_jpeg_640x480": (640, 480, "jpg"), "digits_png_192x192": (192, 192, "png")}


def make_images(folder: Path, n: int, width: int, height: int, ext: str, seed: int = 0) -> Path:
    """``n`` photo crops of ``width`` x ``height`` and a COCO json listing them; returns the json."""
    from PIL import Image
    from skimage import data as photos

    rng = np.random.default_rng(seed)
    sources = [photos.astronaut(), photos.coffee(), photos.chelsea(), photos.rocket()]
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n):
        src = Image.fromarray(sources[i % len(sources)]).resize((width + 64, height + 64))
        x, y = rng.integers(0, 64, 2)
        crop = src.crop((int(x), int(y), int(x) + width, int(y) + height))
        name = f"{i:06d}.{ext}"
        crop.save(folder / name, quality=90) if ext == "jpg" else crop.save(folder / name)
        images.append({"id": i + 1, "file_name": name, "width": width, "height": height})
    ann = folder / "instances.json"
    ann.write_text(json.dumps({"images": images, "annotations": [],
                               "categories": [{"id": 1, "name": "thing"}]}))
    return ann


def measure(ann: Path, folder: Path, decode: bool, repeats: int) -> float:
    """Best-of-``repeats`` CPU seconds per image of validate_coco, files in the page cache.

    CPU time of this process rather than wall time, so that other load on a shared machine does
    not inflate the figure (OpenCV is kept to one thread: one core's cost)."""
    import cv2

    cv2.setNumThreads(1)
    n = len(json.loads(ann.read_text())["images"])
    best = float("inf")
    for _ in range(repeats):
        start = time.process_time()
        validate_coco(ann, folder, decode=decode)
        best = min(best, time.process_time() - start)
    return best / n


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=300, help="images per kind (default %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats, best kept (default %(default)s)")
    p.add_argument("--work", default="/tmp/retconf-image-check", help="scratch directory")
    p.add_argument("--out", required=True, help="output path without suffix (.json and .md are written)")
    args = p.parse_args(argv)
    result = {"images_per_kind": args.images, "coco_train_images": COCO_TRAIN_IMAGES, "kinds": {}}
    lines = ["| images | mode | ms per image | COCO train2017 (118,287 images), one core |", "|---|---|---|---|"]
    for kind, (w, h, ext) in KINDS.items():
        folder = Path(args.work) / kind
        ann = make_images(folder, args.images, w, h, ext)
        for mode, decode in (("header", False), ("decode", True)):
            per = measure(ann, folder, decode, args.repeats)
            coco_min = per * COCO_TRAIN_IMAGES / 60
            result["kinds"].setdefault(kind, {})[mode] = {"ms_per_image": round(1000 * per, 3),
                                                          "coco_train_minutes": round(coco_min, 2)}
            lines.append(f"| {kind} | {mode} | {1000 * per:.2f} | {coco_min:.1f} min |")
    write_results(args.out, result, "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
