"""Validation of COCO-format annotation files: defined in the analysis layer
(:mod:`analysis.inputs.coco_check`, no training stack needed), re-exported here for existing imports."""
from analysis.inputs.coco_check import (BORDER_TOLERANCE, MAX_IMAGE_PIXELS, REQUIRED, DatasetError,  # noqa: F401
                                 check_image_file, load_coco_json, validate_coco)

__all__ = ["BORDER_TOLERANCE", "MAX_IMAGE_PIXELS", "REQUIRED", "DatasetError", "check_image_file",
           "load_coco_json", "validate_coco"]
