from jepa_lit.masks.base import MaskPair, MaskSampler
from jepa_lit.masks.multiblock import BlockGenerator, MultiBlock3D

__all__ = ["BlockGenerator", "MaskPair", "MaskSampler", "MultiBlock3D"]
