from jepa_lit.objectives.action import ActionConditioned
from jepa_lit.objectives.base import Objective
from jepa_lit.objectives.delta import Delta
from jepa_lit.objectives.factorized import FactorizedWorldModel
from jepa_lit.objectives.hamiltonian import Hamiltonian
from jepa_lit.objectives.hard_weighting import HardWeighting
from jepa_lit.objectives.kinematic import Kinematic
from jepa_lit.objectives.latent_dynamics import LatentDynamics
from jepa_lit.objectives.ltc import LatentTemporalContrastive
from jepa_lit.objectives.sigreg import SIGReg
from jepa_lit.objectives.spectral import Spectral
from jepa_lit.objectives.velgate import VelocityGate
from jepa_lit.step import GeneratorOutputs, StepOutputs

__all__ = [
    "ActionConditioned",
    "Delta",
    "FactorizedWorldModel",
    "GeneratorOutputs",
    "Hamiltonian",
    "HardWeighting",
    "Kinematic",
    "LatentDynamics",
    "LatentTemporalContrastive",
    "Objective",
    "SIGReg",
    "Spectral",
    "StepOutputs",
    "VelocityGate",
]
