"""Presets: the detectors a run trains (``retconf reproduce --detectors``)."""
from __future__ import annotations

import pytest

from retconf.presets import FAMILY_DETECTORS, PRESETS, TINY_DETECTORS


def test_default_detectors_are_the_papers_three() -> None:
    tiny = PRESETS["tiny"]
    assert tiny.choose(None) is tiny and list(tiny.detectors) == ["retinanet", "iou_aware", "retinanet_conf"]


def test_groups_and_names_keep_order_without_repeats() -> None:
    tiny = PRESETS["tiny"]
    assert list(tiny.choose(["all"]).detectors) == [*TINY_DETECTORS, *FAMILY_DETECTORS]
    assert list(tiny.choose(["families"]).detectors) == list(FAMILY_DETECTORS)
    chosen = tiny.choose(["paper", "fcos", "retinanet", "tood"])
    assert list(chosen.detectors) == ["retinanet", "iou_aware", "retinanet_conf", "fcos", "tood"]
    assert chosen.detectors["fcos"] == FAMILY_DETECTORS["fcos"] and chosen.name == "tiny"


def test_unknown_detector_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown detector 'yolo' for preset tiny \(choose from paper, families, all"):
        PRESETS["tiny"].choose(["yolo"])
    with pytest.raises(ValueError, match="unknown detector 'fcos' for preset coco_r50"):
        PRESETS["coco_r50"].choose(["fcos"])
