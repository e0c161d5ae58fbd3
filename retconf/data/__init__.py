"""Datasets: the embedded digits-on-photos generator."""
from ..errors import DatasetError
from .digits import CLASSES, DigitsConfig, generate, render_image

__all__ = ["CLASSES", "DatasetError", "DigitsConfig", "generate", "render_image"]
