from jepa_lit.models.predictor import Predictor
from jepa_lit.models.vit import VisionTransformer, vit_sizes

__all__ = ["Predictor", "VisionTransformer", "vit_sizes"]
