"""Factorized world model (FWM): an appearance half that stays still and is decorrelated from the rest.

The 4D channels split into Z_app = Z[..., :D_app] (levels 1-2 at app_ratio 0.5) and Z_dyn = Z[..., D_app:]
(levels 3-4), D_app = max(1, floor(app_ratio * 4D)). Per mask generator:

    L_static = static_weight * mean_P |Z_app,t+1 - Z_app,t|
    L_orth   = orth_weight * mean_ab C_ab^2,   C = Z~_app^T Z~_dyn / (n - 1)

where C is the cross-covariance over the n visible tokens of the batch (columns mean-centred), in
fp32; under DDP n is the whole batch's, and C is built from partial sums (the union's column means from
all-reduced sums, then each rank's centred sum of products, all-reduced): no token leaves its rank. Both are averaged over the generators that have the tokens they need (docs/objectives.md, study:
0.05, 0.01, app ratio 0.5). FWM-LD and FAC add a head reading Z_dyn only (``reads: dynamics`` of
LatentDynamics / ActionConditioned).
"""

from __future__ import annotations

import torch
from torch import Tensor

from jepa_lit.distributed import all_reduce_sum_with_grad, union_means
from jepa_lit.objectives.base import Objective
from jepa_lit.objectives.heads import app_channels
from jepa_lit.step import StepOutputs, Term, mean_over_generators


def cross_covariance_penalty(app: Tensor, dyn: Tensor) -> Term:
    """mean_ab C_ab^2 of the cross-covariance of ``app`` [n, a] and ``dyn`` [n, d] over every rank's rows.

    None when a single process holds n < 2 rows; under DDP ``(value, n >= 2)``, the flag on the device.
    The centring is in fp32 (the reason for fp32 here is precision: the column means are subtracted before
    the products, as the gathered computation did, so nothing cancels). The product runs in the float32
    matmul precision the run sets (TF32 with ``torch.set_float32_matmul_precision("high")``: its 10-bit
    mantissa multiplies centred values, accumulating in fp32; the range is fp32's either way)."""
    with torch.autocast(device_type=app.device.type, enabled=False):
        app, dyn = app.float(), dyn.float()
        (app_mean, dyn_mean), n = union_means(app, dyn)
        if isinstance(n, int) and n < 2:
            return None
        # sum over the union of (a - mean_a)(d - mean_d)^T: each rank's share, summed over ranks
        comoment = all_reduce_sum_with_grad((app - app_mean).T @ (dyn - dyn_mean))
        if isinstance(n, int):
            return (comoment / (n - 1)).square().mean()
        return (comoment / (n - 1).clamp(min=1)).square().mean(), n >= 2


class FactorizedWorldModel(Objective):
    name = "fwm"

    def __init__(self, static_weight: float = 0.05, orth_weight: float = 0.01, app_ratio: float = 0.5):
        super().__init__()
        if not 0.0 < app_ratio < 1.0:
            raise ValueError(f"app_ratio={app_ratio}; expected a fraction in (0, 1)")
        self.static_weight, self.orth_weight, self.app_ratio = static_weight, orth_weight, app_ratio

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        split = app_channels(outputs.width, self.app_ratio)

        def static(g: int) -> tuple[Tensor, Tensor]:
            return outputs.pair_mean(g, outputs.student_diff(g)[..., :split].abs())

        def orth(g: int) -> Term:
            # Over all ranks' visible tokens (DDP): the statistic does not depend on how the batch is split.
            visible = outputs.context_tokens(g)
            return cross_covariance_penalty(visible[:, :split], visible[:, split:])

        return {
            "fwm_static": self.static_weight * mean_over_generators(outputs, static),
            "fwm_orth": self.orth_weight * mean_over_generators(outputs, orth),
        }
