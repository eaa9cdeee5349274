"""Per-step schedules: learning rate, weight decay, EMA momentum and the context-loss weight.

Each is a pure function of the optimizer step, so a resumed run continues them exactly. The learning
rate and weight decay of optimizer step i are the schedules' values at i + 1, as in the study's release
(its schedulers advance once before each step): the first step already trains above ``start_lr``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional


def cosine(start: float, end: float, progress: float) -> float:
    progress = min(max(progress, 0.0), 1.0)
    return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * progress))


def linear_ramp(step: int, start_step: int, end_step: int, value: float) -> float:
    """0 before ``start_step``, rising linearly to ``value`` at ``end_step``, then held."""
    if step < start_step:
        return 0.0
    if step >= end_step or end_step <= start_step:
        return value
    return value * (step - start_step) / (end_step - start_step)


@dataclass
class OptimizerConfig:
    """AdamW with weight decay on weights only; lr warmed up linearly from ``start_lr`` to ``lr`` over
    ``warmup_steps``, then held (``constant``) or decayed to ``final_lr`` (``cosine``); weight decay
    constant, or cosine from ``weight_decay`` to ``final_weight_decay`` when that is set.

    ``implementation``: how AdamW updates the parameters. "auto": one fused kernel on CUDA, the multi-tensor
    (foreach) path elsewhere; "fused", "foreach" or "for-loop" force one (the for-loop path is torch's CPU
    default; the three agree to float rounding)."""

    lr: float = 6e-4
    start_lr: float = 1e-4
    warmup_steps: int = 300
    lr_schedule: Literal["constant", "cosine"] = "constant"
    final_lr: float = 1e-6
    weight_decay: float = 0.04
    final_weight_decay: Optional[float] = None
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    implementation: Literal["auto", "fused", "foreach", "for-loop"] = "auto"

    def adamw_kwargs(self, device_type: str) -> dict:
        """torch.optim.AdamW's ``fused`` / ``foreach`` arguments for parameters on ``device_type``."""
        choice = self.implementation
        if choice == "auto":
            choice = "fused" if device_type == "cuda" else "foreach"
        if choice not in ("fused", "foreach", "for-loop"):
            raise ValueError(f"model.init_args.optimizer.implementation={choice!r}; expected 'auto', 'fused', "
                             "'foreach' or 'for-loop'")
        return {"fused": choice == "fused", "foreach": choice == "foreach"}

    def lr_at(self, step: int, total_steps: int) -> float:
        """The learning rate of optimizer step ``step`` (counted from 0): the schedule at step + 1."""
        step = step + 1
        if step < self.warmup_steps:
            return self.start_lr + (self.lr - self.start_lr) * step / self.warmup_steps
        if self.lr_schedule == "constant":
            return self.lr
        progress = (step - self.warmup_steps) / max(1, total_steps - self.warmup_steps)
        return cosine(self.lr, self.final_lr, progress)

    def weight_decay_at(self, step: int, total_steps: int) -> float:
        """The weight decay of optimizer step ``step`` (counted from 0): the schedule at step + 1."""
        if self.final_weight_decay is None:
            return self.weight_decay
        return cosine(self.weight_decay, self.final_weight_decay, (step + 1) / max(1, total_steps))


def ema_momentum_at(step: int, total_steps: int, momentum: float, final_momentum: Optional[float]) -> float:
    """Constant ``momentum`` (V-JEPA 2 / 2.1), or linear to ``final_momentum`` (V-JEPA 1)."""
    if final_momentum is None:
        return momentum
    return momentum + (final_momentum - momentum) * min(step / max(1, total_steps), 1.0)
