"""DDP over gloo on 2 CPU processes: a batch of 2 x 2 trains exactly like one process with a batch of 4."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_step.py")
# Delta uses masked means (global counts); FWM's cross-covariance and SIGReg use batch statistics.
OBJECTIVES = ["jepa_lit.objectives.Delta", "jepa_lit.objectives.FactorizedWorldModel", "jepa_lit.objectives.SIGReg"]


def run(out_dir: Path, devices: int, batch: int) -> None:
    out_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])}
    result = subprocess.run([sys.executable, str(SCRIPT), str(out_dir), str(devices), str(batch), *OBJECTIVES],
                            capture_output=True, text=True, timeout=600, env=env, cwd=out_dir)
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_ranks_equal_one_process(tmp_path):
    run(tmp_path / "single", devices=1, batch=4)
    run(tmp_path / "ddp", devices=2, batch=2)
    single = torch.load(tmp_path / "single" / "rank0.pt")
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in range(2)]
    # DDP all-reduces (averages) gradients: both ranks hold the same, equal to the single process's.
    for name, grad in single["grads"].items():
        for rank in ranks:
            assert torch.allclose(rank["grads"][name], grad, rtol=1e-4, atol=1e-7), name
    for term, value in single["terms"].items():
        mean_over_ranks = sum(rank["terms"][term] for rank in ranks) / 2
        assert mean_over_ranks == pytest.approx(value, rel=1e-5, abs=1e-7), term
