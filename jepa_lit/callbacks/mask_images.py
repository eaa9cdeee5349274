"""MaskImages: every N steps, a picture of what the model was asked to predict, in TensorBoard.

One training clip of the step (``JEPAModule.last_step.outputs``), a few of its frames side by side:

    row 0           the frames as the model saw them (de-normalised)
    row 1 + g       the same frames under mask generator g: its target tokens tinted red, its context
                    tokens as they are, and the tokens in neither (the batch-minimum cut) darkened

so motion-guided masking (targets on the moving regions) and future-predictive masking (targets on the
whole second half of the clip) can be seen working. Each token covers ``tubelet`` frames and a
``patch x patch`` square; frames are upscaled by a whole factor to at least ``min_size`` pixels.
The image, [3, rows * (S + pad) + pad, frames * (S' + pad) + pad] with S x S' the upscaled frame, is
logged as ``masks/train_clip`` through the run's TensorBoardLogger (nothing is logged without one).

Example (YAML, under ``trainer.callbacks``)::

    - class_path: jepa_lit.callbacks.mask_images.MaskImages
      init_args:
        every_n_steps: 500
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor

from jepa_lit.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from jepa_lit.module import last_step_of
from jepa_lit.step import StepOutputs

TARGET_COLOUR = (1.0, 0.15, 0.15)
TAG = "masks/train_clip"


def token_labels(context: Tensor, target: Tensor, grid: tuple[int, int, int]) -> Tensor:
    """[T', H', W'] long: 0 neither, 1 context, 2 target, from one sample's flat token indices."""
    labels = torch.zeros(math.prod(grid), dtype=torch.long)
    labels[context.cpu()] = 1
    labels[target.cpu()] = 2
    return labels.view(grid)


def group_row(groups, sample: int):
    """(the MaskPair of the cut group holding batch row ``sample``, the sample's row in it)."""
    for out in groups:
        if out.masks.rows is None:
            return out.masks, sample
        hits = (out.masks.rows == sample).nonzero()
        if len(hits):
            return out.masks, int(hits[0, 0])
    raise IndexError(f"batch row {sample} is in no cut group")


def mask_overlay(
    outputs: StepOutputs,
    sample: int = 0,
    num_frames: int = 4,
    min_size: int = 128,
    pad: int = 2,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    target_alpha: float = 0.55,
    dropped_dim: float = 0.3,
) -> Tensor:
    """The picture described in the module docstring, as float [3, height, width] in [0, 1] (CPU)."""
    clip = outputs.clip[sample].detach().float().cpu()  # [3, T, H, W]
    _, frames, height, width = clip.shape
    clip = clip * torch.tensor(std).view(3, 1, 1, 1) + torch.tensor(mean).view(3, 1, 1, 1)
    clip = clip.clamp(0.0, 1.0)
    chosen = torch.linspace(0, frames - 1, min(num_frames, frames)).round().long().unique()
    grid_t, grid_h, grid_w = outputs.grid
    # the token each pixel belongs to (works for any tubelet / patch size, and for one-frame clips)
    token_t = (chosen * grid_t // frames).clamp_max(grid_t - 1)
    token_h = (torch.arange(height) * grid_h // height).clamp_max(grid_h - 1)
    token_w = (torch.arange(width) * grid_w // width).clamp_max(grid_w - 1)
    base = clip[:, chosen].permute(1, 0, 2, 3)  # [k, 3, H, W]
    rows = [base]
    colour = torch.tensor(TARGET_COLOUR).view(1, 3, 1, 1)
    for groups in outputs.generators:
        masks, row = group_row(groups, sample)
        labels = token_labels(masks.context[row], masks.target[row], outputs.grid)
        pixels = labels[token_t][:, token_h][:, :, token_w].unsqueeze(1)  # [k, 1, H, W]
        tinted = torch.where(pixels == 2, (1 - target_alpha) * base + target_alpha * colour, base)
        rows.append(torch.where(pixels == 0, dropped_dim * base, tinted))
    cells = torch.stack(rows)  # [rows, k, 3, H, W]
    scale = max(1, math.ceil(min_size / max(1, min(height, width))))
    if scale > 1:
        cells = cells.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    num_rows, num_cols, _, cell_h, cell_w = cells.shape
    canvas = torch.ones(3, num_rows * (cell_h + pad) + pad, num_cols * (cell_w + pad) + pad)
    for r in range(num_rows):
        for c in range(num_cols):
            top, left = pad + r * (cell_h + pad), pad + c * (cell_w + pad)
            canvas[:, top : top + cell_h, left : left + cell_w] = cells[r, c]
    return canvas


class MaskImages(L.Callback):
    """Args:
        every_n_steps: log the masks of every N-th optimizer step (the first step included).
        num_frames: frames shown, spread evenly over the clip.
        sample: which clip of the (local) batch.
        min_size: frames are upscaled (nearest) by a whole factor to at least this many pixels.
    """

    def __init__(self, every_n_steps: int = 500, num_frames: int = 4, sample: int = 0, min_size: int = 128):
        if every_n_steps < 1:
            raise ValueError(f"MaskImages.every_n_steps={every_n_steps}; expected >= 1")
        if num_frames < 1:
            raise ValueError(f"MaskImages.num_frames={num_frames}; expected >= 1")
        self.every_n_steps, self.num_frames, self.sample, self.min_size = every_n_steps, num_frames, sample, min_size
        self.last_image: Optional[Tensor] = None
        self._logged_step: Optional[int] = None
        self._warned = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        record = last_step_of(pl_module, "MaskImages")
        if record is None or not trainer.is_global_zero:
            return
        step_outputs = record.outputs
        step = step_outputs.step
        if step % self.every_n_steps or step == self._logged_step:  # once per step under gradient accumulation
            return
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not loggers:
            if not self._warned:
                rank_zero_warn("MaskImages: the trainer has no TensorBoardLogger, so no mask images are logged")
                self._warned = True
            return
        sample = min(self.sample, step_outputs.clip.shape[0] - 1)
        image = mask_overlay(step_outputs, sample, self.num_frames, self.min_size)
        for logger in loggers:
            logger.experiment.add_image(TAG, image, global_step=step, dataformats="CHW")
        self.last_image, self._logged_step = image, step
