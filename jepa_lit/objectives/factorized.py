"""Factorized world model (FWM): an appearance half that stays still and is decorrelated from the rest.

The 4D channels split into Z_app = Z[..., :D_app] (levels 1-2 at app_ratio 0.5) and Z_dyn = Z[..., D_app:]
(levels 3-4), D_app = max(1, floor(app_ratio * 4D)). Per mask generator:

    L_static = static_weight * mean_P |Z_app,t+1 - Z_app,t|
    L_orth   = orth_weight * mean_ab C_ab^2,   C = Z~_app^T Z~_dyn / (n - 1)

where C is the cross-covariance over the n visible tokens of the batch (columns mean-centred), in
fp32; under DDP the tokens of every rank are gathered, so n is the whole batch's. Both are averaged over the generators that have the tokens they need (spec section 4, study:
0.05, 0.01, app ratio 0.5). FWM-LD and FAC add a head reading Z_dyn only (``reads: dynamics`` of
LatentDynamics / ActionConditioned).
"""

from __future__ import annotations

from typing import Literal, Optional

import torch
from einops import rearrange
from torch import Tensor, nn

from jepa_lit.distributed import gather
from jepa_lit.objectives.base import Objective, StepOutputs, masked_mean, mean_over_generators, temporal_diff

Reads = Literal["all", "dynamics"]


def app_channels(width: int, app_ratio: float) -> int:
    """D_app = max(1, floor(app_ratio * width)): where Z_dyn starts."""
    return max(1, int(width * app_ratio))


def head_input_dim(width: int, reads: Reads, app_ratio: float) -> int:
    """Input width of a head reading all channels or only Z_dyn."""
    if reads == "all":
        return width
    if reads == "dynamics":
        return width - app_channels(width, app_ratio)
    raise ValueError(f"reads={reads!r}; expected 'all' or 'dynamics'")


def head_input(z: Tensor, reads: Reads, app_ratio: float) -> Tensor:
    """The channels a head reads: all of ``z``, or its Z_dyn part."""
    return z if reads == "all" else z[..., app_channels(z.shape[-1], app_ratio) :]


def check_width(objective: Objective, outputs: StepOutputs, embed_dim: int, num_levels: int) -> None:
    """Heads are sized at construction (no lazy modules: they break DDP); fail clearly on a mismatch."""
    if (outputs.embed_dim, outputs.num_levels) != (embed_dim, num_levels):
        raise ValueError(
            f"objective {objective.name!r} ({type(objective).__name__}) was built for embed_dim={embed_dim}, "
            f"num_levels={num_levels} but the encoder gives embed_dim={outputs.embed_dim}, "
            f"num_levels={outputs.num_levels}; set its init_args embed_dim: {outputs.embed_dim} and "
            f"num_levels: {outputs.num_levels}"
        )


def zero_on(module: nn.Module) -> Tensor:
    """A zero attached to every parameter of ``module``: a head with nothing to fit this step (no valid
    pair, or the released no-grad LD) still takes part in the graph, as DDP requires."""
    return sum(p.sum() for p in module.parameters()) * 0.0


def cross_covariance_penalty(app: Tensor, dyn: Tensor) -> Optional[Tensor]:
    """mean_ab C_ab^2 of the cross-covariance of ``app`` [n, a] and ``dyn`` [n, d], in fp32; None if n < 2."""
    n = app.shape[0]
    if n < 2:
        return None
    with torch.autocast(device_type=app.device.type, enabled=False):
        app, dyn = app.float(), dyn.float()
        app = app - app.mean(0, keepdim=True)
        dyn = dyn - dyn.mean(0, keepdim=True)
        return (app.T @ dyn / (n - 1)).square().mean()


class FactorizedWorldModel(Objective):
    name = "fwm"

    def __init__(self, static_weight: float = 0.05, orth_weight: float = 0.01, app_ratio: float = 0.5):
        super().__init__()
        if not 0.0 < app_ratio < 1.0:
            raise ValueError(f"app_ratio={app_ratio}; expected a fraction in (0, 1)")
        self.static_weight, self.orth_weight, self.app_ratio = static_weight, orth_weight, app_ratio

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        split = app_channels(outputs.width, self.app_ratio)

        def static(g: int) -> Optional[Tensor]:
            app_diff = temporal_diff(outputs.student_grid(g)[..., :split])
            return masked_mean(app_diff.abs(), outputs.valid_pairs(g))

        def orth(g: int) -> Optional[Tensor]:
            # All ranks' visible tokens (DDP): the statistic does not depend on how the batch is split.
            visible = gather(rearrange(outputs.generators[g].context, "b k c -> (b k) c"))
            return cross_covariance_penalty(visible[:, :split], visible[:, split:])

        return {
            "fwm_static": self.static_weight * mean_over_generators(outputs, static),
            "fwm_orth": self.orth_weight * mean_over_generators(outputs, orth),
        }
