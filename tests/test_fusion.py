from __future__ import annotations

import pytest
import torch

from retconf.fusion import (
    ALPHA_GRID,
    FUSION_MODES,
    Fusion,
    argmax_pairs,
    fuse_scores,
    fusion_grid,
    legacy_level_scores,
    topk_anchors,
    topk_pairs,
)

CLS = torch.tensor([[0.25, 0.04], [0.81, 0.5]])
OBJ = torch.tensor([0.64, 0.3])


def test_modes_by_hand() -> None:
    assert torch.allclose(fuse_scores(CLS, OBJ, "cls"), CLS)
    assert torch.allclose(fuse_scores(CLS, OBJ, "cls_thr", thr=0.5), torch.tensor([[0.25, 0.04], [0.0, 0.0]]))
    assert torch.allclose(fuse_scores(CLS, OBJ, "mul"), torch.tensor([[0.16, 0.0256], [0.243, 0.15]]))
    assert torch.allclose(fuse_scores(CLS, OBJ, "mul_thr", thr=0.5), torch.tensor([[0.16, 0.0256], [0.0, 0.0]]))
    # alpha 0.5: sqrt(obj * cls)
    assert torch.allclose(fuse_scores(CLS, OBJ, "pow", alpha=0.5),
                          torch.tensor([[0.4, 0.16], [(0.81 * 0.3) ** 0.5, (0.5 * 0.3) ** 0.5]]))
    assert torch.allclose(fuse_scores(CLS, OBJ, "pow_thr", alpha=0.5, thr=0.5)[1], torch.zeros(2))


def test_pow_endpoints_and_one_dimensional_input() -> None:
    assert torch.allclose(fuse_scores(CLS, OBJ, "pow", alpha=0.0), CLS)
    assert torch.allclose(fuse_scores(CLS, OBJ, "pow", alpha=1.0), OBJ[:, None].expand(2, 2))
    one_d = fuse_scores(CLS[:, 0], OBJ, "pow", alpha=0.4)
    assert torch.allclose(one_d, OBJ ** 0.4 * CLS[:, 0] ** 0.6)


