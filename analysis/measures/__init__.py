"""The numbers: COCO metrics (:mod:`.coco`, :mod:`.coco_fast`), misalignment (:mod:`.metrics`),
calibration, LRP and TIDE (:mod:`.calibration`, :mod:`.lrp`, :mod:`.tide`, :mod:`.quality`), COCO
results files (:mod:`.results`) and statistics over seeds and images (:mod:`.seeds`,
:mod:`.effects`, :mod:`.bootstrap`). Stands on the groups below it.
"""
