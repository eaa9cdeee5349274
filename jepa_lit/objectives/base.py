"""The objective protocol: what a training step hands to auxiliary losses, and what they return.

An objective is an ``nn.Module`` (so its heads train, checkpoint and sync under DDP with the module)
whose ``forward(outputs: StepOutputs) -> dict[str, Tensor]`` returns named, already weighted loss
terms. The module adds every term to the loss and logs each under ``train/<name>``.

Objectives are sized by the module, not by their config: ``JEPAModule.__init__`` calls
``build(embed_dim, num_levels)`` with its encoder's widths, and an objective with a head creates it
there (in ``build_heads``). Eager, not lazy, so that every parameter exists right after the module is
built: DDP wraps it and checkpoints load into it as into any module.

Each term is computed per mask generator and averaged over the generators that had any valid
position; the notation (Z, V, H, dX, P) is jepa_lit.step's and docs/objectives.md's.
"""

from __future__ import annotations

from typing import Optional

from torch import Tensor, nn

from jepa_lit.step import StepOutputs


class Objective(nn.Module):
    """Base class of auxiliary objectives. Subclasses set ``name`` and implement ``forward``; those with
    parameters sized by the encoder create them in ``build_heads``."""

    name: str = "objective"
    embed_dim: Optional[int] = None  # D of the encoder, set by build()
    num_levels: Optional[int] = None

    @property
    def built(self) -> bool:
        return self.embed_dim is not None

    def build(self, embed_dim: int, num_levels: int) -> None:
        """Size the objective to an encoder whose student tokens are ``num_levels`` levels of
        ``embed_dim`` channels. Building again for the same widths changes nothing."""
        if self.built:
            if (self.embed_dim, self.num_levels) != (embed_dim, num_levels):
                raise ValueError(
                    f"objective {self.name!r} ({type(self).__name__}) is already built for embed_dim="
                    f"{self.embed_dim}, num_levels={self.num_levels}; it cannot be rebuilt for embed_dim="
                    f"{embed_dim}, num_levels={num_levels} (give each module its own objective)"
                )
            return
        self.embed_dim, self.num_levels = embed_dim, num_levels
        self.build_heads(embed_dim * num_levels)

    def build_heads(self, width: int) -> None:
        """Create the parameters that depend on the student's ``width`` (4D channels); none by default."""

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:  # pragma: no cover - interface
        raise NotImplementedError
