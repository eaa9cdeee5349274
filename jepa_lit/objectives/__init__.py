from jepa_lit.objectives.base import GeneratorOutputs, Objective, StepOutputs
from jepa_lit.objectives.delta import Delta

__all__ = ["Delta", "GeneratorOutputs", "Objective", "StepOutputs"]
