"""Keeps benchmarks/head_overhead.py working (a tiny smoke run, not a measurement): its clock is
replaced by one whose steps last known, different times, so the ratios it reports are checked."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.benchmarks.clock import SquaresClock
from tests.conftest import ROOT


def test_head_overhead_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("head_overhead", ROOT / "benchmarks" / "head_overhead.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    clock = SquaresClock()
    monkeypatch.setattr(mod, "time", clock)
    out = tmp_path / "ho"
    assert mod.main(["--steps", "1", "--warmup", "0", "--batch", "2", "--size", "64", "64",
                     "--out", str(out)]) == 0
    assert clock.readings == 3 * (2 + 4)  # per model: a train step (start, end), an inference (start, 2 splits, end)
    result = json.loads(out.with_suffix(".json").read_text())
    models = result["models"]
    assert list(models) == ["retinanet", "iou_aware", "retinanet_conf"]
    base = models["retinanet"]
    for phase in ("train", "infer"):
        times = [r[f"{phase}_s"] for r in models.values()]
        assert len(set(times)) == 3 and min(times) > 0  # the fake clock: three different times
        for name, r in models.items():  # each model's time relative to RetinaNet's
            assert r[f"{phase}_ratio"] == pytest.approx(r[f"{phase}_s"] / base[f"{phase}_s"], abs=1e-4), name
    assert {r["train_ratio"] for r in models.values()} != {1.0}
    for r in models.values():  # the inference parts add up to the whole inference
        parts = r["infer_feat_s"] + r["infer_head_s"] + r["infer_post_s"]
        assert min(r["infer_feat_s"], r["infer_head_s"], r["infer_post_s"]) > 0
        assert parts == pytest.approx(r["infer_s"], abs=2e-4)
    for name in ("iou_aware", "retinanet_conf"):  # the quality branch: a few more parameters
        assert 0 < models[name]["params"] - base["params"] < 0.05 * base["params"], name
    md = out.with_suffix(".md").read_text()
    for name, r in models.items():
        assert (f"| {name} | {r['train_s']:.4f} | {r['train_ratio']:.3f} | {r['infer_s']:.4f} | "
                f"{r['infer_ratio']:.3f} | {r['params']:,} |") in md
