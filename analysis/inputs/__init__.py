"""Reading and checking what the analysis is given: dumps (:mod:`.io`, :mod:`.schema`), run
directories (:mod:`.runs`, :mod:`.paths`), COCO annotation files (:mod:`.coco_check`) and the
errors they raise (:mod:`.errors`). The bottom group: it imports no other group.
"""
