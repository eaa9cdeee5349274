"""The table of hostile cases in docs/checkpoints.md holds: each row's case is run here and gives the
message (and exit status) the table shows. A row without a case here, or a case without a row, fails.

A message cell is the message with ``…`` where it holds sizes, hashes or absolute paths; the parts between
the ``…`` must appear in the real message in that order. Paths are written relative to the test's folder:
``RUN`` is a run folder (``runs/smoke/version_0``), ``SWEEP`` a sweep folder.
"""

from __future__ import annotations

import errno
import json
import os
import re
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from jepa_lit import atomic
from jepa_lit.atomic import sidecar_path
from jepa_lit.checkpointing import AtomicCheckpointIO
from jepa_lit.cli import main
from jepa_lit.errors import JepaLitError
from jepa_lit.models.vit import VisionTransformer

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "checkpoints.md"
HEADING = "## Hostile cases and what they give now"


def doc_rows() -> dict[str, tuple[str, str]]:
    """case -> (outcome cell, message cell) from the table under HEADING."""
    text = DOC.read_text().split(HEADING, 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if len(cells) == 4 and cells[0].startswith("`") and cells[0] != "`case`":
            rows[cells[0].strip("`")] = (cells[2], cells[3].strip("`"))
    return rows


# ----- the cases: each returns (outcome, message) --------------------------------------------------------
def tiny_checkpoint(data: dict | None = None) -> dict:
    from jepa_lit.module import JEPAModule

    module = JEPAModule(VisionTransformer(size="tiny", depth=1, img_size=32, num_frames=4),
                        predictor_width=32, predictor_depth=1, predictor_heads=2)
    checkpoint = {"state_dict": module.state_dict(), "epoch": 0, "global_step": 5}
    module.on_save_checkpoint(checkpoint)
    checkpoint["jepa_lit"]["data"] = data or {"num_frames": 8, "crop_size": 64}
    return checkpoint


def run_folder(tmp_path: Path) -> Path:
    """RUN/checkpoints with step=2.ckpt (older) and last.ckpt, both with their integrity records."""
    folder = tmp_path / "runs" / "smoke" / "version_0" / "checkpoints"
    io = AtomicCheckpointIO()
    io.save_checkpoint(tiny_checkpoint(), folder / "step=2.ckpt")
    os.utime(folder / "step=2.ckpt", (1, 1))
    io.save_checkpoint(tiny_checkpoint(), folder / "last.ckpt")
    return folder


def cli(capsys, argv: list[str]) -> tuple[str, str]:
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    return f"exit {info.value.code}", err


def export_onto_itself(tmp_path, capsys, monkeypatch):
    last = run_folder(tmp_path) / "last.ckpt"
    return cli(capsys, ["export", str(last), str(last), "--overwrite"])


def export_onto_an_existing_file(tmp_path, capsys, monkeypatch):
    last = run_folder(tmp_path) / "last.ckpt"
    (tmp_path / "OUT.pt").write_bytes(b"an earlier export")
    return cli(capsys, ["export", str(last), str(tmp_path / "OUT.pt")])


def damaged_checkpoint(how: str):
    def case(tmp_path, capsys, monkeypatch):
        last = run_folder(tmp_path) / "last.ckpt"
        data = last.read_bytes()
        if how == "truncated":
            last.write_bytes(data[: len(data) // 2])
        elif how == "corrupted":
            middle = len(data) // 2
            last.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 64]) + data[middle + 64:])
        else:  # notes saved under the checkpoint's name, without a record
            last.write_text("these are my notes\n")
            sidecar_path(last).unlink()
        return cli(capsys, ["export", str(last), str(tmp_path / "OUT.pt")])
    return case


def ckpt_path_last_damaged(tmp_path, capsys, monkeypatch):
    from jsonargparse import Namespace

    from jepa_lit.cli.fit import resolve_last_checkpoint

    last = run_folder(tmp_path) / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    logger = Namespace(init_args=Namespace(save_dir=str(tmp_path / "runs"), name="smoke", version=None))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        resolve_last_checkpoint(Namespace(trainer=Namespace(logger=logger), ckpt_path="last"))
    capsys.readouterr()
    return "warning, resumes", str(caught[0].message)


