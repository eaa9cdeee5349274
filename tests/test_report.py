"""jepa_lit.study's report on hand-made registries: the numbers (means, std, same-seed deltas, paired-t interval),
the released reference column, the refusals (different probe settings, no same-seed baseline), the plots
and the TensorBoard HParams entries."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from typing import Optional

import pytest
import yaml

from jepa_lit.eval.results import comparison_key
from jepa_lit.study.checks import Refused
from jepa_lit.study.corrections import verdict
from jepa_lit.study.released import released
from jepa_lit.study.report import main as report_main
from jepa_lit.study.report import make_report
from jepa_lit.study.stats import paired_delta, t_quantile, unpaired_delta

RELEASED_MARKS = released().marks


def results_json(benchmark: str, top1: float, epochs: int) -> dict:
    """The parts of a probe results JSON that the report reads (comparison settings and metrics)."""
    results = {
        "benchmark": benchmark,
        "probe": {"probe": "linear" if benchmark == "imagenet100" else "attentive", "lrs": [0.001],
                  "weight_decays": [0.01], "bootstrap_samples": 1000},
        "training": {"epochs": epochs, "batch_size": 16},
        "encoder": {"feature_layer": "final block", "used": "target_encoder"},
        "features": {"pooling": "mean"},
        "clip_protocol": {"datamodule": f"jepa_lit.data.{benchmark}.DataModule",
                          "init_args": {"root": "/somewhere", "num_frames": 16, "crop_size": 224}},
        "metrics": {"top1": top1, "top1_ci95": [top1 - 2.0, top1 + 2.0], "num_test_clips": 500},
        "checkpoint": {"global_step": 100},
    }
    results["comparison_key"] = comparison_key(results)
    return results


def make_run(root: Path, regime: str, variant: str, seed: int, top1: dict[str, float], epochs: int = 100,
             status: str = "done", config_hash: str = "", reference: str = "mixed",
             result_names: Optional[dict[str, str]] = None) -> None:
    """A registry entry and its results JSONs; ``result_names``: benchmark -> file name under probes/."""
    run_dir = root / regime / variant / f"seed_{seed}"
    (run_dir / "probes").mkdir(parents=True)
    metrics = {}
    for bench, value in top1.items():
        results = results_json(bench, value, epochs)
        name = (result_names or {}).get(bench, f"{bench}.json")
        (run_dir / "probes" / name).write_text(json.dumps(results))
        metrics[bench] = {"top1": value, "top1_ci95": results["metrics"]["top1_ci95"], "num_test_clips": 500,
                          "comparison_key": results["comparison_key"], "epochs": epochs, "checkpoint_step": 100,
                          "results": f"probes/{name}"}
    (run_dir / "run.json").write_text(json.dumps({
        "schema": "jepa_lit.sweep_run/1", "run_id": f"{regime}/{variant}/seed_{seed}", "sweep": "t", "scale": "full",
        "regime": regime, "variant": variant, "seed": seed, "baseline": "baseline", "reference": reference,
        "config_hash": config_hash or f"hash-{variant}", "scale_hash": "s", "status": status,
        "package": {"version": "0.1.0", "git_commit": "abc123"}, "metrics": metrics if status == "done" else {}}))


# baseline and FWM-HW-LD over seeds 0, 1, 2: IN-100 differences 3, 2, 4; SSv2 differences 1, 1, 1
BASE = {0: {"imagenet100": 20.0, "ssv2": 6.0}, 1: {"imagenet100": 22.0, "ssv2": 7.0}, 2: {"imagenet100": 24.0, "ssv2": 8.0}}
FWM = {0: {"imagenet100": 23.0, "ssv2": 7.0}, 1: {"imagenet100": 24.0, "ssv2": 8.0}, 2: {"imagenet100": 28.0, "ssv2": 9.0}}
LD = {0: {"imagenet100": 19.0, "ssv2": 9.0}, 1: {"imagenet100": 22.0, "ssv2": 8.0}, 2: {"imagenet100": 22.0, "ssv2": 13.0}}


@pytest.fixture
def study(tmp_path):
    root = tmp_path / "sweep"
    for seed in (0, 1, 2):
        make_run(root, "mixed", "baseline", seed, BASE[seed])
        make_run(root, "mixed", "fwm_hw_ld", seed, FWM[seed])
        make_run(root, "mixed", "ld", seed, LD[seed])
    make_run(root, "mixed", "hw", 0, {}, status="failed")
    (root / "sweep.json").write_text(json.dumps({  # the order of the sweep spec: baseline listed among the variants
        "regimes": {"mixed": {"variants": ["ld", "baseline", "hw", "fwm_hw_ld"], "probes": ["ssv2", "imagenet100"]}},
        "report": {"appearance": "imagenet100", "motion": ["ssv2"]}}))
    return root


def test_t_quantiles():
    for df, expected in [(1, 12.7062), (2, 4.3027), (4, 2.7764), (10, 2.2281), (30, 2.0423), (200, 1.9719)]:
        assert t_quantile(0.975, df) == pytest.approx(expected, abs=2e-4)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert t_quantile(0.975, 3.7) == pytest.approx(scipy_stats.t.ppf(0.975, 3.7), abs=1e-5)


def test_delta_arithmetic():
    d = paired_delta({0: 23.0, 1: 24.0, 2: 28.0}, {0: 20.0, 1: 22.0, 2: 24.0})
    half = 4.302653 * 1.0 / math.sqrt(3)  # sd of (3, 2, 4) is 1
    assert (d.mean, d.n, d.method) == (3.0, 3, "paired-t") and d.per_seed == {0: 3.0, 1: 2.0, 2: 4.0}
    assert d.lo == pytest.approx(3.0 - half, abs=1e-4) and d.hi == pytest.approx(3.0 + half, abs=1e-4)
    assert d.excludes_zero
    one = paired_delta({0: 25.0, 5: 1.0}, {0: 20.0})  # only seed 0 is shared
    assert (one.mean, one.lo, one.n) == (5.0, None, 1)
    u = unpaired_delta([23.0, 24.0, 28.0], [20.0, 22.0])
    assert u.mean == pytest.approx(25.0 - 21.0) and u.method == "unpaired-welch" and u.lo < 4.0 < u.hi
    # every seed -7.5: sd 0, an interval of width 0, which is no evidence and is not shown as significant
    same = paired_delta({0: 22.5, 1: 10.0}, {0: 30.0, 1: 17.5})
    assert (same.mean, same.lo, same.hi) == (-7.5, -7.5, -7.5) and same.degenerate and not same.excludes_zero


def test_report_numbers_layout_and_files(study):
    report = make_report(study)
    (table,) = report["tables"]
    assert table.regime == "mixed" and table.variants == ["baseline", "ld", "fwm_hw_ld"]  # the baseline first, once
    assert table.benchmarks == ["ssv2", "imagenet100"]  # the spec's order
    cell = table.cells[("fwm_hw_ld", "imagenet100")]
    assert cell.mean == pytest.approx(25.0) and cell.std == pytest.approx(math.sqrt(7.0))
    assert cell.delta.mean == pytest.approx(3.0) and cell.delta.lo == pytest.approx(3.0 - 4.302653 / math.sqrt(3), abs=1e-4)
    ssv2 = table.cells[("fwm_hw_ld", "ssv2")].delta
    assert (ssv2.mean, ssv2.lo, ssv2.hi) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0))  # sd 0
    ld = table.cells[("ld", "ssv2")].delta  # differences 3, 1, 5: mean 3, sd 2
    assert ld.mean == pytest.approx(3.0) and ld.hi - ld.mean == pytest.approx(4.302653 * 2 / math.sqrt(3), abs=1e-4)
    assert table.cells[("baseline", "imagenet100")].delta is None
    assert table.cells[("fwm_hw_ld", "imagenet100")].released == 30.78  # jepa_lit/study/released.json
    assert table.cells[("baseline", "imagenet100")].released == 21.26  # seed 239, the variants' seed

    md = report["markdown"]
    header = next(line for line in md.splitlines() if line.startswith("| Variant"))
    assert header == ("| Variant | Seeds | SSv2 | IN-100 | Δ SSv2 [95% CI] | Δ IN-100 [95% CI] | Released SSv2 | "
                      "Released IN-100 |")
    row = next(line for line in md.splitlines() if line.startswith("| FWM-HW-LD"))
    assert row == "| FWM-HW-LD | 0, 1, 2 | 8.00 ± 1.00 | 25.00 ± 2.65 | +1.00 [+1.00, +1.00] (sd 0) | +3.00 [+0.52, +5.48] p 0.035, adj 0.105 | 11.60†¶ (paper Δ +3.21) | 30.78¶ (paper Δ +5.92) |"
    assert md.count("| Baseline |") == 1 and ("| Baseline | 0, 1, 2 | 7.00 ± 1.00 | 22.00 ± 2.00 | — | — | 6.62 (paper's baseline, seed 42: 8.39) | "
                                          "21.26 (paper's baseline, seed 42: 24.86) |") in md
    assert "mixed/hw/seed_0: failed" in md  # runs not tabulated are listed
    assert "50 epochs instead of 100" in md and "seed 42" in md

    out = study / "report"
    with open(out / "table_mixed.csv") as handle:
        rows = {r["variant"]: r for r in csv.DictReader(handle)}
    assert float(rows["fwm_hw_ld"]["imagenet100_delta"]) == 3.0 and rows["fwm_hw_ld"]["imagenet100_delta_method"] == "paired-t"
    assert float(rows["fwm_hw_ld"]["imagenet100_delta_ci_lo"]) == pytest.approx(0.5159, abs=1e-3)
    assert float(rows["ld"]["ssv2_mean"]) == 10.0 and rows["baseline"]["imagenet100_delta"] == ""
    with open(out / "runs.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 9 * 2
    for png in ("heatmap_mixed.png", "tradeoff_mixed_ssv2.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = list((out / "tensorboard").rglob("events.out.tfevents.*"))
    assert {p.parent.relative_to(out / "tensorboard").as_posix() for p in events} >= {
        "mixed/fwm_hw_ld/seed_2", "mixed/baseline/seed_0", "mixed/hw/seed_0"}  # every run, finished or not


def test_the_specs_report_header_is_a_blockquote_under_the_title(study, tmp_path):
    """The smoke scale's header (experiments/sweep.yaml, via sweep.json) opens its report; without one the
    report starts as before, with the run counts."""
    from jepa_lit.study.spec import load_spec
    from jepa_lit.study.sweep import sweep_summary

    plain = make_report(study, out=tmp_path / "plain", plots=False)["markdown"].splitlines()
    assert plain[0] == f"# Sweep report: {study}" and plain[1] == "" and plain[2].startswith("Runs: ")
    sweep = json.loads((study / "sweep.json").read_text())
    smoke = load_spec(Path(__file__).resolve().parents[1] / "experiments" / "sweep.yaml", "smoke")
    (study / "sweep.json").write_text(json.dumps({**sweep, "report": sweep_summary(smoke)["report"]}))
    lines = make_report(study, out=tmp_path / "smoke", plots=False)["markdown"].splitlines()
    assert lines[:3] == [plain[0], "", f"> {smoke.report.header}"] and lines[3] == ""
    assert lines[2].startswith("> Smoke scale: a plumbing check") and "answer none of the study's questions" in lines[2]
    assert lines[4:] == plain[2:]  # the rest unchanged


def test_refuses_results_whose_probe_settings_differ(study, capsys):
    make_run(study, "mixed", "fwm_ld", 1, {"imagenet100": 15.0, "ssv2": 7.0}, epochs=50)  # the release's 50-epoch probe
    make_run(study, "mixed", "fwm_ld", 0, {"imagenet100": 15.0, "ssv2": 7.0})
    with pytest.raises(Refused) as refused:
        make_report(study)
    message = str(refused.value)
    assert "imagenet100: probe settings differ" in message and "ssv2: probe settings differ" in message
    assert "mixed/fwm_ld/seed_1" in message and "epochs: 100 != 50" in message
    assert "mixed/fwm_ld/seed_0" not in message.split("vs")[0]  # only the odd one is named as odd
    assert not (study / "report" / "report.md").exists()
    assert report_main([str(study)]) == 1 and "--allow-mismatch" in capsys.readouterr().err

    report = make_report(study, allow_mismatch=True)  # tabulated, marked, and listed
    row = next(line for line in report["markdown"].splitlines() if line.startswith("| FWM-LD"))
    assert "§" in row and "## Mismatches tabulated anyway" in report["markdown"]


def test_refuses_a_variant_without_a_same_seed_baseline(tmp_path):
    root = tmp_path / "sweep"
    for seed in (0, 1):
        make_run(root, "mixed", "baseline", seed, BASE[seed])
    for seed in (0, 1, 2):
        make_run(root, "mixed", "fwm_hw_ld", seed, FWM[seed])
    make_run(root, "mixed", "baseline", 2, {}, status="running")  # not finished: no baseline result for seed 2
    with pytest.raises(Refused) as refused:
        make_report(root, plots=False)
    message = str(refused.value)
    assert "mixed/fwm_hw_ld/seed_2 (imagenet100): no baseline result of seed 2 in regime mixed" in message
    assert "baseline seeds with a imagenet100 result: 0, 1" in message
    report = make_report(root, plots=False, allow_mismatch=True)
    delta = report["tables"][0].cells[("fwm_hw_ld", "imagenet100")].delta
    assert delta.method == "unpaired-welch" and delta.mean == pytest.approx(25.0 - 21.0)
    assert "‡u" in report["markdown"]


def test_refuses_seeds_of_one_variant_with_different_configs(tmp_path):
    root = tmp_path / "sweep"
    for seed in (0, 1):
        make_run(root, "mixed", "baseline", seed, BASE[seed])
        make_run(root, "mixed", "ld", seed, LD[seed], config_hash="old" if seed else "new")
    with pytest.raises(Refused, match=r"mixed/ld: seeds pretrained with different configs: mixed/ld/seed_0 config hash new; "
                                      r"mixed/ld/seed_1 config hash old"):
        make_report(root, plots=False)


def test_nothing_to_report(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run registry"):
        make_report(tmp_path)


def test_the_released_runs_without_an_ld_gradient_are_marked_on_every_benchmark(study):
    """docs/reproducing.md, the release's defects: released HW-LD and FWM-HW-LD trained no LD head (effectively base + HW (+ FWM))."""
    for variant in ("hw_ld", "fwm_hw_ld"):
        for bench in ("diving48", "imagenet100", "ssv2"):
            assert "¶" in RELEASED_MARKS[("mixed", variant, bench)]
    assert RELEASED_MARKS[("mixed", "hw_ld", "diving48")] == "†¶"  # 50 probe epochs as well
    assert all("¶" not in RELEASED_MARKS.get(("mixed", v, "imagenet100"), "") for v in ("ld", "fwm_ld", "hw", "fwm"))
    md = make_report(study, plots=False)["markdown"]
    assert "| 11.60†¶ (paper Δ +3.21) | 30.78¶ (paper Δ +5.92) |" in md
    assert "¶ released HW-LD and FWM-HW-LD computed their hard-weighted LD term under no_grad" in md
    assert "base + HW (+ FWM)" in md

    root = study.parent / "no_hw_ld"  # a table without those rows: no ¶ note
    for seed in (0, 1, 2):
        make_run(root, "mixed", "baseline", seed, BASE[seed])
        make_run(root, "mixed", "ld", seed, LD[seed])
    md = make_report(root, plots=False)["markdown"]
    assert "¶" not in md and "† released" not in md


