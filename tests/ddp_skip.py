"""Three training steps under Lightning with step 1 poisoned on the last rank only (for test_ddp_skip.py).

    python tests/ddp_skip.py OUT_DIR DEVICES BATCH_PER_DEVICE

With ``guard.on_nonfinite: skip`` a NaN in one rank's clip makes that rank's loss NaN; the guard reads the
ranks' mean, so every rank skips the step. With one process the NaN sits in the same global batch.
Writes rank{r}.pt: {"state_dict", "adam_steps", "skipped", "batches", "encoder_by_step", "lr_by_step",
"momentum_by_step"}.
"""

import sys

import lightning as L
import torch

from jepa_lit.data.synthetic import SyntheticMotionDataModule
from jepa_lit.distributed import close_process_group
from jepa_lit.guard import GuardConfig
from jepa_lit.masks import BlockGenerator, MultiBlock3D
from jepa_lit.models import VisionTransformer
from jepa_lit.module import JEPAModule

POISONED_STEP = 1


class PoisonAndRecord(L.Callback):
    def __init__(self, out_dir: str):
        self.out_dir = out_dir
        self.encoder_by_step, self.target_by_step, self.lr_by_step = [], [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == POISONED_STEP and trainer.global_rank == trainer.world_size - 1:
            batch["video"][0, 0, 0, 0, 0] = float("nan")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.encoder_by_step.append(pl_module.encoder.patch_embed.proj.weight.detach().clone())
        self.target_by_step.append(pl_module.target_encoder.patch_embed.proj.weight.detach().clone())
        self.lr_by_step.append(trainer.optimizers[0].param_groups[0]["lr"])

    def on_train_end(self, trainer, pl_module):
        optimizer = trainer.optimizers[0]
        torch.save({"state_dict": {k: v.detach().clone() for k, v in pl_module.state_dict().items()},
                    "adam_steps": sorted({float(s["step"]) for s in optimizer.state.values()}),
                    "skipped": pl_module.guard.skipped, "batches": pl_module.guard.batches,
                    "global_step": trainer.global_step, "encoder_by_step": self.encoder_by_step,
                    "target_by_step": self.target_by_step, "lr_by_step": self.lr_by_step},
                   f"{self.out_dir}/rank{trainer.global_rank}.pt")


def main(out_dir: str, devices: int, batch: int) -> None:
    L.seed_everything(0)
    encoder = VisionTransformer(size="tiny", depth=1, num_frames=8, img_size=32)
    masks = MultiBlock3D(generators=[BlockGenerator(2, (0.25, 0.25)), BlockGenerator(1, (0.5, 0.5))])
    module = JEPAModule(encoder, masks, predictor_width=32, predictor_depth=1, predictor_heads=2,
                        ema_momentum=0.9, context_loss_start=0.0, context_loss_end=0.0,
                        guard=GuardConfig(on_nonfinite="skip", max_skipped_fraction=1.0))
    data = SyntheticMotionDataModule(num_clips=16, num_frames=8, crop_size=32, batch_size=batch, val_fraction=0.5)
    trainer = L.Trainer(max_steps=3, accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                        callbacks=[PoisonAndRecord(out_dir)])
    trainer.fit(module, datamodule=data)
    close_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
