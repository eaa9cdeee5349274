"""FWM's cross-covariance from partial sums (no token gathered): the value of gathering every rank's tokens.

The 2-rank case runs this file as a script (2 gloo processes, 5 and 3 rows: cut groups of different
lengths) and compares each rank's value and gradient with one process on the concatenated 8 rows and with
the gathered formula in float64. The columns sit far from zero (offset 1,000, spread 1): a naive
sum(x y^T) - n mean_x mean_y^T in fp32 would lose most digits to cancellation there.

    python tests/test_fwm_partial_sums.py OUT_DIR
"""

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from jepa_lit.objectives.factorized import cross_covariance_penalty

ROWS_PER_RANK = (5, 3)
APP, DYN = 3, 4


def tokens() -> torch.Tensor:
    """[8, APP + DYN] rows, the same in every process; correlated columns far from zero."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(sum(ROWS_PER_RANK), APP + DYN, generator=gen)
    x[:, APP:] += 0.5 * x[:, :1]  # some cross-covariance to penalise
    return x + 1000.0


def gathered_penalty(x: torch.Tensor) -> torch.Tensor:
    """The definition: every token in one matrix, columns mean-centred, mean of C^2 (float64)."""
    x = x.double()
    centred = x - x.mean(0, keepdim=True)
    return (centred[:, :APP].T @ centred[:, APP:] / (x.shape[0] - 1)).square().mean()


def penalty_and_grad(x: torch.Tensor):
    x = x.clone().requires_grad_()
    found = cross_covariance_penalty(x[:, :APP], x[:, APP:])
    value, flag = found if isinstance(found, tuple) else (found, torch.tensor(True))
    value.backward()
    return value.detach(), bool(flag), x.grad


def test_known_value():
    # app [1, 2, 3] and dyn [2, 4, 9]: centred [-1, 0, 1] and [-3, -1, 4]; C = (3 + 0 + 4) / 2 = 3.5
    app = torch.tensor([[1.0], [2.0], [3.0]])
    dyn = torch.tensor([[2.0], [4.0], [9.0]])
    assert cross_covariance_penalty(app, dyn).item() == pytest.approx(3.5**2)
    assert cross_covariance_penalty(app[:1], dyn[:1]) is None  # one token: no covariance


def test_one_process_equals_the_definition():
    x = tokens()
    value, _, _ = penalty_and_grad(x)
    assert value.double().item() == pytest.approx(gathered_penalty(x).item(), rel=1e-4)


@pytest.mark.slow
def test_two_ranks_equal_one_process_on_the_concatenated_batch(tmp_path):
    result = subprocess.run([sys.executable, __file__, str(tmp_path)], capture_output=True, text=True, timeout=300,
                            env={"PYTHONPATH": str(Path(__file__).parents[1]), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    x = tokens()
    value, _, grad = penalty_and_grad(x)
    reference = gathered_penalty(x)
    reference_grad = torch.autograd.functional.jacobian(gathered_penalty, x.double())
    start = 0
    for rank, rows in enumerate(ROWS_PER_RANK):
        out = torch.load(tmp_path / f"rank{rank}.pt")
        assert out["flag"]
        assert out["value"].item() == pytest.approx(value.item(), rel=1e-5)  # the same statistic on every rank
        assert out["value"].double().item() == pytest.approx(reference.item(), rel=1e-4)
        # The backward sums the ranks' gradients onto each local part (2x); DDP's mean over 2 ranks halves it.
        local_grad = out["grad"] / len(ROWS_PER_RANK)
        expected = grad[start:start + rows]
        # Within fp32 rounding of values near 1,000 (ulp 6e-5, against a spread of 1): 2e-5 of the largest.
        scale = grad.abs().max()
        assert (local_grad - expected).abs().max() <= 1e-4 * scale
        assert (local_grad.double() - reference_grad[start:start + rows]).abs().max() <= 1e-4 * scale
        start += rows


def rank_main(rank: int, out_dir: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{out_dir}/store", rank=rank, world_size=2,
                            timeout=timedelta(seconds=60))
    start = sum(ROWS_PER_RANK[:rank])
    value, flag, grad = penalty_and_grad(tokens()[start:start + ROWS_PER_RANK[rank]])
    torch.save({"value": value, "flag": flag, "grad": grad}, f"{out_dir}/rank{rank}.pt")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    import torch.multiprocessing as mp

    torch.set_num_threads(1)
    mp.spawn(rank_main, args=(sys.argv[1],), nprocs=2)
