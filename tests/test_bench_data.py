"""bench/bench_data.py: the workers-per-GPU arithmetic, the decoder list, and a tiny interleaved run whose JSON
bench_step.py reads."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import bench_data  # noqa: E402
import bench_step  # noqa: E402


def test_workers_needed_by_hand():
    # 8 clips every 20 ms = 400 clips/s; at 25 clips/s per worker: 16 workers; at 24: 16.67 -> 17.
    assert bench_data.workers_needed(25.0, 20.0, 8) == 16
    assert bench_data.workers_needed(24.0, 20.0, 8) == 17
    assert bench_data.workers_needed(400.0, 20.0, 8) == 1
    assert bench_data.workers_needed(1.0, 1000.0, 2) == 2


def test_clips_per_s_is_the_sustained_rate():
    assert bench_data.clips_per_s([0.1, 0.3]) == pytest.approx(2 / 0.4)


def test_rotation_gives_every_decoder_every_place():
    decoders = ["a", "b", "c"]
    firsts = {bench_data.rotated(decoders, k)[0] for k in range(3)}
    assert firsts == set(decoders)
    assert sorted(bench_data.rotated(decoders, 5)) == decoders


@pytest.mark.parametrize("argv", [["--decoders", "torchcodec"], ["--decoders", "pyav,nope"], ["--step-ms", "0"]])
def test_bad_arguments_are_refused(argv):
    with pytest.raises(SystemExit) as exit_info:
        bench_data.parse_args(argv)
    assert exit_info.value.code == 2


def test_torchcodec_unavailable_names_the_reason(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchcodec", None)  # import fails as when it is not installed
    monkeypatch.setitem(sys.modules, "torchcodec.decoders", None)
    reason = bench_data.torchcodec_unavailable()
    assert reason and reason.startswith(("ImportError", "ModuleNotFoundError"))


@pytest.fixture
def restore_threads():
    """bench_data.main sets this process's threads as a loader worker's; the other tests keep theirs."""
    threads = torch.get_num_threads(), cv2.getNumThreads()
    yield
    torch.set_num_threads(threads[0])
    cv2.setNumThreads(threads[1])


def test_a_tiny_run_writes_what_bench_step_reads(tmp_path, monkeypatch, capsys, restore_threads):
    monkeypatch.setattr(bench_data, "torchcodec_unavailable", lambda: "OSError: no libavcodec here")
    out = tmp_path / "data.json"
    doc = bench_data.main(["--width", "64", "--height", "48", "--frames", "40", "--clips", "1", "--formats", "avi",
                           "--decoders", "pyav,pyav-ffmpeg-threads,torchcodec", "--step-ms", "50", "--batch", "4",
                           "--json", str(out)])
    assert json.loads(out.read_text()) == doc
    assert doc["unavailable"] == {"torchcodec": "OSError: no libavcodec here"}
    assert set(doc["decoders"]) == {"pyav", "pyav-ffmpeg-threads"}
    for per_setting in doc["decoders"].values():
        assert set(per_setting) == {"train, frame step 1", "train, frame step 2", "eval, 16 uniform"}
        for r in per_setting.values():
            assert r["clips"] == 1 and r["clips_per_s"] > 0 and 0 < r["decode_share"] < 1
            assert r["workers_per_gpu"] == bench_data.workers_needed(r["clips_per_s"], 50, 4)
    ratio = doc["decoders"]["pyav-ffmpeg-threads"]["eval, 16 uniform"]["speed_vs_pyav"]
    assert ratio == pytest.approx(doc["decoders"]["pyav-ffmpeg-threads"]["eval, 16 uniform"]["clips_per_s"]
                                  / doc["decoders"]["pyav"]["eval, 16 uniform"]["clips_per_s"])
    assert doc["decoders"]["pyav-ffmpeg-threads"]["eval, 16 uniform"]["decode_speed_vs_pyav"] > 0
    assert "decode_speed_vs_pyav" not in doc["decoders"]["pyav"]["eval, 16 uniform"]
    assert doc["needed_clips_per_s"] == pytest.approx(80.0)
    pipeline = bench_step.data_pipeline(str(out))
    assert pipeline["clips_per_s_per_worker"] == doc["decoders"]["pyav"]["train, frame step 2"]["clips_per_s"]
    assert "not measured: OSError: no libavcodec here" in capsys.readouterr().out