def disk_full(tmp_path, capsys, monkeypatch):
    last = run_folder(tmp_path) / "last.ckpt"

    def no_space(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic.HashingWriter, "write", no_space)
    with pytest.raises(JepaLitError) as info:
        AtomicCheckpointIO().save_checkpoint(tiny_checkpoint(), last)
    return f"exit {info.value.exit_code}", str(info.value)


def resume_with_other_clip_length(tmp_path, capsys, monkeypatch):
    from jepa_lit.module import JEPAModule

    module = JEPAModule(VisionTransformer(size="tiny", depth=1, img_size=32, num_frames=4),
                        predictor_width=32, predictor_depth=1, predictor_heads=2)
    module._trainer = SimpleNamespace(datamodule=SimpleNamespace(num_frames=16, crop_size=64),
                                      state=SimpleNamespace(fn="fit"))
    with pytest.raises(JepaLitError) as info:
        module.on_load_checkpoint(tiny_checkpoint({"num_frames": 8, "crop_size": 64}))
    return f"exit {info.value.exit_code}", str(info.value)


def probe_at_other_resolution(tmp_path, capsys, monkeypatch):
    from jepa_lit.eval.checkpoint import load_eval_encoder, warn_probe_clip_changes

    frozen = load_eval_encoder(str(run_folder(tmp_path) / "last.ckpt"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        recorded = warn_probe_clip_changes(frozen, SimpleNamespace(num_frames=8, crop_size=32))
    assert len(caught) == 1 and recorded == [str(caught[0].message)]  # the results JSON records it
    return "warning, probes", recorded[0]


def feature_cache_zeroed(tmp_path, capsys, monkeypatch):
    import logging

    from jepa_lit.eval.checkpoint import weights_sha256
    from jepa_lit.eval.features import cache_key, extract_or_load
    from test_eval_features import CPU, tiny_data

    encoder = VisionTransformer(size="tiny", depth=1, num_frames=4, img_size=32).eval()
    key, description = cache_key(weights_sha256(encoder), {}, "mean", "synthetic", {"crop_size": 32})
    cache = tmp_path / "RUN" / "feature_cache"
    sets, _, entry = extract_or_load(encoder, tiny_data(), cache, key, description, "mean", CPU)
    del sets  # the memory map
    features = entry / "train" / "features.npy"
    features.write_bytes(bytes(features.stat().st_size))
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logging.getLogger("jepa_lit.eval").addHandler(handler)
    try:
        extract_or_load(encoder, tiny_data(), cache, key, description, "mean", CPU)
    finally:
        logging.getLogger("jepa_lit.eval").removeHandler(handler)
    (damaged,) = [m for m in messages if "damaged" in m]
    return "warning, recomputes", damaged


def results_json_edited(tmp_path, capsys, monkeypatch):
    from jepa_lit.eval.results import main as results_main
    from jepa_lit.eval.results import write_results

    path = write_results({"schema": "jepa_lit.probe_result/1", "metrics": {"top1": 12.5}},
                         str(tmp_path / "RUN" / "probes" / "ssv2.json"))
    path.write_text(path.read_text().replace("12.5", "92.5"))
    code = results_main([str(path)])
    return f"exit {code}", capsys.readouterr().err


def sweep_folder(tmp_path) -> tuple[Path, dict]:
    from jepa_lit.study.registry import write_json

    run = tmp_path / "SWEEP" / "mixed" / "ld" / "seed_1"
    record = {"schema": "jepa_lit.sweep_run/1", "run_id": "mixed/ld/seed_1", "regime": "mixed", "variant": "ld",
              "seed": 1, "status": "done", "metrics": {"ssv2": {"top1": 9.0, "comparison_key": "k" * 16,
                                                                  "results": "probes/ssv2.json"}}}
    write_json(run / "run.json", record)
    return run, record


def run_json_edited(tmp_path, capsys, monkeypatch):
    from jepa_lit.study.__main__ import main as study_main

    run, record = sweep_folder(tmp_path)
    record["metrics"]["ssv2"]["top1"] = 99.0
    (run / "run.json").write_text(json.dumps(record, indent=2) + "\n")
    code = study_main(["report", str(tmp_path / "SWEEP"), "--no-plots"])
    return f"exit {code}", capsys.readouterr().err


def results_json_deleted(tmp_path, capsys, monkeypatch):
    from jepa_lit.study.checks import collect
    from jepa_lit.study.registry import load_records

    sweep_folder(tmp_path)
    missing: list[str] = []
    assert collect(load_records(tmp_path / "SWEEP"), missing) == []
    return "warning, not tabulated", missing[0]


def sweep_resumes_a_damaged_last_checkpoint(tmp_path, capsys, monkeypatch):
    from test_sweep import EXPERIMENTS, FakeLaunch, write_spec

    from jepa_lit.study.executor import Executor
    from jepa_lit.study.launchers import run_local
    from jepa_lit.study.runs import expand

    spec = write_spec(tmp_path, regimes={"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"),
                                                    "probes": ["synthetic"], "variants": ["baseline"]}}, seeds=[0])
    (run,) = expand(spec)
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 2}, run.checkpoint.with_name("step=2.ckpt"))
    os.utime(run.checkpoint.with_name("step=2.ckpt"), (1, 1))
    io.save_checkpoint({"global_step": 3}, run.checkpoint)
    run.checkpoint.write_bytes(run.checkpoint.read_bytes()[:100])
    echoed: list[str] = []
    status = run_local([run], Executor(launch=FakeLaunch(), echo=echoed.append))[run.run_id]
    return f"run {status}", next(m for m in echoed if "pretraining" in m)


