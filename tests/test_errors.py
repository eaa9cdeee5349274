"""Bad input ends in one message naming the file / key / value and exit status 2, not a traceback; the
stack comes back with --traceback. Plus the SIGTERM path of a fit (slow) and the CPU precision warning."""

from __future__ import annotations

import os
import signal
import tomllib
from pathlib import Path

import lightning as L
import pytest
import torch

import jepa_lit
from jepa_lit.cli import main
from jepa_lit.errors import ConfigError, DataError, JepaLitError, run_command
from jepa_lit.precision import cpu_precision_fallback

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "experiments" / "smoke.yaml")
TINY = ["--model.init_args.encoder.init_args.depth", "2", "--data.init_args.num_clips", "8",
        "--data.init_args.crop_size", "32",
        "--data.init_args.batch_size", "2", "--trainer.enable_progress_bar", "false"]


def run_main(capsys, argv: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    return info.value.code, capsys.readouterr().err


def files(tmp_path: Path, case: str) -> list[str]:
    """The command line of each hostile case (its files written under tmp_path)."""
    if case == "yaml syntax":
        (tmp_path / "bad.yaml").write_text(f"config: {SMOKE}\ntrainer:\n  max_steps: [3\n")
        return ["fit", "--config", str(tmp_path / "bad.yaml")]
    if case == "missing parent":
        (tmp_path / "child.yaml").write_text("config: [basee.yaml]\n")
        return ["fit", "--config", str(tmp_path / "child.yaml")]
    if case == "batch size 0":
        return ["fit", "--config", SMOKE, *TINY, "--data.init_args.batch_size", "0"]
    if case == "crop not divisible by patch":
        return ["fit", "--config", SMOKE, *TINY, "--data.init_args.crop_size", "40"]
    if case == "clip not divisible by tubelet":
        return ["fit", "--config", SMOKE, *TINY, "--data.init_args.num_frames", "7"]
    if case == "not a checkpoint":
        (tmp_path / "notes.ckpt").write_text("these are my notes\n")
        return ["validate", "--config", SMOKE, *TINY, "--ckpt_path", str(tmp_path / "notes.ckpt")]
    if case == "data root missing":
        return ["fit", "--config", str(REPO / "experiments" / "mixed_ld.yaml"), "--data.init_args.root",
                str(tmp_path / "no_data"), "--trainer.logger", "false"]
    raise AssertionError(case)


CASES = {  # case -> what the one message must say
    "yaml syntax": "bad.yaml:4:1: not valid YAML (expected ',' or ']'",
    "missing parent": "child.yaml: config: names 'basee.yaml', but",
    "batch size 0": "data.init_args.batch_size=0; expected a positive integer",
    "crop not divisible by patch": "data.init_args.crop_size=40 is not a multiple of "
                                   "model.init_args.encoder.init_args.patch_size=16",
    "clip not divisible by tubelet": "data.init_args.num_frames=7 is not a multiple of "
                                     "model.init_args.encoder.init_args.tubelet_size=2",
    "not a checkpoint": "notes.ckpt: cannot be used as a checkpoint: it is not a checkpoint (neither the zip archive",
    "data root missing": "root folder not found",
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_message_with_exit_status_2(tmp_path, capsys, monkeypatch, case):
    monkeypatch.delenv("JEPA_LIT_TRACEBACK", raising=False)
    monkeypatch.chdir(tmp_path)
    code, err = run_main(capsys, files(tmp_path, case))
    assert code == 2, err
    assert CASES[case] in err and err.count(CASES[case]) == 1, err  # once, not once per rank
    assert "Traceback" not in err and "--traceback" in err


def test_traceback_flag_shows_the_stack(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("JEPA_LIT_TRACEBACK", raising=False)
    code, err = run_main(capsys, [*files(tmp_path, "missing parent"), "--traceback"])
    assert code == 2 and "Traceback" in err and "config: names 'basee.yaml'" in err
    os.environ.pop("JEPA_LIT_TRACEBACK", None)


def test_the_handler_uses_each_error_types_status(capsys):
    def failing(error):
        def command(argv):
            raise error
        return command

    assert run_command("t", failing(DataError("x.json: not valid JSON")), []) == 2
    assert "t: error: x.json: not valid JSON" in capsys.readouterr().err
    from jepa_lit.guard import SkippedStepsError

    assert run_command("t", failing(SkippedStepsError("too many")), []) == 1
    with pytest.raises(KeyError):  # not ours: a bug, with its stack
        run_command("t", failing(KeyError("k")), [])
    from jepa_lit.data.records import LayoutError
    from jepa_lit.study.registry import RecordError

    assert issubclass(LayoutError, DataError) and issubclass(LayoutError, FileNotFoundError)
    assert issubclass(RecordError, JepaLitError) and issubclass(ConfigError, ValueError)


@pytest.mark.parametrize("flags, kept", [("fpu sse2 avx2", False), ("fpu avx512f avx512_bf16", True),
                                         ("fpu amx_bf16 amx_tile", True)])
def test_the_cpu_precision_warning_reads_the_cpus_bf16_units(tmp_path, monkeypatch, flags, kept):
    from lightning.fabric.utilities.data import AttributeDict

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    config = AttributeDict(accelerator="auto", precision="bf16-mixed")
    with pytest.warns(UserWarning) as warned:
        cpu_precision_fallback(config, str(cpuinfo))
    message = str(warned[0].message)
    assert (config.precision == "bf16-mixed") == kept
    assert "20x" not in message
    assert ("announces " + ("amx_bf16" if "amx" in flags else "avx512_bf16") if kept
            else "announces no bf16 units") in message


def test_the_package_version_has_one_source():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    tool = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["dynamic"]
    assert tool["version"] == {"attr": "jepa_lit.__version__"} and jepa_lit.__version__


class SigtermAtStep(L.Callback):
    """Sends this process SIGTERM after training step ``step``, as SLURM does before preempting a job."""

    def __init__(self, step: int = 2):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.slow
def test_sigterm_saves_a_resumable_checkpoint_and_exits_143(tmp_path, capsys):
    args = ["--config", SMOKE, *TINY, "--trainer.limit_val_batches", "0", "--trainer.logger.init_args.save_dir",
            str(tmp_path), "--trainer.default_root_dir", str(tmp_path)]
    code, err = run_main(capsys, ["fit", *args, "--trainer.max_steps", "50",
                                  "--trainer.callbacks+=test_errors.SigtermAtStep"])
    assert code == 143 and "stopped by SIGTERM" in err
    last = tmp_path / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    # signalled after step 1's all-reduce (which carries the stop request), the fit stops after step 2
    assert torch.load(last, weights_only=False)["global_step"] == 3
    from jepa_lit.cli import run_cli

    cli = run_cli(["fit", *args, "--trainer.max_steps", "4", "--ckpt_path", "last"])  # the preempted run goes on
    assert cli.trainer.global_step == 4


# ----- data: bad files and lists are named, not silently left out ----------------------------------
def test_an_imagenet100_dangling_link_is_reported_not_silently_left_out(tmp_path, caplog):
    from jepa_lit.data.fixtures import IN100_CLASSES, make_imagenet100
    from jepa_lit.data.imagenet100 import ImageNet100DataModule, index_imagenet100

    make_imagenet100(tmp_path, broken=False)
    link = tmp_path / "train" / IN100_CLASSES[0] / "dangling.JPEG"
    link.symlink_to(tmp_path / "gone.JPEG")
    records, problems = index_imagenet100(str(tmp_path), "train")
    assert [(p.where, p.reason) for p in problems if "dangling" in p.reason] == [
        (f"train/{IN100_CLASSES[0]}/dangling.JPEG", f"dangling link to {tmp_path / 'gone.JPEG'} (no such file)")]
    assert str(link) not in [r.path for r in records]
    with caplog.at_level("WARNING"):  # on_error: skip counts and logs it
        ImageNet100DataModule(root=str(tmp_path), num_workers=0)._records("train")
    assert "skipped annotation entry" in caplog.text and "dangling link" in caplog.text
    with pytest.raises(DataError, match="dangling.JPEG: dangling link"):
        ImageNet100DataModule(root=str(tmp_path), num_workers=0, on_error="raise")._records("train")


@pytest.mark.parametrize("change, message", [
    ("duplicate", r"trainlist01.txt:\d+: .* is listed again \(first at line 1\)"),
    ("test clip", r"trainlist01.txt:\d+: .* is a test clip of split 1 \(.*testlist01.txt:1\)"),
])
def test_ucf101_lists_with_duplicates_or_test_clips_in_train_are_errors(tmp_path, change, message):
    from jepa_lit.data.fixtures import make_ucf101
    from jepa_lit.data.ucf101 import index_ucf101

    make_ucf101(tmp_path, broken=False)
    lists = tmp_path / "ucfTrainTestlist"
    train = (lists / "trainlist01.txt").read_text().splitlines()
    test = (lists / "testlist01.txt").read_text().splitlines()
    added = train[0] if change == "duplicate" else f"{test[0]} 1"
    (lists / "trainlist01.txt").write_text("\n".join([*train, added]) + "\n")
    with pytest.raises(DataError, match=message):
        index_ucf101(str(tmp_path), 1, "train")


def test_a_permission_denied_video_is_labelled_so(tmp_path, monkeypatch):
    import av

    from jepa_lit.data import decode
    from jepa_lit.data.check import check_video
    from jepa_lit.data.fixtures import write_video

    video = write_video(tmp_path / "v.mp4", 8)
    # chmod 000 does not stop root (as tests may run): play the error PyAV raises for EACCES instead
    def denied(*args, **kwargs):
        raise av.error.PermissionError(13, "Permission denied", str(video))

    monkeypatch.setattr(decode.av, "open", denied)
    assert check_video(str(video)) == "permission denied (the file is not readable by this user)"
    with pytest.raises(decode.VideoDecodeError, match="permission denied"):
        decode.open_video(video)


def test_data_check_and_training_announce_the_same_frame_count(tmp_path):
    from jepa_lit.data import decode
    from jepa_lit.data.check import check_video
    from jepa_lit.data.fixtures import _truncate, write_video

    video = write_video(tmp_path / "t.avi", 30)
    _truncate(video)
    container = decode.open_video(video)
    announced = decode.announced_frame_count(container)
    assert decode.estimated_frame_count(container) == announced  # the count training draws clips from
    header = container.streams.video[0].frames
    container.close()
    # the header says 30 frames, its duration half as many: both tools now say the duration's count
    assert header == 30 and announced == 15
    assert f"it announces {announced} " in check_video(str(video))
