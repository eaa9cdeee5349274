"""Per-term gradient attribution: how hard each loss term pulls on the encoder.

Every ``every_n_steps`` optimizer steps, before backward, the gradient of each named term of the step
(``module.last_step.terms``: the base terms and every objective's) with respect to the online encoder's
parameters is computed on its own (``torch.autograd.grad``, graph retained) and its global L2 norm is
logged as ``grad_norm/<term>``. A term that does nothing to the encoder (detached, no valid pairs, the
release's no-grad HW-LD term) shows as 0. Each computation costs about one extra backward, so keep N
large on real runs. Every DDP rank computes (a term may hold collectives, e.g. SIGReg); the norms
are those of the local rank's gradient, before DDP averages.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor

from jepa_lit.module import last_step_of


class TermGradientNorms(L.Callback):
    def __init__(self, every_n_steps: int = 250, module_attr: str = "encoder"):
        if every_n_steps < 1:
            raise ValueError(f"every_n_steps={every_n_steps}; expected >= 1")
        self.every_n_steps, self.module_attr = every_n_steps, module_attr
        self.last_norms: dict[str, float] = {}

    def on_before_backward(self, trainer: L.Trainer, pl_module: L.LightningModule, loss: Tensor) -> None:
        if trainer.global_step % self.every_n_steps:
            return
        record = last_step_of(pl_module, "TermGradientNorms")
        if record is None:
            return
        params = [p for p in getattr(pl_module, self.module_attr).parameters() if p.requires_grad]
        norms = {}
        for name, term in record.terms.items():
            norms[f"grad_norm/{name}"] = self.gradient_norm(term, params)
        self.last_norms = norms
        for logger in trainer.loggers:
            logger.log_metrics(norms, step=trainer.global_step)

    @staticmethod
    def gradient_norm(term: Tensor, params: list[Tensor]) -> float:
        if not term.requires_grad:
            return 0.0
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        grads = [g.float() for g in grads if g is not None]
        if not grads:
            return 0.0
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
