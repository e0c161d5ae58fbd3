"""Dense heads with a quality branch."""
from .iou_aware_retina_head import IoUAwareRetinaHead
from .quality_retina_head import QualityRetinaHead
from .retina_conf_head import RetinaConfHead

__all__ = ["IoUAwareRetinaHead", "QualityRetinaHead", "RetinaConfHead"]
