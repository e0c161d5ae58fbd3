"""Score fusion and the :class:`Fusion` ranking rule: defined in the analysis layer
(:mod:`analysis.scoring.fusion`, which needs torch but no mmdet), re-exported here for the heads, the
dump and existing imports."""
from analysis.scoring.fusion import (  # noqa: F401
                             ALPHA_GRID,
                             BASE_POST_PROCESS,
                             FUSION_MODES,
                             FUSION_ORDERS,
                             PAPER_TABLE4,
                             SELECTIONS,
                             TABLE4_RULES,
                             Fusion,
                             argmax_pairs,
                             check_fusion,
                             fuse_scores,
                             fusion_grid,
                             legacy_level_scores,
                             topk_anchors,
                             topk_pairs,
)

__all__ = ["ALPHA_GRID", "BASE_POST_PROCESS", "FUSION_MODES", "FUSION_ORDERS", "PAPER_TABLE4", "SELECTIONS",
           "TABLE4_RULES", "Fusion", "argmax_pairs", "check_fusion", "fuse_scores", "fusion_grid",
           "legacy_level_scores", "topk_anchors", "topk_pairs"]
