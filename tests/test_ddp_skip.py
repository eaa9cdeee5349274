"""A step skipped by the loss guard under DDP (2 gloo ranks): a NaN on one rank only makes every rank skip
that step (no optimizer update, no EMA update, the same counters), and the run ends where one process
that skipped the same step ends."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_skip.py")


def run(out_dir: Path, devices: int, batch: int) -> list[dict]:
    out_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1]), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(SCRIPT), str(out_dir), str(devices), str(batch)],
                            capture_output=True, text=True, timeout=600, env=env, cwd=out_dir)
    assert result.returncode == 0, result.stderr[-3000:]
    return [torch.load(out_dir / f"rank{r}.pt") for r in range(devices)]


@pytest.mark.slow
def test_a_nan_on_one_rank_skips_the_step_on_every_rank_as_one_process_does(tmp_path):
    single, = run(tmp_path / "single", devices=1, batch=4)
    ranks = run(tmp_path / "ddp", devices=2, batch=2)
    for record in (single, *ranks):
        assert record["skipped"] == 1 and record["batches"] == 3 and record["global_step"] == 3
        assert record["adam_steps"] == [2.0]  # AdamW stepped twice: the skipped step left its moments alone
        online, target = record["encoder_by_step"], record["target_by_step"]
        assert torch.equal(online[1], online[0]) and torch.equal(target[1], target[0])  # step 1: nothing moved
        assert not torch.equal(online[2], online[1]) and not torch.equal(target[2], target[1])
        assert all(torch.isfinite(v).all() for v in record["state_dict"].values())
        assert record["lr_by_step"] == single["lr_by_step"]  # the schedule counts the skipped step, as Lightning does
    for name, value in ranks[0]["state_dict"].items():  # DDP: the ranks hold the same weights
        assert torch.equal(ranks[1]["state_dict"][name], value), name
    # ... and those of one process, up to summation order. AdamW divides by sqrt(v): a gradient element near 0
    # moves by up to lr whatever its rounding, so the bound is 5% of one step's lr (an extra or a missing
    # step would move weights by about lr).
    lr = max(single["lr_by_step"])
    for name, value in single["state_dict"].items():
        error = (ranks[0]["state_dict"][name] - value).abs().max()
        assert error <= 1e-5 * value.abs().max() + 0.05 * lr, (name, error.item(), lr)
