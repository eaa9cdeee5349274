"""SIGReg, LeJEPA's sketched isotropic Gaussian regulariser (Balestriero & LeCun, arXiv 2511.08544).

On the n visible student tokens of all mask generators, pooled (X: [n, 4D]), projected on K random
unit directions A (Gaussian columns, normalised; drawn from the step, so every DDP rank uses the same),
y = X A, the Epps-Pulley statistic of each direction against N(0, 1):

    phi_n(t) = mean_i exp(i t y_i),   phi(t) = exp(-t^2 / 2)
    EP       = n * integral over R of |phi_n(t) - phi(t)|^2 phi(t) dt
             ~ n * sum_j w_j phi(t_j) [(mean_i cos(t_j y_i) - phi(t_j))^2 + (mean_i sin(t_j y_i))^2]

with t_j = linspace(0, t_max, num_points) and trapezoid weights w_j doubled for t < 0 (symmetry).

    L_sigreg = weight * mean over the K directions of EP

(study: weight 1.0, K 1024, t_max 3, 17 points). Under DDP the empirical characteristic function is
the ranks' sums (a differentiable all-reduce) over the global count n, as in LeJEPA: every rank gets the
statistic of the global batch, and after DDP averages the parameter gradients they are the gradient of
that statistic. Ranks may hold different numbers of tokens (cut groups of different lengths), so the
sums are reduced, not the ranks' means. Computed in fp32.
"""

from __future__ import annotations

import torch
from torch import Tensor

from jepa_lit.distributed import all_reduce_mean, all_reduce_sum, world_size

from jepa_lit.objectives.base import Objective
from jepa_lit.step import StepOutputs


class EmpiricalCharacteristic(torch.autograd.Function):
    """(sum_i cos(t y_i), sum_i sin(t y_i)) for y [n, K] and nodes t [P] -> two [K, P] tensors.

    The same as the autograd of cos / sin, but keeps the cos and sin values for backward instead of
    recomputing both (n K P trigonometric evaluations each): half the trig work, about 2.5x faster."""

    @staticmethod
    def forward(ctx, y: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        phase = y.unsqueeze(-1) * t  # [n, K, P]
        cos, sin = torch.cos(phase), torch.sin(phase)
        ctx.save_for_backward(cos, sin, t)
        return cos.sum(0), sin.sum(0)

    @staticmethod
    def backward(ctx, grad_cos: Tensor, grad_sin: Tensor) -> tuple[Tensor, None]:
        cos, sin, t = ctx.saved_tensors
        grad_phase = cos * grad_sin - sin * grad_cos
        return grad_phase @ t, None


def epps_pulley(y: Tensor, t: Tensor, weights: Tensor) -> Tensor:
    """Epps-Pulley statistic of each column of ``y`` [n, K] against N(0, 1): [K]."""
    # The empirical characteristic function of the whole batch: one collective for cos and sin (a sum over the
    # ranks: all_reduce_mean x W, differentiably) and one for the token count (no host read).
    sums = all_reduce_mean(torch.stack(EmpiricalCharacteristic.apply(y, t))) * world_size()
    count = all_reduce_sum(y.new_full((), y.shape[0]))
    cos_mean, sin_mean = (sums / count.clamp(min=1)).unbind(0)
    phi = torch.exp(-0.5 * t.square())
    error = (cos_mean - phi).square() + sin_mean.square()  # [K, P]
    return (error @ weights) * count


class SIGReg(Objective):
    name = "sigreg"

    def __init__(self, weight: float = 1.0, num_slices: int = 1024, t_max: float = 3.0, num_points: int = 17,
                 seed: int = 0):
        super().__init__()
        if num_points < 2:
            raise ValueError(f"num_points={num_points}; expected at least 2")
        self.weight, self.num_slices, self.seed = weight, num_slices, seed
        t = torch.linspace(0.0, t_max, num_points)
        step = t_max / (num_points - 1)
        trapezoid = torch.full((num_points,), 2.0 * step)  # doubled: t and -t
        trapezoid[[0, -1]] = step
        self.register_buffer("t", t, persistent=False)
        self.register_buffer("weights", trapezoid * torch.exp(-0.5 * t.square()), persistent=False)

    def directions(self, width: int, step: int, device: torch.device) -> Tensor:
        """[width, K] unit columns, a pure function of (seed, step)."""
        generator = torch.Generator(device=device).manual_seed(self.seed * 1_000_003 + step)
        a = torch.randn(width, self.num_slices, generator=generator, device=device)
        return a / a.norm(dim=0, keepdim=True)

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        x = torch.cat([outputs.context_tokens(g) for g in range(len(outputs.generators))])  # [n, 4D]
        with torch.autocast(device_type=x.device.type, enabled=False):
            y = x.float() @ self.directions(x.shape[-1], outputs.step, x.device)
            value = epps_pulley(y, self.t, self.weights).mean()
        return {self.name: self.weight * value}