def write_sweep_spec(tmp_path: Path, max_steps: int = 10) -> Path:
    """A sweep spec over two mixed variants (the experiment files of the repository)."""
    experiments = Path(__file__).resolve().parents[1] / "experiments"
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "t", "output": str(tmp_path / "out"), "seeds": [0, 1],
        "regimes": {"mixed": {"config": str(experiments / "mixed_{variant}.yaml"), "reference": "mixed",
                              "probes": ["imagenet100", "ssv2"], "variants": ["baseline", "ld"]}},
        "probes": {b: str(experiments / "probes" / f"{b}.yaml") for b in ("imagenet100", "ssv2")},
        "fit": {"trainer": {"max_steps": max_steps}}}))
    return spec


def test_stale_runs_are_marked_and_warned_about(tmp_path, capsys):
    """A run whose config hash is not what the spec now expands to (the sweep's "config changed"), or whose
    probe results are not the file the spec now writes, is tabulated with a mark, listed, and warned about."""
    from jepa_lit.study.runs import expand

    spec = write_sweep_spec(tmp_path)
    current = {r.run_id: r for r in expand(spec)}
    root = tmp_path / "out" / "full"

    def names(run_id):
        return {p.benchmark: p.output_name for p in current[run_id].probes}

    for seed in (0, 1):
        base_names = names(f"mixed/baseline/seed_{seed}")
        if seed == 1:  # its imagenet100 probe ran with settings the spec no longer has
            base_names["imagenet100"] = "imagenet100-0ld0ld0l.json"
        make_run(root, "mixed", "baseline", seed, BASE[seed], result_names=base_names,
                 config_hash=current[f"mixed/baseline/seed_{seed}"].config_hash)
        make_run(root, "mixed", "ld", seed, LD[seed], result_names=names(f"mixed/ld/seed_{seed}"),
                 config_hash="0123456789abcdef")  # pretrained with an older config
    (root / "sweep.json").write_text(json.dumps({"spec": str(spec), "scale": "full"}))

    report = make_report(root, plots=False)
    assert set(report["stale"]) == {("mixed/ld/seed_0", "imagenet100"), ("mixed/ld/seed_0", "ssv2"),
                                    ("mixed/ld/seed_1", "imagenet100"), ("mixed/ld/seed_1", "ssv2"),
                                    ("mixed/baseline/seed_1", "imagenet100")}
    lines = report["markdown"].splitlines()
    baseline = next(line for line in lines if line.startswith("| Baseline |"))
    ld = next(line for line in lines if line.startswith("| LD |"))
    assert baseline.startswith("| Baseline | 0, 1 | 21.00 ± 1.41 ※ | 6.50 ± 0.71 | — | — |")  # ssv2 fresh
    assert ld.count("※") == 4  # both values and both deltas
    ld_hash = current["mixed/ld/seed_0"].config_hash
    assert f"- mixed/ld/seed_0: config changed since it ran (config hash 0123456789abcdef -> {ld_hash})" in lines
    assert any(line.startswith("- mixed/baseline/seed_1: imagenet100 probe settings changed since it ran "
                               "(probes/imagenet100-0ld0ld0l.json; the spec now writes") for line in lines)
    with open(root / "report" / "table_mixed.csv") as handle:
        rows = {r["variant"]: r for r in csv.DictReader(handle)}
    assert (rows["baseline"]["ssv2_stale"], rows["baseline"]["imagenet100_stale"], rows["ld"]["ssv2_stale"]) == ("0", "1", "1")

    assert report_main([str(root), "--no-plots"]) == 0
    err = capsys.readouterr().err
    assert "report: warning: 3 finished run(s) no longer match" in err and "--rerun-changed" in err

    (root / "sweep.json").write_text(json.dumps({"spec": str(tmp_path / "gone.yaml"), "scale": "full"}))
    report = make_report(root, plots=False)  # the spec is gone: the report says it could not check
    assert report["stale"] == {} and "runs not checked against the spec" in report["warnings"][0]


