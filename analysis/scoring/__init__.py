"""Ranking scores and their replay: score fusion and the ``Fusion`` rule (:mod:`.fusion`),
re-scoring cached candidates through the inference's selection and NMS (:mod:`.rescore`) and its
fast exact form (:mod:`.fast`). Stands on :mod:`analysis.inputs` and :mod:`analysis.geometry`.
"""
