"""Shared fixtures: a small embedded dataset and the path of the tiny RetinaNet config."""
from __future__ import annotations

from pathlib import Path

import pytest

from retconf.data.digits import DigitsConfig, generate

ROOT = Path(__file__).resolve().parents[1]
TINY_RETINANET = ROOT / "experiments" / "retinanet_r18-tiny_fpn_digits.py"
TINY_CONF = ROOT / "experiments" / "retinanet-conf_r18-tiny_fpn_digits.py"
SMALL = DigitsConfig(num_train=16, num_val=8, seed=3)


@pytest.fixture(scope="session")
def small_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 16+8-image digits dataset shared by the whole session (do not modify)."""
    return generate(SMALL, tmp_path_factory.mktemp("data") / "digits")


def fast_train_options(max_epochs: int = 1) -> dict:
    """--cfg-options that make the tiny config train in seconds on the small dataset."""
    return {
        "model.backbone.init_cfg": None,
        # The fixtures train the whole network from a random init (the recipe freezes a *pretrained*
        # backbone; frozen random features would leave the fixtures' models unable to fit their images).
        "model.backbone.frozen_stages": -1,
        "train_dataloader.batch_size": 4,
        "train_dataloader.num_workers": 0,
        "train_dataloader.persistent_workers": False,
        "val_dataloader.batch_size": 4,
        "val_dataloader.num_workers": 0,
        "val_dataloader.persistent_workers": False,
        "test_dataloader.num_workers": 0,
        "test_dataloader.persistent_workers": False,
        "train_cfg.max_epochs": max_epochs,
        "train_cfg.val_interval": max_epochs,
        "param_scheduler": [dict(type="ConstantLR", factor=1.0, by_epoch=False, begin=0, end=1)],
        "default_hooks.logger.interval": 1,
        "default_hooks.checkpoint.interval": 1,
        "default_hooks.checkpoint.max_keep_ckpts": 10,
        "randomness.seed": 0,
    }


# `quick_run` below runs for minutes (its subprocess may take up to QUICK_RUN_S), `conf_run` for
# 20 s on an idle machine and over 10 minutes on two cores shared with other jobs; pytest-timeout
# counts a fixture's time towards the first test that uses it, and which test that is depends on
# the selection. Every test that uses one gets its budget instead of the default (pyproject.toml).
QUICK_RUN_S = 900
QUICK_RUN_TEST_TIMEOUT = QUICK_RUN_S + 900  # + what the test itself may run
SESSION_FIXTURE_TIMEOUTS = {"quick_run": QUICK_RUN_TEST_TIMEOUT, "conf_run": 1800}


# Tests whose numbers come from training or inference, which a CPU's numerics decide (marked
# `numerics`; scripts/test_numeric_path.sh runs them under every oneDNN path the machine offers):
# every test using a trained-model fixture, and these modules, which train or run models themselves.
NUMERICS_FIXTURES = ("quick_run", "conf_run")
NUMERICS_MODULES = ("tests/engine/", "tests/test_coco_recipes.py", "tests/test_capture.py", "tests/test_dump.py",
                    "tests/test_pipeline.py", "tests/test_report.py", "tests/test_pretrain.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        budgets = [t for name, t in SESSION_FIXTURE_TIMEOUTS.items() if name in fixtures]
        if budgets and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(max(budgets)))
        path = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
        if any(f in fixtures for f in NUMERICS_FIXTURES) or path.startswith(NUMERICS_MODULES):
            item.add_marker(pytest.mark.numerics)


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """`retconf reproduce --preset quick --seeds 2 --full` run once per session (a few minutes):
    20 one-epoch trainings on 64 images, their dumps and the six reports."""
    import subprocess
    import sys

    base = tmp_path_factory.mktemp("quick")
    args = [sys.executable, "-m", "retconf.cli", "reproduce", "--preset", "quick",
            "--seeds", "2", "--full",
            "--out", str(base / "run"), "--data-root", str(base / "data"), "--reports", str(base / "reports")]
    first = subprocess.run(args, capture_output=True, text=True, timeout=QUICK_RUN_S, cwd=ROOT)
    assert first.returncode == 0, first.stderr[-3000:]
    return {"run": base / "run", "data": base / "data", "reports": base / "reports", "args": args,
            "first": first}


# `conf_run` below serves the dump tests (tests/test_dump.py) and the re-scoring tests
# (tests/analysis/test_rescore.py): one session-wide run, so selecting both costs it once.
CONF_RUN_EPOCHS = 10
OTHER_ALPHAS = (0.0, 0.2, 0.7)
DETECTION_COLUMNS = ["image_id", "label", "score", "x1", "y1", "x2", "y2"]


def conf_run_options(**extra) -> dict:
    opts = fast_train_options(max_epochs=CONF_RUN_EPOCHS)
    opts.update({
        "optim_wrapper.optimizer.lr": 3e-3,
        # evaluate on the 16 training images (any detections will do: the checks are exact)
        "test_dataloader.dataset.ann_file": "annotations/instances_train.json",
        "test_dataloader.dataset.data_prefix.img": "train/",
        "model.test_cfg.score_thr": 0.02,
    })
    opts.update(extra)
    return opts


@pytest.fixture(scope="session")
def conf_run(small_digits: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A briefly trained RetinaNet-Conf (a small overfit on 16 images), its mmdet-evaluated live
    AP, a dump with the deployed alpha and, for comparison, dumps whose *live* inference used
    other alphas, the other fusion order and the filtered product."""
    from analysis.inputs.io import load_dump
    from retconf.apis import evaluate, train
    from retconf.dump import dump_predictions

    work = tmp_path_factory.mktemp("conf")
    train(str(TINY_CONF), str(work), conf_run_options(), str(small_digits))
    ckpt = str(work / f"epoch_{CONF_RUN_EPOCHS}.pth")
    ann = str(small_digits / "annotations" / "instances_train.json")
    opts = {**conf_run_options(), "test_evaluator.ann_file": ann}
    live = evaluate(str(TINY_CONF), ckpt, str(work / "t"), opts, str(small_digits))
    dumps = {}
    for alpha in (0.4, *OTHER_ALPHAS):
        out = work / f"dump{alpha}"
        dump_predictions(str(TINY_CONF), ckpt, out, str(small_digits),
                         {**opts, "model.bbox_head.fusion.alpha": alpha}, shard_size=5, progress=False)
        dumps[alpha] = load_dump(out)
    # The filtered product zeroes every anchor whose obj is at most its thr (0.5, the deployed
    # one). Whether 0.5 passes some of a briefly trained model's anchors is the CPU's to decide:
    # where it passes none or all, thr moves into a gap at the median obj, and the deployed
    # dump is redone with it (a dump keeps the candidates of the *_thr rules at its deployed thr
    # only, so re-scoring is exact at that thr alone).
    obj = dumps[0.4].candidates["obj"].to_numpy()
    pow_thr = 0.5 if 0 < (obj > 0.5).mean() < 1 else threshold_in_gap(obj, min_gap=1e-4)
    source = dumps[0.4]
    if pow_thr != 0.5:
        dump_predictions(str(TINY_CONF), ckpt, work / "dump_thr", str(small_digits),
                         {**opts, "model.bbox_head.fusion.thr": pow_thr}, shard_size=5, progress=False)
        source = load_dump(work / "dump_thr")
    for name, extra in (("after_topk", {"model.bbox_head.fusion.order": "after_topk"}),
                        ("pow_thr", {"model.bbox_head.fusion.mode": "pow_thr", "model.bbox_head.fusion.thr": pow_thr})):
        dump_predictions(str(TINY_CONF), ckpt, work / f"dump_{name}", str(small_digits), {**opts, **extra},
                         shard_size=5, progress=False)
        dumps[name] = load_dump(work / f"dump_{name}")
    return {"dump": dumps[0.4], "live_dumps": dumps, "live": live, "ann": ann, "ckpt": ckpt,
            "opts": opts, "data": small_digits, "pow_thr": (pow_thr, source)}


