"""What the objectives with a head share: the channels a head reads, its MLP, the check that it was
built for the step's encoder, and the zero term that keeps an idle head in the graph.

FWM splits the 4D channels into Z_app = the first D_app = max(1, floor(app_ratio * 4D)) channels and
Z_dyn = the rest; a head ``reads`` all channels or only Z_dyn (FWM-LD, FAC).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from jepa_lit.objectives.base import Objective
from jepa_lit.step import StepOutputs

Reads = Literal["all", "dynamics"]


def app_channels(width: int, app_ratio: float) -> int:
    """D_app = max(1, floor(app_ratio * width)): where Z_dyn starts."""
    return max(1, int(width * app_ratio))


def check_reads(reads: str) -> None:
    if reads not in ("all", "dynamics"):
        raise ValueError(f"reads={reads!r}; expected 'all' or 'dynamics'")


def head_input_dim(width: int, reads: Reads, app_ratio: float) -> int:
    """Input width of a head reading all channels or only Z_dyn."""
    check_reads(reads)
    return width if reads == "all" else width - app_channels(width, app_ratio)


def head_input(z: Tensor, reads: Reads, app_ratio: float) -> Tensor:
    """The channels a head reads: all of ``z``, or its Z_dyn part."""
    return z if reads == "all" else z[..., app_channels(z.shape[-1], app_ratio) :]


def check_width(objective: Objective, outputs: StepOutputs) -> None:
    """Heads are created by ``build`` (eagerly; lazy modules break DDP): fail clearly on an objective
    that was never built, or one built for another encoder than the step's."""
    name = f"objective {objective.name!r} ({type(objective).__name__})"
    if not objective.built:
        raise RuntimeError(
            f"{name} has no head yet: call build(embed_dim, num_levels) with the encoder's widths first "
            "(JEPAModule does it for the objectives it is given)"
        )
    if (outputs.embed_dim, outputs.num_levels) != (objective.embed_dim, objective.num_levels):
        raise ValueError(
            f"{name} was built for embed_dim={objective.embed_dim}, num_levels={objective.num_levels} but the "
            f"encoder gives embed_dim={outputs.embed_dim}, num_levels={outputs.num_levels}; an objective is "
            "sized by the JEPAModule it is given to: give each module its own"
        )


def zero_on(module: nn.Module) -> Tensor:
    """A zero attached to every parameter of ``module``: a head with nothing to fit this step (no valid
    pair, or the released no-grad LD) still takes part in the graph, as DDP requires."""
    return sum(p.sum() for p in module.parameters()) * 0.0


def mlp_head(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear -> GELU -> Linear (the study's LD and AC heads)."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, out_dim))


def grid_inputs(outputs: StepOutputs, g: int, reads: Reads, app_ratio: float) -> Tensor:
    """The head's input Z_t of generator ``g`` at every t < T'-1: [B, T'-1, H', W', C_in], zeros at masked
    positions. A head runs on this whole grid and its error is averaged over the valid pairs
    (``StepOutputs.pair_mean``): some more head FLOPs than on the pairs alone (docs/performance.md), but
    no host sync, which selecting the pairs (a boolean-mask gather, or a branch on their count) needs."""
    return head_input(outputs.student_grid(g)[:, :-1], reads, app_ratio)
