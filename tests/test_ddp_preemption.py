"""SIGTERM under DDP (2 gloo ranks on the CPU): however many signals reach whichever ranks, at any point
of a step or a checkpoint save, every rank stops at the same step within a bounded time, ``last.ckpt``
holds that step, the fit exits 143, and the resumed run ends with the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch

from jepa_lit.callbacks.preemption import CheckpointOnSigterm, replace_lightning_sigterm_handler

REPO = Path(__file__).resolve().parents[1]
JEPA_LIT = Path(sys.executable).with_name("jepa-lit")
STEPS = 6  # 2 batches per rank and epoch: the runs cross epoch ends (and their checkpoint saves)
TIMEOUT = 240  # generous for a loaded machine; an idle 2-core one takes ~10 s per fit


def fit(root: Path, *extra: str) -> tuple[subprocess.CompletedProcess, float]:
    """``jepa-lit fit`` of the smoke config at toy size on 2 gloo ranks, in a session of its own; returns
    the result and the seconds until every process of that session (both ranks) had ended."""
    args = [str(JEPA_LIT), "fit", "--config", str(REPO / "experiments" / "smoke.yaml"),
            "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.accelerator", "cpu",
            "--trainer.precision", "32-true", "--trainer.max_steps", str(STEPS),
            "--trainer.limit_val_batches", "0", "--trainer.num_sanity_val_steps", "0",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.logger.init_args.save_dir", str(root), "--trainer.default_root_dir", str(root),
            "--model.init_args.encoder.init_args.depth", "1", "--model.init_args.predictor_depth", "1",
            "--model.init_args.encoder.init_args.img_size", "32", "--data.init_args.crop_size", "32",
            "--data.init_args.num_clips", "8", "--data.init_args.batch_size", "2", *extra]
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "OMP_NUM_THREADS": "1",
           "NO_ALBUMENTATIONS_UPDATE": "1"}
    start = time.monotonic()
    process = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=TIMEOUT)
        while time.monotonic() - start < TIMEOUT:  # rank 1 is rank 0's child: wait for the whole session
            try:
                os.killpg(process.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("a rank still runs after rank 0 ended")
    finally:
        try:
            os.killpg(process.pid, signal.SIGKILL)  # only on failure: nothing of the session is left otherwise
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(args, process.returncode, out, err), time.monotonic() - start


def last_checkpoint(root: Path) -> dict:
    return torch.load(root / "smoke" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False,
                      map_location="cpu")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("uninterrupted")
    result, _ = fit(root)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = last_checkpoint(root)
    assert checkpoint["global_step"] == STEPS
    return checkpoint["state_dict"]


@pytest.mark.slow
@pytest.mark.parametrize("signals, stop_step", [
    # steps counted from 0; last.ckpt's global_step counts the steps done. A signal before a step's all-reduce
    # (in its forward) stops after that step, one after it (in backward, in a save) after the next step.
    ("SigtermGroupTwice", 3),  # each rank gets 2: in forward (step 2) and in backward of step 2 -> after step 2
    ("SigtermRankOne", 4),     # rank 1 alone, in backward of step 2 -> after step 3
    ("SigtermDuringSave", 3),  # in the save after step 1, then in the SIGTERM save itself -> after step 2
])
def test_sigterm_stops_every_rank_at_one_step_and_resumes_exactly(tmp_path, uninterrupted, signals, stop_step):
    result, seconds = fit(tmp_path, f"--trainer.callbacks+=ddp_preemption.{signals}")
    assert result.returncode == 143, result.stderr[-3000:]
    assert result.stderr.count("stopped by SIGTERM") == 2, result.stderr[-3000:]  # both ranks exit 143
    assert seconds < TIMEOUT
    checkpoint = last_checkpoint(tmp_path)
    assert checkpoint["global_step"] == stop_step
    if signals == "SigtermDuringSave":  # the save the signals interrupted completed
        assert torch.load(tmp_path / "extra.ckpt", weights_only=False)["global_step"] == 2
    resumed, _ = fit(tmp_path, "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = last_checkpoint(tmp_path)
    assert final["global_step"] == STEPS and not list(tmp_path.glob("smoke/*/checkpoints/last-v*.ckpt"))
    assert final["state_dict"].keys() == uninterrupted.keys()
    different = [k for k, v in uninterrupted.items() if not torch.equal(final["state_dict"][k], v)]
    assert not different, different[:5]


def test_our_handler_replaces_lightnings_sigterm_handler():
    """The one reach into Lightning's private signal connector still works with the installed version: the
    callback's handler is the one SIGTERM calls; Lightning records nothing (its loops never stop a rank
    on their own) and restores the previous handler at its teardown."""
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    callback = CheckpointOnSigterm()
    replace_lightning_sigterm_handler(trainer, callback.on_sigterm)
    before = signal.getsignal(signal.SIGTERM)
    trainer._signal_connector.register_signal_handlers()  # what Trainer._run does before training
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert callback.signals == 2 and not trainer.received_sigterm
    finally:
        trainer._signal_connector.teardown()
    assert signal.getsignal(signal.SIGTERM) == before


WORKERS_SURVIVE = """
import os, signal, time
from jepa_lit.data.synthetic import SyntheticMotionDataModule
signal.signal(signal.SIGTERM, lambda signum, frame: None)  # the rank's own handler (counts; here: nothing)
data = SyntheticMotionDataModule(num_clips=16, num_frames=4, crop_size=32, batch_size=2, num_workers=1)
data.setup("fit")
for loader in (data.train_dataloader(), data.val_dataloader()):
    batches = iter(loader)
    next(batches)
    group = os.getpgid(0)
    assert group == os.getpid() > 1  # this test's own session: nothing else is signalled
    if os.fork() == 0:  # from another process, as timeout and slurmstepd send it (the group includes it)
        os.killpg(group, signal.SIGTERM)
        os._exit(0)
    time.sleep(1.0)
    next(batches)  # the worker is still there
print("ok")  # and the exit ends the workers (multiprocessing terminates them): no hang
"""


@pytest.mark.slow
def test_loader_workers_outlive_a_sigterm_to_the_process_group(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", WORKERS_SURVIVE], capture_output=True, text=True, timeout=TIMEOUT,
                            env=env, cwd=tmp_path, start_new_session=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