def threshold_in_gap(scores, q: float = 0.5, min_gap: float = 1e-3) -> float:
    """A threshold that some but not all of ``scores`` (N,) pass, wherever the model's
    quality puts them: the midpoint of the first gap of at least ``min_gap`` between consecutive
    distinct scores at or above the ``q`` quantile, so that no score lies within float error of it
    (two computations of the same numbers, e.g. replay and live inference, then keep the same
    ones). Fails if no such gap exists."""
    import numpy as np

    s = np.unique(np.asarray(scores, dtype=np.float64))
    assert len(s) >= 2, "the dump needs at least two distinct detection scores"
    start = int(np.searchsorted(s, np.quantile(s, q)))
    gaps = np.flatnonzero(np.diff(s[start:]) >= min_gap) if start < len(s) - 1 else np.array([], int)
    if not len(gaps):  # no gap above the quantile: look below it
        gaps = np.flatnonzero(np.diff(s) >= min_gap)
        start = 0
    assert len(gaps), f"no gap of {min_gap} between the dump's {len(s)} distinct scores"
    i = start + int(gaps[0])
    return float((s[i] + s[i + 1]) / 2)


def same_detections(a, b) -> None:
    """The same detections (image, label, score and box), in any order."""
    cols = DETECTION_COLUMNS
    a = a[cols].sort_values(cols).reset_index(drop=True)
    b = b[cols].sort_values(cols).reset_index(drop=True)
    assert len(a) == len(b) > 0
    assert (a[["image_id", "label"]].to_numpy() == b[["image_id", "label"]].to_numpy()).all()
    assert abs(a[cols[2:]].to_numpy() - b[cols[2:]].to_numpy()).max() < 1e-4


def unmatched_beyond_ties(mine: list[tuple], theirs: list[tuple], tie: float = 1e-6, score_tol: float = 1e-6,
                          box_tol: float = 0.05) -> tuple[int, list[tuple]]:
    """Compare two lists of detections ``(image_id, category_id, score, x, y, w, h)`` as sets,
    up to the ties a CPU decides.

    Each detection of ``mine`` is paired with an unpaired one of ``theirs`` of the same image and
    category whose score is within ``score_tol`` and whose box is within ``box_tol`` pixels.
    Which of several near-equal candidates the per-image cap (``max_per_img``) or NMS keeps is
    decided by the last bits of the arithmetic (kernels differ between CPU families), so a
    detection left unpaired is forgiven when its score lies within ``tie`` of its image's
    lowest kept score on either side.

    Returns:
        (number paired, the unpaired detections of either list that no tie explains).
    """
    from collections import defaultdict

    groups: dict = defaultdict(list)
    for d in theirs:
        groups[(d[0], d[1])].append(d)
    paired, left_mine = 0, []
    for d in mine:
        cands = groups.get((d[0], d[1]), [])
        hit = next((i for i, t in enumerate(cands)
                    if abs(t[2] - d[2]) <= score_tol and max(abs(a - b) for a, b in zip(t[3:], d[3:])) <= box_tol), None)
        if hit is None:
            left_mine.append(d)
        else:
            cands.pop(hit)
            paired += 1
    cut: dict = {}
    for d in [*mine, *theirs]:
        cut[d[0]] = min(cut.get(d[0], float("inf")), d[2])
    left = [*left_mine, *(t for ts in groups.values() for t in ts)]
    return paired, [d for d in left if d[2] - cut[d[0]] > tie]
