"""Datasets: the embedded digits-on-photos generator."""
from .digits import CLASSES, DatasetError, DigitsConfig, generate, render_image

__all__ = ["CLASSES", "DatasetError", "DigitsConfig", "generate", "render_image"]