def sweep_same_failure_twice(tmp_path, capsys, monkeypatch):
    from test_sweep import EXPERIMENTS, write_spec

    from jepa_lit.study.executor import Executor
    from jepa_lit.study.launchers import run_local
    from jepa_lit.study.runs import expand

    spec = write_spec(tmp_path, regimes={"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"),
                                                    "probes": ["synthetic"], "variants": ["baseline"]}}, seeds=[0])
    runs = expand(spec)
    for _ in range(2):
        run_local(runs, Executor(launch=lambda cmd, log, env: 2, echo=lambda m: None))
    echoed: list[str] = []
    status = run_local(runs, Executor(launch=lambda cmd, log, env: 2, echo=echoed.append))[runs[0].run_id]
    return f"run {status}", next(m for m in echoed if "FAILED" in m)


CASES = {
    "export-onto-itself": export_onto_itself,
    "export-existing": export_onto_an_existing_file,
    "checkpoint-truncated": damaged_checkpoint("truncated"),
    "checkpoint-corrupted": damaged_checkpoint("corrupted"),
    "not-a-checkpoint": damaged_checkpoint("notes"),
    "last-damaged": ckpt_path_last_damaged,
    "disk-full": disk_full,
    "resume-other-clip": resume_with_other_clip_length,
    "probe-other-resolution": probe_at_other_resolution,
    "feature-cache-zeroed": feature_cache_zeroed,
    "results-edited": results_json_edited,
    "run-json-edited": run_json_edited,
    "results-deleted": results_json_deleted,
    "sweep-last-damaged": sweep_resumes_a_damaged_last_checkpoint,
    "sweep-same-failure": sweep_same_failure_twice,
}

from test_hostile_round3 import ROUND3_CASES  # noqa: E402 - issue 24's cases, in their own file

CASES.update(ROUND3_CASES)


def test_every_documented_case_is_run_and_every_case_documented():
    assert sorted(doc_rows()) == sorted(CASES)


@pytest.mark.parametrize("case", list(CASES))
def test_the_documented_message_is_the_one_given(case, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outcome, message = CASES[case](tmp_path, capsys, monkeypatch)
    message = message.replace(str(tmp_path / "runs" / "smoke" / "version_0"), "RUN").replace(str(tmp_path) + "/", "")
    message = re.sub(r"\s+", " ", message)
    want_outcome, want_message = doc_rows()[case]
    assert outcome == want_outcome, (case, outcome)
    position = 0
    for part in want_message.split("…"):
        found = message.find(part.strip(), position)
        assert found >= 0, f"{case}: {part.strip()!r} not in (the rest of) {message[position:]!r}"
        position = found + len(part.strip())
    assert "Traceback" not in message
