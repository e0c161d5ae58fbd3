"""The report pages' computations, each combining the groups below: the paper's tables and
figures from one dump (:mod:`.tables`), the detector families (:mod:`.families`), the
post-processing lab (:mod:`.postprocess`) and the explorer's data (:mod:`.explorer`).
"""
