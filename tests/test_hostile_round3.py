"""Issue 24's hostile cases, one mechanism per class, each case a row of the table in docs/checkpoints.md
(tests/test_hostile_cases.py runs ROUND3_CASES against the table; the tests below check what the message
alone cannot: files unchanged, hashes moved, nothing written).

Each case returns (outcome, message) like the cases of tests/test_hostile_cases.py and asserts the state
of the files itself.
"""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from jepa_lit.atomic import file_sha256, sidecar_path
from jepa_lit.errors import JepaLitError

HERE = Path(__file__).resolve().parent


def raised(call) -> tuple[str, str]:
    """("exit N", message) of the JepaLitError ``call()`` raises (the CLI prints the message, exits N)."""
    with pytest.raises(JepaLitError) as info:
        call()
    return f"exit {info.value.exit_code}", str(info.value)


# ----- 1. a write never replaces a file of another kind ----------------------------------------------------
def probe_output_onto_checkpoint(tmp_path, capsys, monkeypatch):
    """`test --probe ... --output RUN/checkpoints/last.ckpt`: refused before the encoder is loaded (and by
    the writer itself, whoever calls it); the checkpoint and its record are untouched."""
    from test_hostile_cases import run_folder

    from jepa_lit.eval.evaluate import evaluate_checkpoint
    from jepa_lit.eval.results import write_results

    last = run_folder(tmp_path) / "last.ckpt"
    before = (file_sha256(last), sidecar_path(last).read_text())
    with pytest.raises(JepaLitError):
        write_results({"schema": "jepa_lit.probe_result/1"}, str(last))
    outcome = raised(lambda: evaluate_checkpoint(
        benchmark=None, ckpt_path=str(last), datamodule=SimpleNamespace(num_classes=3), data_config={},
        model=None, features=SimpleNamespace(cache_dir=None), trainer=None, output=str(last)))
    assert (file_sha256(last), sidecar_path(last).read_text()) == before
    return outcome


def test_a_write_replaces_only_a_file_of_its_kind(tmp_path):
    from jepa_lit.atomic import WriteRefused, write_json, write_text

    notes = tmp_path / "notes.json"
    notes.write_text("my notes, not JSON\n")
    with pytest.raises(WriteRefused, match="is a text file"):
        write_json(notes, {"a": 1})
    assert notes.read_text() == "my notes, not JSON\n"
    write_json(tmp_path / "r.json", {"a": 1}, integrity=True)
    write_json(tmp_path / "r.json", {"a": 2}, integrity=True)  # its own kind: replaced
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 2}
    assert json.loads(sidecar_path(tmp_path / "r.json").read_text())["kind"] == "json"
    with pytest.raises(WriteRefused, match="integrity record r.json.sha256.json says so"):
        write_text(tmp_path / "r.json", "# a report\n")
    (tmp_path / "empty.ckpt").write_bytes(b"")
    write_json(tmp_path / "empty.ckpt", {})  # an empty file holds nothing to lose


ROUND3_CASES = {
    "probe-output-onto-checkpoint": probe_output_onto_checkpoint,
}
