"""Box operations: IoU (:mod:`.boxes`), mmcv's NMS (:mod:`.nms`) and COCO-style matching of
detections to ground truth (:mod:`.matching`). Stands on :mod:`analysis.inputs` alone.
"""
