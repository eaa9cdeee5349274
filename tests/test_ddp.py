"""DDP over gloo on 2 CPU processes: a batch of 2 x 2 trains exactly like one process with a batch of 4."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_step.py")
# Delta uses masked means (global counts); FWM's cross-covariance and SIGReg use batch statistics.
BATCH_STATISTICS = ["jepa_lit.objectives.Delta", "jepa_lit.objectives.FactorizedWorldModel", "jepa_lit.objectives.SIGReg"]
# Means over the valid pairs (or whole tubes) of the batch, whose count differs between samples; LD's
# hard weighting is a softmax over all of them.
PAIR_MEANS = [
    '{"class_path": "jepa_lit.objectives.LatentDynamics", "init_args": {"hard_weighting": true}}',
    "jepa_lit.objectives.ActionConditioned", "jepa_lit.objectives.LatentTemporalContrastive",
    "jepa_lit.objectives.Hamiltonian", "jepa_lit.objectives.Spectral",
]


# The base loss and HW average per cut group; the groups' index lists have different lengths.
GROUPED = ["cut_group_size=2", "jepa_lit.objectives.HardWeighting", "jepa_lit.objectives.FactorizedWorldModel"]


def run(out_dir: Path, devices: int, batch: int, objectives: list[str]) -> None:
    out_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])}
    result = subprocess.run([sys.executable, str(SCRIPT), str(out_dir), str(devices), str(batch), *objectives],
                            capture_output=True, text=True, timeout=600, env=env, cwd=out_dir)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize("objectives", [BATCH_STATISTICS, PAIR_MEANS, GROUPED],
                         ids=["batch_statistics", "pair_means", "cut_groups_of_2"])
def test_two_ranks_equal_one_process(tmp_path, objectives):
    run(tmp_path / "single", devices=1, batch=4, objectives=objectives)
    run(tmp_path / "ddp", devices=2, batch=2, objectives=objectives)
    single = torch.load(tmp_path / "single" / "rank0.pt")
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in range(2)]
    # DDP all-reduces (averages) gradients: both ranks hold the same, equal to the single process's.
    # Tolerance relative to each tensor's scale: summation order differs between the two runs.
    for name, grad in single["grads"].items():
        for rank in ranks:
            error = (rank["grads"][name] - grad).abs().max()
            assert error <= 1e-5 * grad.abs().max() + 1e-9, (name, error.item(), grad.abs().max().item())
    for term, value in single["terms"].items():
        mean_over_ranks = sum(rank["terms"][term] for rank in ranks) / 2
        assert mean_over_ranks == pytest.approx(value, rel=1e-5, abs=1e-7), term
    if objectives is not GROUPED:
        # a rank-local mean would differ from the batch mean only where the ranks' pair counts differ
        assert ranks[0]["pairs"] != ranks[1]["pairs"]
    else:  # rank r holds exactly the one process's group r, cut to its own length
        for g, lengths in enumerate(single["context_lengths"]):
            assert lengths == [ranks[0]["context_lengths"][g][0], ranks[1]["context_lengths"][g][0]]
        assert any(a != b for a, b in single["context_lengths"])  # groups of different lengths


@pytest.mark.slow
def test_a_rank_without_valid_pairs_joins_the_collectives(tmp_path):
    """Rank 1's sample has no valid pair and no whole tube: the pair-based objectives still run every
    collective there (no hang, no empty-FFT error), and each rank's term is its share of the batch mean."""
    script = SCRIPT.with_name("ddp_collectives.py")
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True,
                            timeout=180, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    reference = torch.load(tmp_path / "reference.pt")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert len(reference["terms"]) == 6
    for term, value in reference["terms"].items():
        assert ranks[1]["terms"][term] == 0.0, term  # nothing of its own to fit
        assert (ranks[0]["terms"][term] + ranks[1]["terms"][term]) / 2 == pytest.approx(value, rel=1e-6), term
    # A rank's loss is world_size x its share; the one-process gradient of its sample is half its own.
    for rank, sample in zip(ranks, reference["context_grads"]):
        assert torch.allclose(rank["context_grads"][0] / 2, sample, atol=1e-7)
    assert reference["context_grads"][0].abs().sum() > 0
    for name, grad in reference["head_grads"].items():  # DDP averages parameter gradients
        assert torch.allclose((ranks[0]["head_grads"][name] + ranks[1]["head_grads"][name]) / 2, grad, atol=1e-7), name
    # The spike guard records the batch's loss (the ranks' mean), so every rank decides alike and resumes alike.
    assert ranks[0]["guard_history"] == ranks[1]["guard_history"] == [0.5]
