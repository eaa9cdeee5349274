"""FLOPs of the objectives' heads on the dense student grid, next to a training step's, at the study's scale.

The heads of LD, AC and Hamiltonian run on every position t < T'-1 of the student grid and their error is
averaged over the valid pairs (jepa_lit.objectives.heads.grid_inputs): no host sync, but the head also
runs where there is no pair. This script measures what that costs with the study's masks (base.yaml's two
generators, 16 frames x 224 px: a 8 x 14 x 14 token grid, per-GPU batch 8) and ViT-B (4D = 3072 channels,
heads of hidden width 256):

- the positions the dense head runs on and the valid pairs it used to run on, per clip, over
  ``--mask-steps`` mask steps;
- each objective's forward and backward FLOPs on the dense grid (torch.utils.flop_counter, on its own:
  the features are leaves), and what the same head costs on the pairs alone (a head's FLOPs are linear
  in the positions it runs on);
- the FLOPs of the whole base step (bench/bench_step.py's count, attention included) per clip.

    python bench/head_flops.py                 # about a minute on 1 CPU thread (the base step's count)
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from bench_step import build, count_flops
from jepa_lit.masks import MultiBlock3D
from jepa_lit.objectives import ActionConditioned, GeneratorOutputs, Hamiltonian, LatentDynamics, StepOutputs

GRID, EMBED, LEVELS, BATCH = (8, 14, 14), 768, 4, 8
OBJECTIVES = {"LD": lambda: LatentDynamics(hidden_dim=256), "AC": lambda: ActionConditioned(hidden_dim=256),
              "Hamiltonian": lambda: Hamiltonian(hidden_dim=256)}


def step_outputs(masks) -> StepOutputs:
    """Random features on the study's grid with the masks of one step (one cut group per generator)."""
    width, tokens = EMBED * LEVELS, GRID[0] * GRID[1] * GRID[2]
    generators = [[GeneratorOutputs(pair, torch.randn(BATCH, pair.context.shape[1], width).requires_grad_(),
                                    torch.randn(BATCH, pair.target.shape[1], width),
                                    torch.randn(BATCH, pair.context.shape[1], width)) for pair in groups]
                  for groups in masks]
    clip = torch.randn(BATCH, 3, 2 * GRID[0], 16 * GRID[1], 16 * GRID[2])
    return StepOutputs(clip, torch.randn(BATCH, tokens, width), generators, GRID, EMBED, LEVELS)


def pairs_per_clip(outputs: StepOutputs) -> list[float]:
    return [float(outputs.valid_pairs(g).sum()) / BATCH for g in range(len(outputs.generators))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mask-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sampler = MultiBlock3D(seed=0)  # the study's two generators
    shape_only = torch.empty(BATCH, 0)
    pairs = [pairs_per_clip(step_outputs(sampler(shape_only, GRID, step))) for step in range(args.mask_steps)]
    positions = (GRID[0] - 1) * GRID[1] * GRID[2]
    mean_pairs = [sum(p[g] for p in pairs) / len(pairs) for g in range(len(pairs[0]))]
    print(f"per clip: {positions} positions t < T'-1; valid pairs per generator (mean of {args.mask_steps} mask "
          f"steps): {', '.join(f'{p:.1f}' for p in mean_pairs)}")

    outputs = step_outputs(sampler(shape_only, GRID, 0))
    step_pairs = pairs_per_clip(outputs)
    module = build("base224", checkpointing=False, compile_model=False)
    clip = torch.randn(2, 3, 16, 224, 224)
    count = count_flops(module, clip, 0, "fp32")
    step_flops = (count["counter"] + count["attention"]) / clip.shape[0]
    print(f"base step (ViT-B, mask step 0): {step_flops / 1e9:.1f} GFLOP per clip")
    for name, make in OBJECTIVES.items():
        objective = make()
        objective.build(EMBED, LEVELS)
        outputs._cache.clear()
        with FlopCounterMode(display=False) as counter:
            sum(objective(outputs).values()).backward()
        dense = counter.get_total_flops() / BATCH
        on_pairs = dense * sum(step_pairs) / (positions * len(step_pairs))
        print(f"{name:12s} dense {dense / 1e9:6.2f} GFLOP per clip ({100 * dense / step_flops:.1f}% of the step); "
              f"on the pairs alone {on_pairs / 1e9:6.2f} ({100 * on_pairs / step_flops:.1f}%); "
              f"extra {100 * (dense - on_pairs) / step_flops:.1f}% of the step")


if __name__ == "__main__":
    main()
