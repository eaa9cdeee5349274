"""The auxiliary objectives (one file each) and the step record they read."""

import importlib
import inspect
import pkgutil

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
    "objective_classes",
]


def objective_classes() -> list[type[Objective]]:
    """Every Objective subclass defined in a module of this package, exported here or not, by class name:
    what the tests hold to a known-value reference (tests/test_objectives.py), so a new file is never
    silently untested."""
    found = {}
    for info in pkgutil.iter_modules(__path__, __name__ + "."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Objective) and cls is not Objective and cls.__module__ == info.name:
                found[cls.__name__] = cls
    return [found[name] for name in sorted(found)]
