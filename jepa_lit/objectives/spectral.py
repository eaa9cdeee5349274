"""Spectral regularisation: match the student's temporal spectrum to the target's, high frequencies first.

At the spatial positions visible at every token time (whole tubes of the context), with F the real
FFT over token time (T' // 2 + 1 bins) and w_f = linspace(min_freq_weight, 1.0, bins):

    L_spec = weight * mean_{tube, f, c} |w_f F_Z(f) - w_f F_H(f)|     (complex modulus)

computed as |w_f F(Z - H)| (the FFT is linear), in fp32, per mask generator and averaged over the
generators with any whole visible tube (docs/objectives.md; study: 1.0). Needs T' >= 4: a shorter clip is
an error (the release skipped the term silently). H is detached.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor

from jepa_lit.objectives.base import Objective
from jepa_lit.step import StepOutputs, masked_mean, mean_over_generators


class Spectral(Objective):
    name = "spectral"
    min_time_tokens = 4

    def __init__(self, weight: float = 1.0, min_freq_weight: float = 0.1):
        super().__init__()
        self.weight, self.min_freq_weight = weight, min_freq_weight

    def forward(self, outputs: StepOutputs) -> dict[str, Tensor]:
        time_tokens = outputs.grid[0]
        if time_tokens < self.min_time_tokens:
            raise ValueError(
                f"Spectral needs at least {self.min_time_tokens} token time steps, got T'={time_tokens} "
                f"(grid {outputs.grid}); use more frames or drop the objective"
            )
        target = rearrange(outputs.target_grid().detach(), "b t h w c -> b h w t c")

        def per_generator(g: int) -> tuple[Tensor, Tensor]:
            tubes = outputs.visible(g).all(dim=1)  # [B, H', W']
            student = rearrange(outputs.student_grid(g), "b t h w c -> b h w t c")
            with torch.autocast(device_type=student.device.type, enabled=False):
                # every spatial position, read at the whole tubes: no gather, so no host sync
                spectrum = torch.fft.rfft((student - target).float(), dim=3)  # [B, H', W', F, C]
                freq_weights = torch.linspace(self.min_freq_weight, 1.0, spectrum.shape[3], device=spectrum.device)
                return masked_mean((spectrum * freq_weights[:, None]).abs(), tubes)

        return {self.name: self.weight * mean_over_generators(outputs, per_generator)}