def test_a_mistyped_sweep_folder_names_the_nearest_one(tmp_path, capsys):
    (tmp_path / "sweep" / "smoke").mkdir(parents=True)
    assert report_main([str(tmp_path / "sweep" / "smok")]) == 1
    err = capsys.readouterr().err
    assert f"sweep folder not found: {tmp_path / 'sweep' / 'smok'}" in err
    assert f"did you mean {tmp_path / 'sweep' / 'smoke'}?" in err


# ----- released vs corrected objectives, the random_init control, and mixed - UCF-101 ------------------
T3 = 4.302653  # t(0.975, 2): three seeds
HEADLINE = {  # regime -> variant -> seed -> {benchmark: top-1}
    "mixed": {
        "baseline": {0: {"imagenet100": 20.0, "ssv2": 6.0}, 1: {"imagenet100": 22.0, "ssv2": 7.0},
                     2: {"imagenet100": 24.0, "ssv2": 8.0}},
        "fwm_hw_ld": {0: {"imagenet100": 23.0, "ssv2": 7.0}, 1: {"imagenet100": 24.0, "ssv2": 8.0},
                      2: {"imagenet100": 28.0, "ssv2": 10.0}},
        "fwm_hw_ld_released": {0: {"imagenet100": 25.0, "ssv2": 8.0}, 1: {"imagenet100": 28.0, "ssv2": 10.0},
                               2: {"imagenet100": 29.0, "ssv2": 11.0}},
        "mg": {s: {"imagenet100": 21.0, "ssv2": 6.0} for s in (0, 1, 2)},
        "random_init": {s: {"imagenet100": 5.0 + s, "ssv2": 1.0} for s in (0, 1, 2)},
    },
    "ucf101": {
        "baseline": {0: {"imagenet100": 17.0, "ssv2": 5.0, "synthetic": 30.0},
                     1: {"imagenet100": 20.0, "ssv2": 6.0, "synthetic": 35.0},
                     2: {"imagenet100": 21.0, "ssv2": 6.0, "synthetic": 40.0}},
        "mg": {s: {"imagenet100": 20.0, "ssv2": 7.0, "synthetic": 30.0} for s in (0, 1, 2)},
        "random_init": {s: {"imagenet100": 5.0 + s, "ssv2": 1.0, "synthetic": 60.0} for s in (0, 1, 2)},
    },
}


