"""`jepa-lit data check`: counts per split against official sizes and every bad file with its reason."""

import io
from pathlib import Path

import pytest

from jepa_lit.data.check import check_video, main, run_check
from jepa_lit.data.datasets import DATASETS, make_fixture_tree
from jepa_lit.data.fixtures import write_video


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_fixture_tree(tmp_path_factory.mktemp("check"))


@pytest.mark.parametrize("name", list(DATASETS))
def test_check_counts_and_lists_every_bad_entry(tree, name):
    out = io.StringIO()
    report = run_check(name, tree[name]["root"], jobs=2, out=out)
    text = out.getvalue()
    train, test = report.splits
    assert (train.ok, test.ok) == (tree[name]["train"], tree[name]["test"])
    official_train = report.splits[0].official
    assert f"{official_train:,}" in text and "differs from the official size" in text
    for where in tree[name]["bad"]:
        assert where in text, where


def test_check_reasons(tree):
    out = io.StringIO()
    run_check("ucf101", tree["ucf101"]["root"], out=out)
    text = out.getvalue()
    assert "v_YoYo_g10_c01.avi: zero-byte" in text
    assert "v_HandStandPushups_g10_c01.avi: file not found" in text
    assert "v_ApplyEyeMakeup_g10_c01.avi: holds 2 frames, it announces 15" in text
    assert "9,537" in text and "3,783" in text


def test_check_video_ok_and_full_decode(tmp_path):
    path = write_video(tmp_path / "ok.webm", 20, fps=12)
    assert check_video(str(path)) is None and check_video(str(path), full_decode=True) is None


def test_main_exit_codes(tree, tmp_path, capsys):
    assert main(["check", "--dataset", "diving48", "--root", tree["diving48"]["root"]]) == 1
    assert "unknown label 48" in capsys.readouterr().out
    clean = tmp_path / "clean"
    make_fixture_tree(clean, broken=False)
    assert main(["--dataset", "diving48", "--root", str(clean / "diving48")]) == 0
    capsys.readouterr()
    # the fixture holds 3 of ImageNet-100's classes: the missing class folders are reported as bad
    assert main(["--dataset", "mixed", "--root", str(clean)]) == 1
    out = capsys.readouterr().out
    assert "ucf101 at" in out and "ssv2 at" in out and "and 92 more: class folder missing" in out
    assert main(["--dataset", "ssv2", "--root", str(tmp_path / "none")]) == 2
    assert "Expected layout" in capsys.readouterr().err


def test_check_accepts_the_folder_holding_all_datasets(tree):
    parent = str(Path(tree["ssv2"]["root"]).parent)
    report = run_check("ssv2", parent, out=io.StringIO())
    assert report.root == tree["ssv2"]["root"] and report.splits[0].ok == tree["ssv2"]["train"]
