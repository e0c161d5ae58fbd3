"""The paper's ablation grids (Tables 2–4) and this project's extra switches, as named
``--cfg-options`` overrides of a RetinaNet-Conf config.

``retconf ablations`` prints them; e.g. Table 2's L1 row on the tiny preset:

    retconf train experiments/retinanet-conf_r18-tiny_fpn_digits.py \\
        --cfg-options model.bbox_head.loss_quality.loss=l1 model.bbox_head.fusion.mode=cls

Rows marked *inference* change only the fusion: evaluate an existing checkpoint with
``retconf test CONFIG CHECKPOINT --cfg-options ...`` instead of retraining.
"""
from __future__ import annotations

from typing import Any

from ..scoring.fusion import PAPER_TABLE4, TABLE4_RULES, Fusion

LOSS = "model.bbox_head.loss_quality.loss"
NEG_W = "model.bbox_head.loss_quality.neg_weight"
MODE = "model.bbox_head.fusion.mode"
ALPHA = "model.bbox_head.fusion.alpha"

# Table 2: quality losses, NMS on the classification score only.
TABLE2: dict[str, dict[str, Any]] = {
    "l1": {LOSS: "l1", MODE: "cls"},
    "smooth_l1": {LOSS: "smooth_l1", MODE: "cls"},
    "l2": {LOSS: "l2", MODE: "cls"},
    "gfocal": {LOSS: "gfocal", MODE: "cls"},
    "ce": {LOSS: "bce", MODE: "cls"},
    "ce_w_1e-4": {LOSS: "bce_neg", NEG_W: 1e-4, MODE: "cls"},
    "ce_w_1e-3": {LOSS: "bce_neg", NEG_W: 1e-3, MODE: "cls"},
}
# Table 3: CE vs CE^w with the product (alpha 0.4).
TABLE3: dict[str, dict[str, Any]] = {
    "ce_w_1e-4": {LOSS: "bce_neg", NEG_W: 1e-4, MODE: "pow", ALPHA: 0.4},
    "ce": {LOSS: "bce", MODE: "pow", ALPHA: 0.4},
}


def fusion_options(rule: Fusion) -> dict:
    """A rule as the ``--cfg-options`` of a quality head (the threshold and α where they matter)."""
    return {MODE: rule.mode, **({"model.bbox_head.fusion.thr": rule.thr} if rule.mode.endswith("_thr") else {}),
            **({ALPHA: rule.alpha} if rule.mode.startswith("pow") else {})}


# Table 4 (inference): fusion modes on one RetinaNet-Conf checkpoint (analysis.scoring.fusion.TABLE4_RULES).
TABLE4 = {label: fusion_options(TABLE4_RULES[label]) for label in PAPER_TABLE4}
# Beyond the paper: the original code's pitfalls, each behind a switch.
PITFALLS: dict[str, dict[str, Any]] = {
    "target_grad": {"model.bbox_head.target_grad": True},
    "fuse_after_topk": {"model.bbox_head.fusion.order": "after_topk"},
    "legacy_level_bug": {"model.bbox_head.fusion.legacy_level_bug": True},
}
GRIDS: dict[str, dict[str, dict[str, Any]]] = {
    "table2": TABLE2, "table3": TABLE3, "table4": TABLE4, "pitfalls": PITFALLS,
}
INFERENCE_ONLY = {"table4", "fuse_after_topk", "legacy_level_bug"}


def as_cli(options: dict) -> str:
    """``--cfg-options`` text for one row."""
    return " ".join(f"{k}={v}" for k, v in options.items())


# ``retconf reproduce --full``: the distinct *trainings* behind Tables 2 and 3 and the
# target-gradient pitfall, each a RetinaNet-Conf run differing only in these options. The
# default RetinaNet-Conf (CE loss, detached target) is the "ce" row; the fusion used to score
# each row (cls only for Table 2, the product for Table 3) is applied when re-scoring the dumps.
TRAINED_VARIANTS: dict[str, dict] = {
    "conf_l1": {LOSS: "l1"},
    "conf_smooth_l1": {LOSS: "smooth_l1"},
    "conf_l2": {LOSS: "l2"},
    "conf_gfocal": {LOSS: "gfocal"},
    "conf_ce_w_1e-4": {LOSS: "bce_neg", NEG_W: 1e-4},
    "conf_ce_w_1e-3": {LOSS: "bce_neg", NEG_W: 1e-3},
    "conf_target_grad": {"model.bbox_head.target_grad": True},
}
# Table rows (paper names) -> the trained model that provides them.
TABLE_ROWS: dict[str, str] = {
    "l1": "conf_l1", "smooth_l1": "conf_smooth_l1", "l2": "conf_l2", "gfocal": "conf_gfocal",
    "ce_w_1e-4": "conf_ce_w_1e-4", "ce_w_1e-3": "conf_ce_w_1e-3", "ce": "retinanet_conf",
}
