"""Keeps the GPU check's plumbing working without a GPU (its CPU dry run is
`bash scripts/gpu_check.sh --dry-run`; output kept in reports/benchmarks/gpu_check_dryrun.*)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

from tests.conftest import ROOT


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_markdown_of_a_record() -> None:
    mod = _module()
    env = {"device": "NVIDIA H100", "torch": "2.11.0", "cuda": "13.0", "numpy": "2.5.2", "mmcv": "2.1.0",
           "mmcv_ops": "compiled", "mmdet": "3.3.0", "mmengine": "0.10.7", "python": "3.12.3", "cpus": 16,
           "load_average_1min": 0.1}
    rows = [{"model": "mmdet retinanet", "batch": 16, "image": "1000x600", "s_per_iter": 0.5, "step_time_ratio": 1.0,
             "peak_mem_gib": 20.1, "infer_img_per_s": 30.0},
            {"model": "retinanet_conf", "error": "RuntimeError: boom"}]
    tiny = {"status": "done", "seeds": [0], "rows": [{"seed": 0, "model": "retinanet", "AP": 0.39, "AP50": 0.56,
                                                     "AP75": 0.45, "s_per_iter": 0.03}]}
    text = mod.markdown({"dry_run": False, "environment": env, "finished": "now", "r50": {"rows": rows, "status": "done"},
                         "tiny": tiny})
    assert "| mmdet retinanet | 0.5000 | 1.0 | 20.1 | 30.0 |" in text
    assert "| retinanet_conf | error: RuntimeError: boom |" in text
    assert "| 0 | retinanet | 0.390 | 0.560 | 0.450 | 0.03 |" in text


def test_synthetic_batch_has_boxes_inside_the_image() -> None:
    batch = _module()._synthetic_batch(3, 100, 60, 80, seed=0)
    assert [tuple(x.shape) for x in batch["inputs"]] == [(3, 60, 100)] * 3
    for s in batch["data_samples"]:
        b = s.gt_instances.bboxes
        assert (b[:, 0] >= 0).all() and (b[:, 2] <= 100).all() and (b[:, 3] <= 60).all()
        assert (s.gt_instances.labels < 80).all()


def test_script_without_the_wheel_bundle_says_what_to_run(tmp_path: Path) -> None:
    env = {**os.environ, "GPU_CHECK_WHEELS": str(tmp_path / "none"), "GPU_CHECK_WORK": str(tmp_path / "w"),
           "GPU_CHECK_REPORT": str(tmp_path / "r")}
    res = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--dry-run"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert res.returncode == 2 and "run scripts/gpu_wheels.sh first" in res.stderr
