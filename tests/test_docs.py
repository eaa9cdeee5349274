"""The documentation holds: the objectives tutorial runs as written, links resolve, the pictures reach
TensorBoard, the probe's confusion matrix reaches the results JSON, and typical typos get helpful errors.

The tutorial's three files are taken from the code blocks of docs/objectives.md (a block whose first
line is ``# file: <path>``) and written under a temporary folder, never into the repository: the
objective module is found through ``jepa_lit.objectives.__path__``, the YAML next to a copy of
experiments/smoke.yaml.
"""

from __future__ import annotations

import math
import importlib
import importlib.util
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import jepa_lit.objectives
from jepa_lit.cli import main, run_cli

REPO = Path(__file__).resolve().parents[1]
DOCS = sorted((REPO / "docs").glob("*.md"))
SMOKE = str(REPO / "experiments" / "smoke.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
TINY_FIT = ["--model.init_args.encoder.init_args.depth", "2", "--data.init_args.num_clips", "8",
            "--data.init_args.batch_size", "2", "--trainer.max_steps", "2", "--trainer.limit_val_batches", "0", *QUIET]
FILE_HEADER = re.compile(r"^#\s*file:\s*(\S+)")
pytestmark = pytest.mark.filterwarnings("ignore:LightningCLI's args parameter", "ignore:The number of training batches")


def tutorial_files(path: Path = REPO / "docs" / "objectives.md") -> dict[str, str]:
    """{relative path: text} of the fenced code blocks that start with ``# file: <path>``."""
    files = {}
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", path.read_text(), flags=re.S | re.M):
        header = FILE_HEADER.match(block)
        if header:
            files[header.group(1)] = block
    return files


def tensorboard_images(run_dir: Path) -> dict[str, list]:
    """{tag: [image events]} of the TensorBoard event files in ``run_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    return {tag: events.Images(tag) for tag in events.Tags()["images"]}


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    """The tutorial's objective, test and YAML written from the doc, and a two-step fit of the YAML."""
    root = tmp_path_factory.mktemp("tutorial")
    files = tutorial_files()
    assert set(files) == {"jepa_lit/objectives/variance.py", "experiments/smoke_variance.yaml", "tests/test_variance.py"}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    shutil.copy(SMOKE, root / "experiments" / "smoke.yaml")  # the YAML stacks smoke.yaml from its own folder
    jepa_lit.objectives.__path__.append(str(root / "jepa_lit" / "objectives"))
    try:
        spec = importlib.util.spec_from_file_location("tutorial_test_variance", root / "tests" / "test_variance.py")
        test_module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(test_module)
        cli = run_cli(["fit", "--config", str(root / "experiments" / "smoke_variance.yaml"), *TINY_FIT,
                       "--trainer.logger.init_args.save_dir", str(root / "runs"),
                       "--trainer.default_root_dir", str(root / "runs")])
        yield cli, test_module, root
    finally:
        jepa_lit.objectives.__path__.remove(str(root / "jepa_lit" / "objectives"))
        sys.modules.pop("jepa_lit.objectives.variance", None)


@pytest.mark.slow
def test_tutorial_test_passes(tutorial):
    _, test_module, _ = tutorial
    tests = [getattr(test_module, name) for name in dir(test_module) if name.startswith("test_")]
    assert len(tests) == 2
    for test in tests:
        test()


@pytest.mark.slow
def test_tutorial_objective_trains_two_steps_through_the_cli(tutorial):
    cli, _, _ = tutorial
    assert cli.trainer.global_step == 2
    assert [type(o).__name__ for o in cli.model.objectives] == ["VarianceFloor"]
    assert "train/variance" in cli.trainer.logged_metrics
    gradients = next(c for c in cli.trainer.callbacks if type(c).__name__ == "TermGradientNorms")
    assert gradients.last_norms["grad_norm/variance"] > 0  # the term reaches the encoder


@pytest.mark.slow
def test_mask_images_are_written_to_tensorboard(tutorial):
    cli, _, _ = tutorial
    callback = next(c for c in cli.trainer.callbacks if type(c).__name__ == "MaskImages")
    frames, size = 4, 64  # smoke.yaml: 8-frame clips at 64 px, shown as 4 frames upscaled to 128 px
    cell, pad, rows = 128, 2, 1 + cli.model.mask_sampler.num_generators
    expected = (3, rows * (cell + pad) + pad, frames * (cell + pad) + pad)
    assert math.ceil(callback.min_size / size) * size == cell  # whole-factor upscale to min_size
    assert tuple(callback.last_image.shape) == expected
    images = tensorboard_images(Path(cli.trainer.log_dir))
    (event,) = images["masks/train_clip"]  # step 0 of 2 (every 20 steps)
    assert (event.step, event.height, event.width) == (0, expected[1], expected[2])
    # the target tokens are tinted red: generator rows are redder than the input row
    image = callback.last_image
    top = image[:, pad : pad + cell]
    second = image[:, cell + 2 * pad : 2 * cell + 2 * pad]
    assert (second[0] - second[1:].mean(0)).mean() > (top[0] - top[1:].mean(0)).mean()


@pytest.mark.slow
def test_probe_confusion_matrix_in_results_json_and_tensorboard(tutorial, capsys):
    cli, _, root = tutorial
    ckpt = Path(cli.trainer.checkpoint_callback.last_model_path)
    out = root / "probe.json"
    logger = {"class_path": "lightning.pytorch.loggers.TensorBoardLogger",
              "init_args": {"save_dir": str(root / "probe_logs"), "name": "probe"}}
    main(["test", "--probe", "synthetic", "--ckpt_path", str(ckpt), "--data.num_clips", "16", "--data.crop_size", "32",
          "--trainer.max_epochs", "1", "--model.bootstrap_samples", "10", "--output", str(out),
          "--trainer.logger", json.dumps(logger), *QUIET])
    metrics = json.loads(out.read_text())["metrics"]
    matrix = torch.tensor(metrics["confusion_matrix"])
    assert matrix.shape == (8, 8) and int(matrix.sum()) == metrics["num_test_clips"]
    assert int(matrix.diagonal().sum()) == round(metrics["top1"] * metrics["num_test_clips"] / 100)
    assert metrics["confusion_matrix_layout"].startswith("rows: true class")
    (event,) = tensorboard_images(root / "probe_logs" / "probe" / "version_0")["test/confusion_matrix"]
    assert event.height == event.width == 8 * (256 // 8)


@pytest.mark.slow
def test_the_cpu_ddp_command_of_distributed_md_runs(tmp_path):
    """docs/distributed.md's two-process gloo run, to its end (every rank must join the end-of-fit summary)."""
    command = [sys.executable, "-m", "jepa_lit.cli", "fit", "--config", SMOKE, "--trainer.accelerator", "cpu",
               "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.max_steps", "1",
               "--trainer.limit_val_batches", "0", *TINY_FIT[:6], "--trainer.logger.init_args.save_dir", str(tmp_path),
               "--trainer.default_root_dir", str(tmp_path), *QUIET]
    assert "--trainer.strategy ddp --trainer.max_steps 2" in (REPO / "docs" / "distributed.md").read_text()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"run directory:   {tmp_path / 'smoke' / 'version_0'}" in result.stdout, result.stdout[-2000:]


LINK = re.compile(r"(?<!\!)\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("doc", [REPO / "README.md", *DOCS], ids=lambda p: p.name)
def test_links_resolve(doc):
    links = [target for target in LINK.findall(doc.read_text()) if not re.match(r"[a-z]+:", target)]
    broken = [t for t in links if t.split("#")[0] and not (doc.parent / t.split("#")[0]).exists()]
    assert not broken, f"{doc.name}: links to missing files: {broken}"


@pytest.mark.parametrize("doc", [REPO / "README.md", *DOCS], ids=lambda p: p.name)
def test_table_rows_have_as_many_cells_as_their_header(doc):
    """A ``|`` inside a table cell (even in code) must be escaped, or GitHub splits the cell."""
    text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.S | re.M)
    for table in re.findall(r"(?:^\|.*\n)+", text, flags=re.M):
        widths = [len(re.split(r"(?<!\\)\|", row)) for row in table.splitlines()]
        assert len(set(widths)) == 1, f"{doc.name}: uneven table rows:\n{table}"


def test_readme_links_every_doc():
    readme = (REPO / "README.md").read_text()
    assert DOCS and all(f"docs/{doc.name}" in readme for doc in DOCS)
    assert "make demo" in readme and "make test" in readme


# ----- what the tool says back -----------------------------------------------------------------
def exit_message(capsys, call) -> str:
    with pytest.raises(SystemExit) as info:
        call()
    captured = capsys.readouterr()
    return f"{info.value.code if not isinstance(info.value.code, int) else ''}\n{captured.out}\n{captured.err}"


@pytest.mark.slow
def test_a_mistyped_key_names_the_nearest_valid_one(capsys):
    text = exit_message(capsys, lambda: run_cli(["fit", "--config", SMOKE, "--trainer.max_stpes", "3"]))
    assert "trainer.max_stpes" in text and "did you mean 'trainer.max_steps'" in text
    text = exit_message(capsys, lambda: run_cli(["fit", "--config", SMOKE, "--trainer.precision", "bf16-mixd"]))
    assert "'bf16-mixd' is not one of the accepted values; did you mean 'bf16-mixed'?" in text


@pytest.mark.slow
def test_a_mistyped_objective_argument_and_class_name_the_nearest_valid_ones(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text(yaml.safe_dump({"model": {"init_args": {"objectives": [
        {"class_path": "jepa_lit.objectives.Delta", "init_args": {"wieght": 0.5}}]}}}))
    text = exit_message(capsys, lambda: run_cli(["fit", "--config", SMOKE, "--config", str(config)]))
    assert "Delta takes no argument 'wieght'; did you mean 'weight'?" in text
    text = exit_message(capsys, lambda: run_cli(["fit", "--config", SMOKE, "--model.init_args.mask_sampler",
                                                 "jepa_lit.masks.MotionGuidd"]))
    assert "did you mean jepa_lit.masks.MotionGuided?" in text


def test_a_mistyped_probe_name_names_the_nearest_benchmark(capsys):
    text = exit_message(capsys, lambda: main(["test", "--probe", "ucf", "--ckpt_path", "x.ckpt"]))
    assert "--probe 'ucf' is not a benchmark" in text and "did you mean 'ucf101'?" in text


@pytest.mark.slow
def test_a_missing_checkpoint_names_the_nearest_file(tmp_path, capsys):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.ckpt").write_bytes(b"")
    missing = str(tmp_path / "checkpoints" / "lats.ckpt")
    text = exit_message(capsys, lambda: main(["validate", "--config", SMOKE, "--ckpt_path", missing]))
    assert f"checkpoint not found: {missing}" in text and f"did you mean {tmp_path}/checkpoints/last.ckpt?" in text
    text = exit_message(capsys, lambda: main(["test", "--probe", "synthetic", "--ckpt_path", missing, *QUIET]))
    assert "did you mean" in text and "last.ckpt" in text


@pytest.mark.slow
def test_a_wrong_dataset_root_names_the_key_and_the_nearest_folder(tmp_path, capsys):
    (tmp_path / "ucf101").mkdir()
    text = exit_message(capsys, lambda: main([
        "fit", "--config", SMOKE, "--data", "jepa_lit.data.ucf101.UCF101DataModule", "--data.root",
        str(tmp_path / "ucf10"), "--data.num_frames", "8", "--data.crop_size", "64", "--data.num_workers", "0",
        "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path), *QUIET]))
    assert "root folder not found" in text and f"did you mean {tmp_path / 'ucf101'}?" in text
    assert "data.init_args.root" in text and "Expected layout" in text
    from jepa_lit.data.check import main as data_check

    assert data_check(["check", "--dataset", "ucf101", "--root", str(tmp_path / "ucf10")]) == 2
    assert f"did you mean {tmp_path / 'ucf101'}?" in capsys.readouterr().err
    text = exit_message(capsys, lambda: data_check(["check", "--dataset", "uc101", "--root", str(tmp_path)]))
    assert "unknown dataset 'uc101'" in text and "did you mean 'ucf101'?" in text


def test_data_check_shows_counts_and_an_eta(tmp_path):
    from jepa_lit.data.check import run_check
    from jepa_lit.data.fixtures import make_diving48

    make_diving48(tmp_path / "diving48", broken=False)
    progress = io.StringIO()
    run_check("diving48", str(tmp_path / "diving48"), jobs=1, out=io.StringIO(), progress_every=0,
              progress_out=progress)
    lines = progress.getvalue().splitlines()
    assert any(re.search(r"diving48 train: 6/6 files, [\d.]+ files/s, ETA 0s", line) for line in lines), lines
    assert any(re.search(r"diving48 test: 1/3 files, .* ETA \d+s", line) for line in lines), lines
