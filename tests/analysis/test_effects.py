"""Hand-computed paired effects against a baseline (α sweep, fusion modes)."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from analysis.measures.effects import delta_intervals, deltas_to_baseline  # noqa: E402

# two detectors, seeds 0 and 1, α 0 (baseline), 0.4, 0.9; seed 1 of "b" lacks α 0.9
PER_SEED = pd.DataFrame(
    [("a", 0, 0.0, 0.30), ("a", 0, 0.4, 0.32), ("a", 0, 0.9, 0.25),
     ("a", 1, 0.0, 0.40), ("a", 1, 0.4, 0.43), ("a", 1, 0.9, 0.36),
     ("b", 0, 0.0, 0.50), ("b", 0, 0.4, 0.49), ("b", 0, 0.9, 0.45),
     ("b", 1, 0.0, 0.52), ("b", 1, 0.4, 0.50)], columns=["model", "seed", "alpha", "AP"])


def test_deltas_are_per_seed_differences_to_the_same_seeds_baseline() -> None:
    d = deltas_to_baseline(PER_SEED, "alpha", "AP", 0.0, by=["model"])
    assert list(d.columns) == ["model", "alpha", "seed", "delta"]
    a = d[d["model"] == "a"]
    assert list(zip(a["alpha"], a["seed"])) == [(0.0, 0), (0.0, 1), (0.4, 0), (0.4, 1), (0.9, 0), (0.9, 1)]
    assert list(a["delta"]) == pytest.approx([0.0, 0.0, 0.02, 0.03, -0.05, -0.04])
    b = d[(d["model"] == "b") & (d["alpha"] == 0.9)]
    assert list(b["seed"]) == [0] and list(b["delta"]) == pytest.approx([-0.05])  # seed 1 has no α 0.9


def test_intervals_are_the_paired_t_interval_of_the_mean() -> None:
    d = deltas_to_baseline(PER_SEED, "alpha", "AP", 0.0, by=["model"])
    ci = delta_intervals(d, "alpha", by=["model"])
    assert list(ci.columns) == ["model", "alpha", "seeds", "mean", "lo", "hi"]
    row = ci[(ci["model"] == "a") & (ci["alpha"] == 0.4)].iloc[0]
    half = 12.706204736 * (0.01 / math.sqrt(2)) / math.sqrt(2)  # t(0.975, 1) · sd / √n
    assert row["seeds"] == 2 and row["mean"] == pytest.approx(0.025)
    assert row["lo"] == pytest.approx(0.025 - half) and row["hi"] == pytest.approx(0.025 + half)
    base = ci[(ci["model"] == "a") & (ci["alpha"] == 0.0)].iloc[0]
    assert (base["mean"], base["lo"], base["hi"]) == (0.0, 0.0, 0.0)
    one = ci[(ci["model"] == "b") & (ci["alpha"] == 0.9)].iloc[0]
    assert one["seeds"] == 1 and math.isnan(one["lo"]) and one["mean"] == pytest.approx(-0.05)


def test_categorical_settings_without_groups_keep_their_order() -> None:
    fusions = pd.DataFrame({"seed": [0, 0, 0, 1, 1, 1], "fusion": ["cls", "cls*obj", "product"] * 2,
                            "AP": [0.4, 0.39, 0.41, 0.5, 0.48, 0.52]})
    d = deltas_to_baseline(fusions, "fusion", "AP", "cls")
    assert list(d.columns) == ["fusion", "seed", "delta"]
    assert list(dict.fromkeys(d["fusion"])) == ["cls", "cls*obj", "product"]
    assert list(delta_intervals(d, "fusion")["mean"]) == pytest.approx([0.0, -0.015, 0.015])
    assert deltas_to_baseline(fusions, "fusion", "AP", "missing").empty


def test_paired_effects_plot_draws_seeds_mean_and_zero() -> None:
    from analysis.views import plots

    d = deltas_to_baseline(PER_SEED[PER_SEED["model"] == "a"], "alpha", "AP", 0.0)
    fig, axes = plt.subplots(1, 2)
    assert plots.paired_effects(d, delta_intervals(d, "alpha"), axes[0], "alpha", "AP(α) − AP(0)", "a") is fig
    assert len(axes[0].lines) >= 3 and axes[0].get_ylabel() == "AP(α) − AP(0)"  # 2 seeds + zero line
    assert list(axes[0].lines[0].get_xdata()) == [0.0, 0.4, 0.9]  # numeric α at its value
    f = deltas_to_baseline(pd.DataFrame({"seed": [0, 0], "fusion": ["cls", "mul"], "AP": [0.4, 0.39]}),
                           "fusion", "AP", "cls")
    plots.paired_effects(f, delta_intervals(f, "fusion"), axes[1], "fusion", "AP − AP(cls)")  # one seed
    assert [t.get_text() for t in axes[1].get_xticklabels()] == ["cls", "mul"]
    plt.close(fig)