@pytest.mark.parametrize("kwargs, match", [
    ({"mode": "max"}, "fusion mode 'max'"),
    ({"alpha": 1.5}, "alpha=1.5"),
    ({"alpha": -0.1}, "alpha=-0.1"),
    ({"thr": 1.0}, "thr=1.0"),
])
def test_bad_parameters(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        fuse_scores(CLS, OBJ, **kwargs)


def test_legacy_levels() -> None:
    big = legacy_level_scores(CLS, OBJ, 0.4, num_level_anchors=2000, nms_pre=1000)
    small = legacy_level_scores(CLS, OBJ, 0.4, num_level_anchors=500, nms_pre=1000)
    assert torch.allclose(big, fuse_scores(CLS, OBJ, "pow", 0.4))
    assert torch.allclose(small, CLS ** 0.6)


def test_all_modes_listed() -> None:
    assert set(FUSION_MODES) == {"cls", "cls_thr", "mul", "mul_thr", "pow", "pow_thr", "geo"}


def test_geo_is_toods_score_to_the_bit() -> None:
    """``geo`` computes sqrt(cls · obj) as mmdet's TOOD head does (sigmoid_geometric_mean), bit for
    bit, and equals ``pow`` at α 0.5 up to rounding."""
    from mmdet.models.utils.misc import sigmoid_geometric_mean

    g = torch.Generator().manual_seed(0)
    logits, prob = torch.randn(50, 7, generator=g), torch.randn(50, 1, generator=g)
    tood = sigmoid_geometric_mean(logits, prob)
    ours = fuse_scores(logits.sigmoid(), prob[:, 0].sigmoid(), "geo")
    assert torch.equal(ours, tood)
    assert torch.allclose(ours, fuse_scores(logits.sigmoid(), prob[:, 0].sigmoid(), "pow", alpha=0.5))


@pytest.mark.parametrize("nms_pre", [-1, 5, 40, 1000])
def test_topk_pairs_is_mmdets_filter_scores_and_topk(nms_pre: int) -> None:
    from mmdet.models.utils import filter_scores_and_topk

    g = torch.Generator().manual_seed(nms_pre + 2)
    scores = torch.rand(60, 4, generator=g)
    _, labels, anchors, _ = filter_scores_and_topk(scores, 0.3, nms_pre)
    ours_anchors, ours_labels = topk_pairs(scores, 0.3, nms_pre)
    assert torch.equal(ours_anchors, anchors) and torch.equal(ours_labels, labels)


def test_fusion_select_orders() -> None:
    """before_topk ranks by the fused score, after_topk by cls and fuses the survivors."""
    cls = torch.tensor([[0.9], [0.5], [0.4]])
    obj = torch.tensor([0.1, 0.9, 0.9])
    scores, labels, anchors = Fusion("mul").select(cls, obj, 0.0, 1)
    assert anchors.tolist() == [1] and scores.tolist() == pytest.approx([0.45])
    scores, labels, anchors = Fusion("mul", order="after_topk").select(cls, obj, 0.0, 1)
    assert anchors.tolist() == [0] and scores.tolist() == pytest.approx([0.09])


def test_fusion_grid_holds_the_deployed_rule_and_every_alpha() -> None:
    assert fusion_grid(None) == [Fusion("cls")]
    deployed = Fusion("geo", 0.5)
    grid = fusion_grid(deployed)
    assert grid[0] == deployed and len(grid) == len(set(grid))
    assert {f.alpha for f in grid if f.mode == "pow"} == set(ALPHA_GRID)
    assert Fusion.of({"mode": "pow", "alpha": 0.4, "legacy_level_bug": False}) == Fusion("pow", 0.4)
    assert Fusion.of(None) == Fusion("cls")


def test_fusion_of_refuses_the_legacy_level_rule_instead_of_dropping_it() -> None:
    """The original code's per-level rule (legacy_level_scores) is no Fusion: reading it as the
    plain product would silently re-rank a legacy head's candidates."""
    with pytest.raises(ValueError, match="legacy_level_bug=True"):
        Fusion.of({"mode": "pow", "alpha": 0.4, "legacy_level_bug": True})


@pytest.mark.parametrize("nms_pre", [-1, 0, 3, 100])
def test_numpy_selection_is_the_torch_selection(nms_pre: int) -> None:
    """analysis.scoring.rescore.select_rows (all images at once, numpy) keeps per level the pairs
    Fusion.select keeps (one level, torch), including mmdet's slice semantics of nms_pre."""
    import numpy as np

    from analysis.scoring.rescore import select_rows

    g = torch.Generator().manual_seed(3)
    cls = torch.rand(20, 3, generator=g)
    anchors, labels = topk_pairs(cls, 0.2, nms_pre)
    flat = cls.reshape(-1).numpy()
    rows = select_rows(np.zeros(60, int), np.zeros(60, int), flat, 0.2, nms_pre)
    assert sorted(rows.tolist()) == sorted((anchors * 3 + labels).tolist())


def _paa_reference(scores: torch.Tensor, score_thr: float, nms_pre: int) -> tuple[torch.Tensor, torch.Tensor]:
    """PAA's selection written out as PAAHead._predict_by_feat_single and multiclass_nms do it
    (top-k anchors by their best score, then the pairs above the threshold)."""
    anchors = torch.arange(scores.size(0))
    if 0 < nms_pre < scores.shape[0]:
        _, topk_inds = scores.max(dim=1)[0].topk(nms_pre)
        anchors, scores = anchors[topk_inds], scores[topk_inds]
    padded = torch.cat([scores, scores.new_zeros(scores.size(0), 1)], 1)[:, :-1]
    valid = padded > score_thr
    rows = valid.nonzero()[:, 0]
    labels = torch.arange(scores.size(1))[None].expand_as(scores)[valid]
    return anchors[rows], labels


@pytest.mark.parametrize("nms_pre", [-1, 0, 7, 60, 1000])
def test_topk_anchors_is_paas_selection(nms_pre: int) -> None:
    g = torch.Generator().manual_seed(nms_pre + 5)
    scores = torch.rand(60, 4, generator=g)
    anchors, labels = topk_anchors(scores, 0.6, nms_pre)
    ref_anchors, ref_labels = _paa_reference(scores, 0.6, nms_pre)
    assert torch.equal(anchors, ref_anchors) and torch.equal(labels, ref_labels)
    if 0 < nms_pre < 60:
        assert len(anchors.unique()) <= nms_pre


def test_argmax_pairs_is_yoloxs_selection() -> None:
    """One label per anchor (the most probable class), kept where obj · max cls ≥ score_thr, as
    YOLOXHead.predict_by_feat; a pair at exactly the threshold is kept."""
    g = torch.Generator().manual_seed(11)
    cls, obj = torch.rand(50, 3, generator=g), torch.rand(50, generator=g)
    max_scores, ref_labels = torch.max(cls, 1)
    valid = obj * max_scores >= 0.2
    scores, labels, anchors = Fusion("mul").select(cls, obj, 0.2, 10, selection="argmax")
    assert torch.equal(anchors, valid.nonzero()[:, 0]) and torch.equal(labels, ref_labels[valid])
    assert torch.equal(scores, (max_scores * obj)[valid])
    at = torch.tensor([[0.5, 0.25]])
    assert argmax_pairs(at, at, 0.5)[0].tolist() == [0]


def test_unknown_selection_is_refused() -> None:
    with pytest.raises(ValueError, match="selection 'best'"):
        Fusion("cls").select(CLS, OBJ, 0.0, 1, selection="best")


@pytest.mark.parametrize("nms_pre", [-1, 0, 3, 100])
def test_numpy_anchor_selection_is_the_torch_selection(nms_pre: int) -> None:
    """analysis.scoring.rescore.select_anchor_rows (all images at once) keeps, per level, the pairs and
    the order of topk_anchors, also when the rows hold only the pairs above the threshold (a
    dump's candidates) and come in another order."""
    import numpy as np

    from analysis.scoring.rescore import select_anchor_rows

    g = torch.Generator().manual_seed(4)
    scores = torch.rand(2, 30, 3, generator=g)
    expected, image, level, anchor, label, rank = [], [], [], [], [], []
    for lvl in range(2):
        anchors, labels = topk_anchors(scores[lvl], 0.5, nms_pre)
        expected += [(lvl, a, c) for a, c in zip(anchors.tolist(), labels.tolist())]
        a, c = torch.nonzero(scores[lvl] > 0.5).unbind(1)  # what a dump keeps
        image += [0] * len(a)
        level += [lvl] * len(a)
        anchor += a.tolist()
        label += c.tolist()
        rank += scores[lvl][a, c].tolist()
    perm = np.random.default_rng(0).permutation(len(rank))
    cols = [np.asarray(v)[perm] for v in (image, level, anchor, label)]
    rows = select_anchor_rows(*cols, np.asarray(rank, np.float32)[perm], 0.5, nms_pre)
    got = [(int(cols[1][r]), int(cols[2][r]), int(cols[3][r])) for r in rows]
    if nms_pre >= 30:  # a level with at most nms_pre anchors: PAA keeps anchor order, the rows best-first
        got, expected = sorted(got), sorted(expected)
    assert got == expected


def test_numpy_argmax_selection_keeps_each_anchors_best_class() -> None:
    import numpy as np

    from analysis.scoring.rescore import select_argmax_rows

    cls = np.array([0.2, 0.7, 0.4, 0.9, 0.1], np.float32)
    anchor = np.array([0, 0, 1, 2, 2])
    rank = cls * np.array([1.0, 0.5, 1.0, 0.1, 1.0], np.float32)
    rows = select_argmax_rows(np.zeros(5, int), np.zeros(5, int), anchor, cls, rank, 0.35)
    assert rows.tolist() == [1, 2]  # anchor 2's best class (0.9) ranks 0.09: dropped, not replaced
