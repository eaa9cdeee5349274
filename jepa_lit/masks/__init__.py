from jepa_lit.masks.base import MaskPair, MaskSampler
from jepa_lit.masks.future import FuturePredictive, MotionFuture
from jepa_lit.masks.motion_guided import MotionGuided
from jepa_lit.masks.multiblock import BlockGenerator, MultiBlock3D

__all__ = ["BlockGenerator", "FuturePredictive", "MaskPair", "MaskSampler", "MotionFuture", "MotionGuided", "MultiBlock3D"]
