"""The paper's ablation grids (Tables 2–4) as ``--cfg-options`` overrides, printed by
``retconf ablations``: defined in the analysis layer (:mod:`analysis.paper.ablation_tables`, where the
reports read the table rows), re-exported here for existing imports."""
from analysis.paper.ablation_tables import (  # noqa: F401
                                      ALPHA,
                                      GRIDS,
                                      INFERENCE_ONLY,
                                      LOSS,
                                      MODE,
                                      NEG_W,
                                      PITFALLS,
                                      TABLE2,
                                      TABLE3,
                                      TABLE4,
                                      TABLE_ROWS,
                                      TRAINED_VARIANTS,
                                      as_cli,
                                      fusion_options,
)

__all__ = ["ALPHA", "GRIDS", "INFERENCE_ONLY", "LOSS", "MODE", "NEG_W", "PITFALLS", "TABLE2", "TABLE3", "TABLE4",
           "TABLE_ROWS", "TRAINED_VARIANTS", "as_cli", "fusion_options"]
