"""Cut groups of 2 over a global batch of 4 give every objective the same losses and gradients in 1 process
x 4, 2 x 2 (each group on one process) and 4 x 1 (each group on two processes), over gloo on the CPU."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_cut_groups.py")
sys.path.insert(0, str(SCRIPT.parent))
from ddp_cut_groups import OBJECTIVES  # noqa: E402


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> dict[int, dict]:
    out = tmp_path_factory.mktemp("cut_groups")
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True, timeout=600,
                            env=env, cwd=out)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = {world: torch.load(out / f"layout{world}.pt") for world in (1, 2, 4)}
    for world in (2, 4):  # DDP leaves the same averaged gradients on every process
        for rank in range(1, world):
            others = torch.load(out / f"layout{world}_rank{rank}.pt")
            for name, grads in others.items():
                assert all(torch.equal(g, loaded[world][name]["grads"][p]) for p, g in grads.items()), (world, name)
    return loaded


@pytest.mark.slow
def test_the_layouts_cut_the_same_groups(layouts):
    # one process holds both groups, of different lengths; with 2 or 4 processes process 0 holds group 0
    (first, second), _ = layouts[1]["none"]["lengths"]
    assert first != second
    assert layouts[2]["none"]["lengths"][0] == layouts[4]["none"]["lengths"][0] == [first]


@pytest.mark.slow
@pytest.mark.parametrize("objective", list(OBJECTIVES))
@pytest.mark.parametrize("world", [2, 4], ids=["2x2_groups_on_one_process", "4x1_groups_span_processes"])
def test_every_objective_trains_alike_in_every_layout(layouts, objective, world):
    single, split = layouts[1][objective], layouts[world][objective]
    assert split["terms"].keys() == single["terms"].keys()
    for term, value in single["terms"].items():  # the mean of the processes' terms is the one-process term
        assert split["terms"][term] == pytest.approx(value, rel=1e-5, abs=1e-7), term
    assert split["grads"].keys() == single["grads"].keys()
    for name, grad in single["grads"].items():  # tolerance relative to each tensor's scale: summation order
        error = (split["grads"][name] - grad).abs().max()
        assert error <= 1e-5 * grad.abs().max() + 1e-9, (name, error.item(), grad.abs().max().item())
