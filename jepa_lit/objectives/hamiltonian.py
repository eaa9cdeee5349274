"""Hamiltonian: one symplectic Euler step of a learned energy should carry Z_t to the target at t+1.

q, p = the two halves of the student token Z_t (4D channels: q = Z[..., :2D], p = Z[..., 2D:]); the
energy of the grid is E = sum over tokens of MLP([q, p]) with MLP = Linear(4D, h) -> GELU ->
Linear(h, h) -> GELU -> Linear(h, 1). One symplectic Euler step (with create_graph, so the MLP and the
encoder train through the derivatives):

    q' = q + dt dE/dp (q, p)
    p' = p - dt dE/dq (q', p)
    L  = weight * (mean_P |q' - q*| + mean_P |p' - p*|),   q*, p* = the halves of H_{t+1} (detached)

per mask generator, averaged over the generators with any valid pair (docs/objectives.md; study: 1.0,
dt 0.1, h 256). E is a sum of per-token terms, so dE/dq and dE/dp at a token depend on that token
alone: the step runs on every token t < T'-1 of the student grid (zeros where masked) and its error is
averaged over the valid pairs, with the same result as on the pairs alone and no host sync to select them.
The energy's output layer has no bias: a constant offset of E changes no derivative, and a parameter
that never gets a gradient breaks DDP (the release had one, unused).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from jepa_lit.objectives.base import Objective
from jepa_lit.objectives.heads import check_width, zero_on
from jepa_lit.step import StepOutputs, mean_over_generators


class Hamiltonian(Objective):
    name = "hamiltonian"

    def __init__(self, weight: float = 1.0, dt: float = 0.1, hidden_dim: int = 256):
        super().__init__()
        self.weight, self.dt, self.hidden_dim = weight, dt, hidden_dim

    def build_heads(self, width: int) -> None:
        hidden = self.hidden_dim
        self.energy = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 1, bias=False),
        )

    def step(self, q: Tensor, p: Tensor) -> tuple[Tensor, Tensor]:
        """One symplectic Euler step of the learned energy."""
        if torch.is_grad_enabled():
            return self._euler(q, p, create_graph=True)
        # validation (no_grad or inference mode): the step still needs dE, but keeps no graph
        with torch.inference_mode(False), torch.enable_grad():
            q_next, p_next = self._euler(q.clone().requires_grad_(), p.clone().requires_grad_(), create_graph=False)
        return q_next.detach(), p_next.detach()

    def _euler(self, q: Tensor, p: Tensor, create_graph: bool) -> tuple[Tensor, Tensor]:
        energy = self.energy(torch.cat([q, p], dim=-1)).sum()
        q_next = q + self.dt * torch.autograd.grad(energy, p, create_graph=create_graph)[0]
        energy_next = self.energy(torch.cat([q_next, p], dim=-1)).sum()
        return q_next, p - self.dt * torch.autograd.grad(energy_next, q_next, create_graph=create_graph)[0]

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        check_width(self, outputs)
        target_next = outputs.target_grid().detach()[:, 1:]
        half = outputs.width // 2

        def per_generator(g: int) -> tuple[Tensor, Tensor]:
            z = outputs.student_grid(g)[:, :-1]  # [B, T'-1, H', W', 4D], read at the valid pairs
            q_next, p_next = self.step(z[..., :half], z[..., half:])
            q_error, defined = outputs.pair_mean(g, (q_next - target_next[..., :half]).abs())
            p_error, _ = outputs.pair_mean(g, (p_next - target_next[..., half:]).abs())
            return q_error + p_error, defined

        return {self.name: self.weight * mean_over_generators(outputs, per_generator) + zero_on(self.energy)}
