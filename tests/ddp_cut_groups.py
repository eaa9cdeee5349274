"""One step of every objective with cut groups of 2 over a global batch of 4, in three layouts (for
test_ddp_cut_groups.py): 1 process x 4 samples, 2 x 2 (each group on one process) and 4 x 1 (each group
spans two processes). No Lightning: each process runs the module's step on its rows of the batch, and the
gradients are averaged over processes as DDP does.

    python tests/ddp_cut_groups.py OUT_DIR

Writes layout{W}.pt for W in 1, 2, 4: {objective: {"terms": {name: mean over processes}, "grads": {name:
DDP-averaged gradient}, "lengths": [per generator, per held group, context length] of process 0}}; and
checks that every process holds the same averaged gradients.
"""

import sys
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from jepa_lit.masks import BlockGenerator, MultiBlock3D
from jepa_lit.models import VisionTransformer
from jepa_lit.module import JEPAModule
from jepa_lit import objectives as O

GLOBAL_BATCH = 4
OBJECTIVES = {
    "none": lambda: None,
    "hw": lambda: O.HardWeighting(),
    "delta": lambda: O.Delta(),
    "fwm": lambda: O.FactorizedWorldModel(),
    "sigreg": lambda: O.SIGReg(num_slices=16),
    "ld": lambda: O.LatentDynamics(hidden_dim=16),
    "ld_hard": lambda: O.LatentDynamics(hard_weighting=True, hidden_dim=16),
    "ac": lambda: O.ActionConditioned(hidden_dim=16),
    "ltc": lambda: O.LatentTemporalContrastive(),
    "hamiltonian": lambda: O.Hamiltonian(hidden_dim=16),
    "spectral": lambda: O.Spectral(),
    "kinematic": lambda: O.Kinematic(),
    "velgate": lambda: O.VelocityGate(),
}


def clip() -> torch.Tensor:
    return torch.randn(GLOBAL_BATCH, 3, 8, 32, 32, generator=torch.Generator().manual_seed(0))


def step(name: str, rank: int, world: int) -> dict:
    torch.manual_seed(0)  # the same weights on every process
    encoder = VisionTransformer(size="tiny", depth=1, num_frames=8, img_size=32)
    # Blocks over half the clip's time: samples differ in how many valid pairs and tokens they keep.
    masks = MultiBlock3D(generators=[BlockGenerator(3, (0.2, 0.2), temporal_scale=(0.5, 0.5)),
                                     BlockGenerator(1, (0.5, 0.5))], cut_group_size=2, seed=1)
    objective = OBJECTIVES[name]()
    module = JEPAModule(encoder, masks, objectives=[objective] if objective is not None else [], predictor_width=32,
                        predictor_depth=1, predictor_heads=2, context_loss_start=0.0, context_loss_end=0.0,
                        target_encoder="online" if name == "kinematic" else "ema")  # Kinematic fits the target
    module.mask_sampler.set_rank(rank, world)
    outputs = module.forward_step(clip()[rank::world], step=0)  # local row b is global sample b * W + rank
    terms = module.loss_terms(outputs)
    torch.stack(list(terms.values())).sum().backward()
    grads = {n: p.grad.clone() for n, p in module.named_parameters() if p.grad is not None}
    values = {k: v.detach().clone() for k, v in terms.items()}
    if world > 1:
        for tensor in [*grads.values(), *values.values()]:
            dist.all_reduce(tensor)
            tensor /= world  # DDP's mean of the gradients; the mean of the ranks' terms
    lengths = [[out.masks.context.shape[1] for out in groups] for groups in outputs.generators]
    return {"terms": {k: float(v) for k, v in values.items()}, "grads": grads, "lengths": lengths}


def rank_main(rank: int, world: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/store{world}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=120))
    results = {name: step(name, rank, world) for name in OBJECTIVES}
    if rank == 0:
        torch.save(results, f"{out_dir}/layout{world}.pt")
    else:  # DDP leaves the same averaged gradients on every process
        mine = {name: r["grads"] for name, r in results.items()}
        torch.save(mine, f"{out_dir}/layout{world}_rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    out = sys.argv[1]
    torch.save({name: step(name, 0, 1) for name in OBJECTIVES}, f"{out}/layout1.pt")
    for world in (2, 4):  # forked: the children start with everything imported
        mp.start_processes(rank_main, args=(world, out), nprocs=world, start_method="fork")
