"""Fixtures of the analysis tests: a briefly trained RetinaNet-Conf and its dumps, shared by the
re-scoring, COCO and table tests (trained once per session)."""
from __future__ import annotations

from pathlib import Path

import pytest

from analysis.io import load_dump
from retconf.apis import evaluate, train
from retconf.dump import dump_predictions
from tests.conftest import ROOT, fast_train_options

CONF = ROOT / "experiments" / "retinanet-conf_r18-tiny_fpn_digits.py"
EPOCHS = 10
OTHER_ALPHAS = (0.0, 0.2, 0.7)
COLS = ["image_id", "label", "score", "x1", "y1", "x2", "y2"]
# `conf_run` trains and dumps for minutes on a loaded CPU; its time counts towards the first test
# that uses it (pytest-timeout), so each such test gets this budget unless it says otherwise.
CONF_RUN_TEST_TIMEOUT = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "conf_run" in getattr(item, "fixturenames", ()) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(CONF_RUN_TEST_TIMEOUT))


def _opts(**extra) -> dict:
    opts = fast_train_options(max_epochs=EPOCHS)
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
    """A briefly trained RetinaNet-Conf, its mmdet-evaluated live AP, a dump with the deployed
    alpha and, for comparison, dumps whose *live* inference used other alphas."""
    work = tmp_path_factory.mktemp("conf")
    train(str(CONF), str(work), _opts(), str(small_digits))
    ckpt = str(work / f"epoch_{EPOCHS}.pth")
    ann = str(small_digits / "annotations" / "instances_train.json")
    opts = {**_opts(), "test_evaluator.ann_file": ann}
    live = evaluate(str(CONF), ckpt, str(work / "t"), opts, str(small_digits))
    dumps = {}
    for alpha in (0.4, *OTHER_ALPHAS):
        out = work / f"dump{alpha}"
        dump_predictions(str(CONF), ckpt, out, str(small_digits),
                         {**opts, "model.bbox_head.fusion.alpha": alpha}, shard_size=5, progress=False)
        dumps[alpha] = load_dump(out)
    for name, extra in (("after_topk", {"model.bbox_head.fusion.order": "after_topk"}),
                        ("pow_thr", {"model.bbox_head.fusion.mode": "pow_thr"})):
        dump_predictions(str(CONF), ckpt, work / f"dump_{name}", str(small_digits), {**opts, **extra},
                         shard_size=5, progress=False)
        dumps[name] = load_dump(work / f"dump_{name}")
    return {"dump": dumps[0.4], "live_dumps": dumps, "live": live, "ann": ann, "ckpt": ckpt,
            "opts": opts, "data": small_digits}


def same_detections(a, b) -> None:
    """The same detections (ids and labels equal, scores and boxes within 1e-4), at least one."""
    a = a[COLS].sort_values(COLS).reset_index(drop=True)
    b = b[COLS].sort_values(COLS).reset_index(drop=True)
    assert len(a) == len(b) > 0
    assert (a[["image_id", "label"]].to_numpy() == b[["image_id", "label"]].to_numpy()).all()
    assert abs(a[COLS[2:]].to_numpy() - b[COLS[2:]].to_numpy()).max() < 1e-4
