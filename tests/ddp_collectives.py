"""Collectives outside Lightning's own on 2 gloo ranks (for test_ddp.py): the pair-based objectives
where rank 1 has no valid pair, and the loss guard's shared history.

    python tests/ddp_collectives.py OUT_DIR

Sample 0 sees the top row at every token time (valid pairs, whole tubes); sample 1 sees every
position at t = 0 and t = 2 only (no pair, no whole tube). The reference runs both samples in one
process; then each rank runs one sample. Every rank must run the same collectives, so the run ends
(no hang) and each rank's term is its share of the batch mean. Writes reference.pt and rank{r}.pt:
{"terms": {name: value}, "context_grads": [B_local, K, C], "head_grads": {name: grad}}, and in rank{r}.pt
"guard_history": the spike guard's window after rank r saw a loss of r (both must hold the mean, 0.5).
"""

import sys
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from jepa_lit.guard import GuardConfig, LossGuard
from jepa_lit.masks.base import MaskPair
from jepa_lit.objectives import (
    ActionConditioned,
    GeneratorOutputs,
    Hamiltonian,
    LatentDynamics,
    LatentTemporalContrastive,
    Spectral,
    StepOutputs,
)

GRID = (4, 2, 2)
EMBED, LEVELS = 2, 2
WIDTH = EMBED * LEVELS


def objectives() -> list[torch.nn.Module]:
    torch.manual_seed(0)  # the same heads on every rank
    built = [LatentDynamics(hard_weighting=True, hidden_dim=8), LatentDynamics(hidden_dim=8),
             ActionConditioned(hidden_dim=8), LatentTemporalContrastive(), Hamiltonian(hidden_dim=8), Spectral()]
    for objective in built:  # as JEPAModule.__init__ does with its encoder's widths
        objective.build(EMBED, LEVELS)
    return built


def outputs(samples: slice) -> StepOutputs:
    t_len, h_len, w_len = GRID
    positions = [(t, h, w) for t in range(t_len) for h in range(h_len) for w in range(w_len)]
    flat = {p: i for i, p in enumerate(positions)}
    visible = [[flat[p] for p in positions if p[1] == 0], [flat[p] for p in positions if p[0] % 2 == 0]]
    gen = torch.Generator().manual_seed(0)
    context = torch.tensor(visible)
    target_idx = torch.tensor([sorted(set(flat.values()) - set(v)) for v in visible])
    features = torch.randn(2, context.shape[1], WIDTH, generator=gen)
    predictions = torch.randn(2, target_idx.shape[1], WIDTH, generator=gen)
    target = torch.randn(2, len(positions), WIDTH, generator=gen)
    clip = torch.randn(2, 3, 2 * t_len, 4 * h_len, 4 * w_len, generator=gen)
    masks = MaskPair(context[samples], target_idx[samples])
    generator = GeneratorOutputs(masks, features[samples].clone().requires_grad_(), predictions[samples], features[samples])
    return StepOutputs(clip[samples], target[samples], [[generator]], GRID, EMBED, LEVELS, step=0, max_steps=10)


def run(samples: slice) -> dict:
    step, terms, head_grads = outputs(samples), {}, {}
    for index, objective in enumerate(objectives()):
        for name, value in objective(step).items():
            terms[f"{index}.{name}"] = value.item()
            value.backward(retain_graph=True)
        head_grads.update({f"{index}.{n}": p.grad.clone() for n, p in objective.named_parameters()})
    return {"terms": terms, "context_grads": step.generators[0][0].context.grad.clone(), "head_grads": head_grads}


def rank_main(rank: int, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/store", rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    results = run(slice(rank, rank + 1))
    guard = LossGuard(GuardConfig(spike_std=3.0, spike_min_history=1))
    guard.check({"pred": torch.tensor(float(rank))}, torch.tensor(float(rank)), step=0)
    results["guard_history"] = list(guard.history)
    torch.save(results, f"{out_dir}/rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.save(run(slice(0, 2)), f"{sys.argv[1]}/reference.pt")
    mp.spawn(rank_main, args=(sys.argv[1],), nprocs=2)
