"""One training step under Lightning, writing the loss and gradients of each rank (for test_ddp.py).

    python tests/ddp_step.py OUT_DIR DEVICES BATCH_PER_DEVICE [cut_group_size=N] [objectives...]

An objective is a class path, or JSON {"class_path": ..., "init_args": {...}}; heads are sized for
the ViT-tiny used here.
"""

import json
import sys

import lightning as L
import torch

from jepa_lit.distributed import close_process_group
from jepa_lit.data.synthetic import SyntheticMotionDataModule
from jepa_lit.masks import BlockGenerator, MultiBlock3D
from jepa_lit.models import VisionTransformer
from jepa_lit.module import JEPAModule


class SaveStep(L.Callback):
    def __init__(self, out_dir):
        self.out_dir = out_dir

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        grads = {n: p.grad.clone() for n, p in pl_module.named_parameters() if p.grad is not None}
        terms = {k: v.item() for k, v in pl_module.last_step.terms.items()}
        outputs = pl_module.last_step.outputs
        pairs = [int(outputs.valid_pairs(g).sum()) for g in range(len(outputs.generators))]  # this rank's
        lengths = [[out.masks.context.shape[1] for out in groups] for groups in outputs.generators]
        torch.save({"grads": grads, "terms": terms, "pairs": pairs, "context_lengths": lengths},
                   f"{self.out_dir}/rank{trainer.global_rank}.pt")


def objective(spec: str):
    spec = json.loads(spec) if spec.startswith("{") else {"class_path": spec}
    module_name, _, class_name = spec["class_path"].rpartition(".")
    cls = getattr(__import__(module_name, fromlist=[class_name]), class_name)
    return cls(**spec.get("init_args", {}))


def main(out_dir: str, devices: int, batch: int, *objectives: str) -> None:
    L.seed_everything(0)
    cut = [a for a in objectives if a.startswith("cut_group_size=")]
    objectives = [a for a in objectives if a not in cut]
    cut_group_size = int(cut[0].split("=")[1]) if cut else "global"
    encoder = VisionTransformer(size="tiny", depth=2, num_frames=8, img_size=64)
    # Blocks over half the clip's time: samples differ in how many valid pairs (t, t+1) they keep.
    masks = MultiBlock3D(generators=[BlockGenerator(3, (0.2, 0.2), temporal_scale=(0.5, 0.5)),
                                     BlockGenerator(1, (0.5, 0.5))], cut_group_size=cut_group_size,
                         seed=1 if cut else None)  # seed 1: the two groups of 2 get lists of different lengths
    module = JEPAModule(encoder, masks, objectives=[objective(p) for p in objectives], predictor_width=32,
                        predictor_depth=1, predictor_heads=2, context_loss_start=0.0, context_loss_end=0.0)
    data = SyntheticMotionDataModule(num_clips=10, num_frames=8, crop_size=64, batch_size=batch, val_fraction=0.5)
    trainer = L.Trainer(max_steps=1, accelerator="cpu", devices=devices, strategy="ddp" if devices > 1 else "auto",
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0,
                        callbacks=[SaveStep(out_dir)])
    trainer.fit(module, datamodule=data)
    close_process_group()  # as jepa-lit's main does: no gloo teardown at interpreter exit


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:])
