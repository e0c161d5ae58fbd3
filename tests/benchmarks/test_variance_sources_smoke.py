"""benchmarks/variance_report.py: the decomposition's arithmetic on hand-made rows."""
from __future__ import annotations

import math

import pytest

from benchmarks.variance_report import decompose, markdown, seeds_needed


def test_seeds_needed_is_the_smallest_n_whose_t_half_width_fits() -> None:
    from scipy.stats import t

    n = seeds_needed(0.03)
    assert t.ppf(0.975, n - 1) * 0.03 / math.sqrt(n) <= 0.01 < t.ppf(0.975, n - 2) * 0.03 / math.sqrt(n - 1)
    assert seeds_needed(0.001) == 2 and seeds_needed(float("nan")) is None


def _row(lever, isa, seed, pair, a, b, boot=0.006):
    return {"run": f"{lever}-{isa}", "lever": lever, "isa": isa, "seed": seed, "pair": pair, "AP_a": a, "AP_b": b,
            "delta": a - b, "boot_sd": boot, "boot_sd_a": boot, "boot_sd_b": boot}


def test_decomposition_separates_seed_numeric_and_evaluation_noise() -> None:
    pair = "retinanet_conf − retinanet"
    rows = [_row("default", "default", 0, pair, 0.41, 0.34), _row("default", "default", 1, pair, 0.40, 0.37),
            _row("default", "AVX512_CORE", 0, pair, 0.38, 0.39)]
    infos = {"default": {"lever": "default", "isa": "default", "train_s": {"retinanet": 400.0}, "cpu": "x"}}
    (t,) = [r for r in decompose(rows, infos) if r["pair"] == pair]
    assert t["seeds"] == 2 and t["per_seed"] == pytest.approx([0.07, 0.03])
    assert t["seed_sd"] == pytest.approx(0.04 / math.sqrt(2)) and t["boot_sd"] == pytest.approx(0.006)
    assert t["numeric_change"] == pytest.approx(abs(-0.01 - 0.07))  # the same seed on another path
    assert t["numeric_single_change"] == pytest.approx(0.05)  # RetinaNet 0.34 -> 0.39
    assert t["train_s"] == 400.0
    assert "| default | retinanet_conf − retinanet | 2 | +0.070, +0.030 |" in markdown([t], rows, infos, 10)
