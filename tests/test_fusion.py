from __future__ import annotations

import pytest
import torch

from retconf.fusion import FUSION_MODES, fuse_scores, legacy_level_scores

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
    assert set(FUSION_MODES) == {"cls", "cls_thr", "mul", "mul_thr", "pow", "pow_thr"}