@pytest.fixture
def two_regimes(tmp_path):
    root = tmp_path / "sweep"
    for regime, variants in HEADLINE.items():
        for variant, seeds in variants.items():
            for seed, top1 in seeds.items():
                make_run(root, regime, variant, seed, top1, reference=regime)
    (root / "sweep.json").write_text(json.dumps({
        "regimes": {"mixed": {"variants": ["baseline", "mg", "fwm_hw_ld", "fwm_hw_ld_released"],
                              "probes": ["imagenet100", "ssv2"]},
                    "ucf101": {"variants": ["baseline", "mg"], "probes": ["imagenet100", "ssv2", "synthetic"]}},
        "report": {"cross_regime": ["mixed", "ucf101"]}}))
    return root


def test_released_vs_corrected_difference_and_whether_the_gain_survives(two_regimes):
    report = make_report(two_regimes)
    mixed = next(t for t in report["tables"] if t.regime == "mixed")
    assert mixed.variants == ["baseline", "mg", "fwm_hw_ld", "fwm_hw_ld_released", "random_init"]
    # the released row carries the release's number; only its SSv2 probe trained 50 epochs (†)
    released_cell = mixed.cells[("fwm_hw_ld_released", "imagenet100")]
    assert (released_cell.released, released_cell.released_mark) == (30.78, "")
    assert mixed.cells[("fwm_hw_ld_released", "ssv2")].released_mark == "†"
    (inet, ssv2) = report["corrections"]["mixed"]
    assert (inet.variant, inet.released_variant, inet.benchmark) == ("fwm_hw_ld", "fwm_hw_ld_released", "imagenet100")
    # IN-100: corrected - released per seed -2, -4, -1 (mean -7/3, sd sqrt(7/3))
    sd = math.sqrt(7 / 3)
    assert inet.difference.per_seed == {0: -2.0, 1: -4.0, 2: -1.0} and inet.difference.mean == pytest.approx(-7 / 3)
    assert inet.difference.lo == pytest.approx(-7 / 3 - T3 * sd / math.sqrt(3), abs=1e-6)
    assert inet.difference.hi == pytest.approx(-7 / 3 + T3 * sd / math.sqrt(3), abs=1e-6)
    # gains over the baseline: released 5, 6, 5; corrected 3, 2, 4: both intervals above 0
    assert inet.gain_released.mean == pytest.approx(16 / 3) and inet.gain_released.lo > 0
    assert inet.gain_corrected.mean == pytest.approx(3.0) and inet.gain_corrected.lo == pytest.approx(3 - T3 / math.sqrt(3))
    # after Holm over the mixed table's 8 tests only the released gain is significant, and the difference is not
    assert inet.gain_released.significant and not inet.gain_corrected.significant
    assert verdict(inet).startswith("the correction's effect is not determined")
    # SSv2: released gains 2, 3, 3 (above 0); corrected 1, 1, 2 (interval includes 0); cost -1, -2, -1
    assert ssv2.difference.mean == pytest.approx(-4 / 3) and ssv2.difference.hi == pytest.approx(
        -4 / 3 + T3 * math.sqrt(1 / 3) / math.sqrt(3), abs=1e-6)
    assert ssv2.gain_released.lo > 0 and ssv2.gain_corrected.lo < 0 < ssv2.gain_corrected.hi
    assert verdict(ssv2) == ("no gain to test: neither gain is significant; corrected − released is not significant")

    md = report["markdown"]
    assert "### Released vs corrected objectives (mixed)" in md
    row = next(line for line in md.splitlines() if line.startswith("| FWM-HW-LD | IN-100 |"))
    assert row == ("| FWM-HW-LD | IN-100 | 27.33 ± 2.08 | 25.00 ± 2.65 | -2.33 [-6.13, +1.46] p 0.118, adj 0.118 | "
                   "**+5.33 [+3.90, +6.77] p 0.004, adj 0.027** | +3.00 [+0.52, +5.48] p 0.035, adj 0.140 | "
                   f"{verdict(inet)} |")
    with open(two_regimes / "report" / "corrections_mixed.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["benchmark"], float(r["cost"])) for r in rows] == [("imagenet100", -2.3333), ("ssv2", -1.3333)]
    assert float(rows[0]["cost_ci_lo"]) == pytest.approx(-6.1279, abs=1e-3)


def test_random_init_is_a_row_of_each_table(two_regimes):
    report = make_report(two_regimes, plots=False)
    for table in report["tables"]:
        assert table.variants[-1] == "random_init" and table.seeds["random_init"] == [0, 1, 2]
    ucf = next(t for t in report["tables"] if t.regime == "ucf101")
    control = ucf.cells[("random_init", "synthetic")]
    assert control.mean == 60.0 and control.delta.per_seed == {0: 30.0, 1: 25.0, 2: 20.0}  # minus what training adds
    assert "| Random init | 0, 1, 2 | 6.00 ± 1.00 | 1.00 ± 0.00 |" in report["markdown"]
    assert "Random init: the regime baseline's architecture, never trained" in report["markdown"]


def test_cross_regime_table_known_values_and_answer(two_regimes):
    report = make_report(two_regimes)
    cross = report["cross_regime"]
    assert (cross.a, cross.b) == ("mixed", "ucf101")
    assert cross.variants == ["baseline", "mg", "random_init"]  # in both regimes, the control last
    assert cross.benchmarks == ["imagenet100", "ssv2"]  # synthetic is probed in ucf101 only
    base = cross.deltas[("baseline", "imagenet100")]  # 3, 2, 3
    assert base.per_seed == {0: 3.0, 1: 2.0, 2: 3.0} and base.mean == pytest.approx(8 / 3)
    assert base.lo == pytest.approx(8 / 3 - T3 * math.sqrt(1 / 3) / math.sqrt(3), abs=1e-6) and base.lo > 0
    assert cross.deltas[("baseline", "ssv2")].per_seed == {0: 1.0, 1: 1.0, 2: 2.0}
    assert cross.deltas[("mg", "ssv2")].mean == pytest.approx(-1.0) and cross.deltas[("mg", "ssv2")].degenerate
    assert cross.deltas[("random_init", "imagenet100")].per_seed == {0: 0.0, 1: 0.0, 2: 0.0}
    md = report["markdown"]
    assert "## Cross-regime: mixed − ucf101" in md
    assert ("The study's question: Does adding SSv2 and ImageNet-100 to UCF-101 pretraining improve robustness "
            "across the benchmarks?") in md
    assert "| Baseline | **+2.67 [+1.23, +4.10] p 0.015, adj 0.031** | +1.33 [-0.10, +2.77] p 0.057, adj 0.057 |" in md
    assert ("**Answer.** For the Baseline, mixed pretraining is better than ucf101 on IN-100; no detectable "
            "difference on SSv2. Significance: 95% paired t over seeds, holm adjustment over the table's 2 tests. "
            "Over the other variants run in both (MG): 0 of 2 variant-benchmark differences significantly favour "
            "mixed, 0 favour ucf101, 2 show no detectable difference. Confounds this answer carries:") in md
    out = two_regimes / "report"
    assert (out / "cross_regime_mixed_ucf101.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "cross_regime.csv") as handle:
        rows = {(r["variant"], r["benchmark"]): r for r in csv.DictReader(handle)}
    assert float(rows[("baseline", "imagenet100")]["a_minus_b"]) == pytest.approx(2.6667, abs=1e-4)
    assert len(rows) == 3 * 2


@pytest.mark.parametrize("ucf_baseline, expected", [
    ({0: 10.0, 1: 11.0, 2: 13.0}, "Yes for the Baseline: mixed pretraining beats ucf101 on every shared benchmark"),
    ({0: 30.0, 1: 31.0, 2: 33.0}, "No for the Baseline: mixed pretraining is worse than ucf101 on every shared benchmark"),
    ({0: 20.0, 1: 21.0, 2: 25.0}, "No detectable difference for the Baseline: no mixed - ucf101 difference is significant"),
])
def test_the_answer_follows_the_numbers(ucf_baseline, expected):
    from jepa_lit.study.cross_regime import CrossRegime, answer

    mixed = {0: 20.0, 1: 22.0, 2: 24.0}
    delta = paired_delta(mixed, ucf_baseline)
    cross = CrossRegime("mixed", "ucf101", "baseline", ["baseline"], ["imagenet100"],
                        {("baseline", "imagenet100"): delta})
    assert answer(cross).startswith(expected)


def test_a_deleted_results_json_is_warned_about_and_not_tabulated(study, capsys):
    gone = study / "mixed" / "ld" / "seed_1" / "probes" / "ssv2.json"
    gone.unlink()
    report = make_report(study, plots=False)
    assert any(f"mixed/ld/seed_1 ssv2: {gone.parents[1] / 'run.json'} lists {gone}, which no longer exists "
               "(not tabulated" in w for w in report["warnings"])
    assert report_main([str(study), "--no-plots"]) == 0
    assert f"lists {gone}, which no longer exists" in capsys.readouterr().err
    rows = list(csv.DictReader((study / "report" / "runs.csv").open()))
    assert not any(r.get("run_id") == "mixed/ld/seed_1" and r.get("benchmark") == "ssv2" for r in rows)


@pytest.mark.parametrize("target", ["run.json", "probes/ssv2.json"])
def test_a_corrupt_registry_or_results_file_is_named_with_exit_status_2(study, capsys, target):
    from jepa_lit.study.__main__ import main as study_main

    broken = study / "mixed" / "ld" / "seed_1" / target
    broken.write_text(broken.read_text()[:40])  # cut short, as by a full disk
    assert study_main(["report", str(study), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert f"{broken}: not valid JSON" in err and "Traceback" not in err


@pytest.mark.parametrize("target, advice", [
    ("run.json", "delete it and rerun the sweep (the run resumes from the files in its folder)"),
    ("probes/ssv2.json", "delete it and rerun the sweep to probe again"),
    ("sweep.json", "rerun the sweep to write it again"),
])
def test_a_json_changed_after_it_was_written_fails_its_integrity_check(study, capsys, target, advice):
    from jepa_lit.study.__main__ import main as study_main
    from jepa_lit.study.registry import write_json

    path = study / target if target == "sweep.json" else study / "mixed" / "ld" / "seed_1" / target
    data = json.loads(path.read_text())
    write_json(path, data)  # as the sweep writes it: with its integrity record
    assert study_main(["report", str(study), "--no-plots"]) == 0
    capsys.readouterr()
    data.setdefault("metrics", {})["top1"] = 99.0  # still valid JSON, but not what was written
    path.write_text(json.dumps(data))
    assert study_main(["report", str(study), "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: damaged: it has " in err and f"its integrity record {path.name}.sha256.json" in err
    assert advice in err and "Traceback" not in err


def test_files_written_before_integrity_records_are_read_with_one_note(study, monkeypatch):
    import warnings

    from jepa_lit import atomic

    monkeypatch.setattr(atomic, "_unrecorded_noted", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        make_report(study, plots=False)  # 10 run.json, 18 results JSON and sweep.json, none with a record
    notes = [w for w in caught if "has no integrity record" in str(w.message)]
    assert len(notes) == 1 and "read unchecked" in str(notes[0].message)


def test_the_report_writes_its_files_with_integrity_records(study):
    from jepa_lit.atomic import integrity_problem, sidecar_path

    report = make_report(study, plots=False)
    assert report["files"] and all(sidecar_path(f).is_file() and integrity_problem(f) is None
                                   for f in report["files"])


# ----- the figures: readable at their saved size ---------------------------------------------------------
MANY = ["baseline", "mg", "amg", "hw", "delta", "fwm", "ld", "fwm_ld", "hw_ld", "fwm_hw_ld", "kinematic_l1_0_1",
        "sigreg_no_ema", "fwm_hw_ld_released", "random_init"]  # 14 rows, long names among them


def test_every_figure_keeps_its_text_inside_and_labels_each_variant(tmp_path, monkeypatch):
    """13 variants beside the baseline, the cross-regime plot over one shared benchmark (the narrowest figure):
    every title, tick label, legend and annotation lies inside the figure; the cross-regime plot has one x
    tick per variant, a legend of the benchmarks, a labelled y axis and a line at 0."""
    from jepa_lit.study import plots, report as report_module
    from jepa_lit.study.tables import BENCH_TITLES, NAMES

    root = tmp_path / "sweep"
    for k, variant in enumerate(MANY):
        for seed in (0, 1):
            make_run(root, "mixed", variant, seed, {"imagenet100": 20.0 + k + seed, "ssv2": 8.0 - k / 3 + 2 * seed})
            make_run(root, "ucf101", variant, seed, {"ssv2": 6.0 + k / 4 - seed}, reference="ucf101")
    monkeypatch.setattr(report_module, "tensorboard_hparams", lambda records, results, out: out)
    figures = {}

    def check(fig, path):  # instead of writing the PNG: draw it and see where its artists went
        fig.canvas.draw()
        drawn = fig.get_tightbbox(fig.canvas.get_renderer())  # inches: every drawn title, label, legend, text
        width, height = fig.get_size_inches()
        assert drawn.x0 >= -0.01 and drawn.y0 >= -0.01 and drawn.x1 <= width + 0.01 and drawn.y1 <= height + 0.01, (
            f"{Path(path).name}: drawn over x {drawn.x0:.2f}..{drawn.x1:.2f}, y {drawn.y0:.2f}..{drawn.y1:.2f} inches, "
            f"past the {width:.2f} x {height:.2f} inch figure")
        figures[Path(path).name] = fig

    monkeypatch.setattr(plots, "save_figure", check)
    report = make_report(root, appearance="imagenet100", motion=["ssv2"])
    assert set(figures) == {"heatmap_mixed.png", "heatmap_ucf101.png", "tradeoff_mixed_ssv2.png",
                            "cross_regime_mixed_ucf101.png"}
    names = [NAMES[v] for v in report["cross_regime"].variants]  # the table's order, the control last
    assert sorted(names) == sorted(NAMES[v] for v in MANY) and names[-1] == "Random init"
    cross = figures["cross_regime_mixed_ucf101.png"]
    ax = cross.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == names  # one tick per variant
    assert [t.get_text() for t in cross.legends[0].get_texts()] == [BENCH_TITLES["ssv2"]]
    assert ax.get_ylabel() == "mixed − ucf101 top-1 (points), 95% CI"
    assert any(list(line.get_ydata()) == [0, 0] for line in ax.get_lines())  # the zero line
    heat = figures["heatmap_ucf101.png"]
    ucf = next(t for t in report["tables"] if t.regime == "ucf101")
    assert [t.get_text() for t in heat.axes[0].get_yticklabels()] == [NAMES[v] for v in ucf.variants[1:]]  # no baseline
    assert heat.axes[1].get_ylabel() == "Δ top-1 vs Baseline (points)"  # the colour bar
    trade = figures["tradeoff_mixed_ssv2.png"].axes[0]
    assert "IN-100" in trade.get_xlabel() and "SSv2" in trade.get_ylabel()
    assert sorted(t.get_text() for t in trade.texts) == sorted(names)  # every point named, the baseline too


def test_saved_figures_hold_text_past_the_figure_edge(tmp_path):
    from PIL import Image

    from jepa_lit.study.plots import _pyplot, save_figure

    fig = _pyplot().figure(figsize=(2, 2))
    fig.text(0.5, 0.5, "a label far wider than the two-inch figure it is drawn on")
    save_figure(fig, tmp_path / "wide.png")
    assert Image.open(tmp_path / "wide.png").size[0] > 2 * 120  # the canvas grew to the text
