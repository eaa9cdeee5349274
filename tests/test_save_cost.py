"""What saving costs a run: each checkpoint's bytes written once (last.ckpt a hard link of the step file), each
file hashed once on a resume, and base.yaml's cadence under 2% of a study run (docs/performance.md)."""

import os
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

import jepa_lit.atomic
from jepa_lit.atomic import WriteRefused, atomic_write, link_with_record, read_integrity, write_bytes
from jepa_lit.checkpointing.integrity import VERIFIED_ENV, checkpoint_problem

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"

# The planning figures of docs/performance.md ("The cost of saving"): the study's ViT-B checkpoint, and
# what rank 0 sustains for torch.save + SHA-256 + fsync on a GPU node's local NVMe (serialising and hashing
# at 1.5-2 GB/s each, one after the other in one thread: ~0.75 GB/s together).
CHECKPOINT_BYTES = {"ucf101": 1.505e9, "mixed": 1.505e9, "synthetic": 1.160e9}
SAVE_BYTES_PER_S = 0.75e9
FASTEST_STEP_S = 0.020  # the study's step on a modern GPU: 20-70 ms


@pytest.fixture
def hash_calls(monkeypatch):
    """Counts the content hashes of files, by file name, from a clean slate (no file known as verified)."""
    calls = Counter()
    hash_file = jepa_lit.atomic.file_sha256

    def counted(path):
        calls[Path(path).name] += 1
        return hash_file(path)

    monkeypatch.setattr(jepa_lit.atomic, "file_sha256", counted)
    monkeypatch.delenv(VERIFIED_ENV, raising=False)
    return calls


def checkpoint_file(path: Path) -> Path:
    atomic_write(path, lambda f: torch.save({"state_dict": {"w": torch.arange(10.0)}}, f), integrity=True)
    return path


def test_a_checked_file_is_hashed_once_per_process_and_by_the_processes_it_starts(tmp_path, hash_calls,
                                                                                    monkeypatch):
    last = checkpoint_file(tmp_path / "last.ckpt")
    for _ in range(3):  # where --ckpt_path is resolved, checked, and loaded
        assert checkpoint_problem(last) is None
    assert hash_calls == {"last.ckpt": 1}
    # a DDP rank (or a sweep's fit) started by this process inherits the environment: no hash of its own
    inherited = os.environ[VERIFIED_ENV]
    monkeypatch.setenv(VERIFIED_ENV, inherited)
    assert checkpoint_problem(last) is None and hash_calls == {"last.ckpt": 1}


def test_a_file_changed_after_its_check_is_hashed_again(tmp_path, hash_calls):
    last = checkpoint_file(tmp_path / "last.ckpt")
    assert checkpoint_problem(last) is None
    data = bytearray(last.read_bytes())
    data[len(data) // 2] ^= 0xFF  # corrupted in place, same size
    last.write_bytes(bytes(data))
    stat = last.stat()
    os.utime(last, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))  # whatever the clock's resolution
    assert "content hash differs" in checkpoint_problem(last)
    assert hash_calls == {"last.ckpt": 2}
    replaced = checkpoint_file(tmp_path / "other.ckpt")
    os.replace(replaced, last)  # another file under the same name (a new inode), without its record
    write_bytes(tmp_path / "last.ckpt.sha256.json", (tmp_path / "other.ckpt.sha256.json").read_bytes(), kind="json")
    assert checkpoint_problem(last) is None and hash_calls["last.ckpt"] == 3


@pytest.mark.slow
def test_a_resume_through_the_cli_hashes_the_checkpoint_once(tmp_path, hash_calls):
    from jepa_lit.cli import run_cli

    args = ["--config", str(EXPERIMENTS / "smoke.yaml"), "--model.init_args.encoder.init_args.depth", "2",
            "--data.init_args.num_clips", "8", "--data.init_args.crop_size", "32", "--data.init_args.batch_size",
            "2", "--trainer.enable_progress_bar", "false", "--trainer.limit_val_batches", "0",
            "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.default_root_dir", str(tmp_path)]
    run_cli(["fit", *args, "--trainer.max_steps", "2"])
    assert not hash_calls  # saving hashes the bytes as they are written, never by reading the file back
    cli = run_cli(["fit", *args, "--trainer.max_steps", "3", "--ckpt_path", "last"])
    assert cli.trainer.global_step == 3
    assert hash_calls == {"last.ckpt": 1}  # --ckpt_path last resolved, checked and loaded: one hash


def test_last_is_a_hard_link_of_the_step_file_with_its_own_record(tmp_path):
    step = checkpoint_file(tmp_path / "step=4.ckpt")
    (tmp_path / "last.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(WriteRefused, match="last.ckpt is a text file"):  # a second name replaces its own kind only
        link_with_record(step, tmp_path / "last.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "last.ckpt")  # an older last.ckpt
    link_with_record(step, tmp_path / "last.ckpt")
    last = tmp_path / "last.ckpt"
    assert last.stat().st_ino == step.stat().st_ino and last.stat().st_nlink == 2
    assert read_integrity(last) == {**read_integrity(step), "file": "last.ckpt"}
    assert checkpoint_problem(last) is None
    step.unlink()  # the step file leaves the top k: last.ckpt keeps the bytes
    assert checkpoint_problem(last) is None and torch.load(last)["state_dict"]["w"][3] == 3.0


def saves_per_run(regime: str) -> tuple[int, int]:
    """(checkpoint writes, max_steps) of a regime's runs with base.yaml's callbacks and the regime's steps."""
    base = yaml.safe_load((EXPERIMENTS / "base.yaml").read_text())
    regime_trainer = yaml.safe_load((EXPERIMENTS / "regimes" / f"{regime}.yaml").read_text()).get("trainer", {})
    max_steps = regime_trainer.get("max_steps", base["trainer"]["max_steps"])
    callbacks = regime_trainer.get("callbacks", base["trainer"]["callbacks"])
    writes = 0
    for spec in callbacks:
        name, args = spec["class_path"].rsplit(".", 1)[1], spec.get("init_args", {})
        if name == "EpochEndCheckpoint":
            raise AssertionError("an epoch-end checkpoint in the study's configs: UCF-101 has ~298 steps per epoch")
        if name == "RunCheckpoint":
            assert args["save_last"] is True  # a hard link of the step file: no bytes of its own
            every = args["every_n_train_steps"]
            # the periodic saves (each last.ckpt a link), and RunCheckpoint's own save of the final step
            writes += max_steps // every + (1 if max_steps % every else 0)
    return writes, max_steps


@pytest.mark.parametrize("regime", sorted(CHECKPOINT_BYTES))
def test_the_study_saving_cadence_costs_under_2_percent_of_a_run(regime):
    writes, max_steps = saves_per_run(regime)
    seconds_saving = writes * CHECKPOINT_BYTES[regime] / SAVE_BYTES_PER_S
    share = seconds_saving / (max_steps * FASTEST_STEP_S)
    assert writes >= 1  # the final step is kept
    assert share < 0.02, (regime, writes, f"{share:.1%}")
