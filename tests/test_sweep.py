"""jepa_lit.study's sweep: spec expansion, the registry, resuming (finished runs skipped, interrupted ones resumed
from last.ckpt), the SLURM script, and one tiny real run through `python -m jepa_lit.cli`."""

from __future__ import annotations

import csv
import json
import os
import statistics
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from jepa_lit.atomic import sidecar_path
from jepa_lit.checkpointing import AtomicCheckpointIO
from jepa_lit.config import deep_merge
from jepa_lit.study import sweep
from jepa_lit.study.executor import Executor, subprocess_launch, tail
from jepa_lit.study.launchers import Resources, run_local, sbatch_script
from jepa_lit.study.plan import plan
from jepa_lit.study.registry import ProbeMetrics, RecordError, RunRecord, read_record, write_json, write_record
from jepa_lit.study.runs import expand, merged_config
from jepa_lit.study.spec import SpecError, load_spec

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = REPO / "experiments"


def write_spec(tmp_path: Path, **changes) -> Path:
    spec = {
        "name": "mini",
        "output": str(tmp_path / "out"),
        "seeds": [0, 1],
        "random_init": False,  # the control's own tests turn it on
        "regimes": {
            "ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"), "reference": "ucf101",
                       "probes": ["synthetic"], "variants": ["mg", "baseline", "kinematic_l1"]},
            "mixed": {"config": str(EXPERIMENTS / "mixed_{variant}.yaml"), "reference": "mixed",
                      "probes": ["imagenet100", "ssv2"], "variants": ["baseline", "fwm_hw_ld"]},
        },
        "probes": {b: str(EXPERIMENTS / "probes" / f"{b}.yaml") for b in ("synthetic", "imagenet100", "ssv2")},
        "scales": {
            "full": {},
            "tiny": {"seeds": [5], "env": {"OMP_NUM_THREADS": "1"},
                     "fit": {"trainer": {"max_steps": 4}}, "probe": {"all": {"trainer": {"max_epochs": 2}}}},
        },
    }
    spec.update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_expand_small_spec_into_runs(tmp_path):
    runs = expand(write_spec(tmp_path), "full")
    assert [r.run_id for r in runs] == [  # seed-major, the baseline first in each regime
        "ucf101/baseline/seed_0", "ucf101/mg/seed_0", "ucf101/kinematic_l1/seed_0",
        "mixed/baseline/seed_0", "mixed/fwm_hw_ld/seed_0",
        "ucf101/baseline/seed_1", "ucf101/mg/seed_1", "ucf101/kinematic_l1/seed_1",
        "mixed/baseline/seed_1", "mixed/fwm_hw_ld/seed_1"]
    mg0 = runs[1]
    assert mg0.run_dir == (tmp_path / "out" / "full" / "ucf101" / "mg" / "seed_0").resolve()
    assert mg0.config == str(EXPERIMENTS / "ucf101_mg.yaml") and mg0.reference == "ucf101"
    assert [Path(f).name for f in mg0.config_stack] == ["base.yaml", "ucf101.yaml", "ucf101_mg.yaml"]
    assert [p.benchmark for p in runs[4].probes] == ["imagenet100", "ssv2"]
    # the config hash ignores the seed (seeds of a variant share it) and tells variants apart
    assert mg0.config_hash == runs[6].config_hash and mg0.config_hash != runs[0].config_hash
    # the run's own overrides: its seed and a fixed directory save_dir/name/version = run_dir
    over = mg0.run_overrides()
    assert over["seed_everything"] == 0
    logger = over["trainer"]["logger"]["init_args"]
    assert Path(logger["save_dir"]) / logger["name"] / logger["version"] == mg0.run_dir
    assert mg0.fit_command("py") == ["py", "-m", "jepa_lit.cli", "fit", "--config", mg0.config,
                                     "--config", str(mg0.run_dir / "sweep_fit.yaml")]
    assert mg0.fit_command("py", resume=True) == [
        "py", "-m", "jepa_lit.cli", "fit", "--config", mg0.config, "--config", str(mg0.run_dir / "sweep_fit.yaml"),
        "--ckpt_path", "last"]  # the CLI reads the run's fixed logger folder, falling back to an intact checkpoint
    probe = mg0.probe_command(mg0.probes[0], "py")
    assert probe[:6] == ["py", "-m", "jepa_lit.cli", "test", "--probe", "synthetic"]
    assert probe[-1] == str(mg0.run_dir / "probes" / mg0.probes[0].output_name)


def test_scale_overrides_seeds_fit_and_probe(tmp_path):
    runs = expand(write_spec(tmp_path), "tiny")
    assert {r.seed for r in runs} == {5} and len(runs) == 5
    full = {r.run_id.replace("seed_0", "seed_5"): r for r in expand(write_spec(tmp_path), "full") if r.seed == 0}
    fwm = next(r for r in runs if r.variant == "fwm_hw_ld")
    assert fwm.run_dir.parts[-4:] == ("tiny", "mixed", "fwm_hw_ld", "seed_5")
    assert fwm.env == {"OMP_NUM_THREADS": "1"} and fwm.run_overrides()["trainer"]["max_steps"] == 4
    assert fwm.fit_overrides == {"trainer": {"max_steps": 4}}  # the sweep sets no objective widths
    assert fwm.config_hash != full[fwm.run_id].config_hash and fwm.scale_hash != full[fwm.run_id].scale_hash
    assert fwm.probes[0].overrides == {"trainer": {"max_epochs": 2}}
    assert fwm.probes[0].hash != full[fwm.run_id].probes[0].hash


def test_scale_hash_of_a_scale_without_the_removed_head_width_key_is_unchanged(tmp_path):
    """The scale hash once also covered the sweep's objective head width; a scale that never set it
    keeps the hash it had (sha256 of the JSON [fit, null])."""
    import hashlib

    (run,) = [r for r in expand(write_spec(tmp_path), "tiny") if r.run_id == "ucf101/baseline/seed_5"]
    before = hashlib.sha256(json.dumps([{"trainer": {"max_steps": 4}}, None], sort_keys=True).encode()).hexdigest()
    assert run.scale_hash == before[:16]


@pytest.mark.parametrize("change, message", [
    ({"seeds": "x"}, "sweep.yaml: seeds: expected a non-empty list of ints, got 'x'"),
    ({"scales": {"tiny": {"seeds": ["x"]}}}, "sweep.yaml: scales.tiny.seeds: expected a non-empty list of ints, got list"),
    ({"scales": {"tiny": {"jobs": 0}}}, "sweep.yaml: scales.tiny.jobs: expected an int >= 1, got 0"),
    ({"scales": {"tiny": {"env": ["A=1"]}}}, "sweep.yaml: scales.tiny.env: expected a mapping, got list"),
    ({"keep_feature_cache": "no"}, "sweep.yaml: keep_feature_cache: expected true or false, got 'no'"),
    ({"slurm": {"gpus": 4}}, r"sweep.yaml: slurm: unknown key\(s\) \['gpus'\]"),
    ({"slurm": {"max_parallel": 0}}, "sweep.yaml: slurm.max_parallel: expected an int >= 1, got 0"),
    ({"report": {"motion": "ssv2"}}, "sweep.yaml: report.motion: expected a list of strings, got 'ssv2'"),
    ({"regimes": {"ucf101": {"config": "ucf101_{variant}.yaml", "variants": "baseline"}}},
     "sweep.yaml: regimes.ucf101.variants: expected a list of strings, got 'baseline'"),
    ({"regimes": {"ucf101": {"variants": ["baseline"]}}}, "sweep.yaml: regimes.ucf101.config: is missing"),
    ({"probes": {"ssv2": 3}}, "sweep.yaml: probes.ssv2: expected a non-empty string, got 3"),
    ({"random_init": "yes"}, "sweep.yaml: random_init: expected true or false, got 'yes'"),
    ({"report": {"cross_regime": ["mixed"]}}, r"sweep.yaml: report.cross_regime: expected two different regimes"),
    ({"regimes": {"ucf101": {"config": "ucf101_{variant}.yaml", "variants": ["baseline"], "fit": ["data"]}}},
     "sweep.yaml: regimes.ucf101.fit: expected a mapping, got list"),
    ({"scales": {"tiny": {"report": {"header": ["x"]}}}}, "sweep.yaml: scales.tiny.report.header: expected a string"),
])
def test_spec_values_of_the_wrong_type_are_named_by_key(tmp_path, change, message):
    spec = write_spec(tmp_path, **change)
    with pytest.raises(SpecError, match=message):
        load_spec(spec, "tiny" if "scales" in change else "full")


def flat(tree: dict, prefix: str = "") -> dict:
    """{"a.b.c": leaf} of a nested mapping."""
    out = {}
    for key, value in tree.items():
        out.update(flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out


def test_a_regimes_fit_is_merged_after_the_scales_into_its_runs_configs(tmp_path):
    """Two regimes of the same variant files trained on different data: each regime's fit goes over the
    scale's, into the merged config (so the config hash) and sweep_fit.yaml, the random_init control's too."""
    def spec(b_data: dict) -> Path:
        config = str(EXPERIMENTS / "ucf101_{variant}.yaml")
        return write_spec(tmp_path, random_init=True, regimes={
            "a": {"config": config, "variants": ["baseline"], "fit": {"data": {"init_args": {"root": "data/a"}}}},
            "b": {"config": config, "variants": ["baseline"], "fit": {"data": {"init_args": b_data}}}},
            scales={"tiny": {"seeds": [0], "fit": {"trainer": {"max_steps": 4},
                                                   "data": {"init_args": {"root": "data/scale", "batch_size": 2}}}}})

    runs = {r.run_id: r for r in expand(spec({"root": "data/b", "frame_step": 2}), "tiny")}
    a, b = runs["a/baseline/seed_0"], runs["b/baseline/seed_0"]
    ma, mb = (flat(merged_config([yaml.safe_load(Path(f).read_text()) for f in r.config_stack], r.fit_overrides))
              for r in (a, b))
    assert {k for k in ma.keys() | mb.keys() if ma.get(k) != mb.get(k)} == {"data.init_args.root",
                                                                            "data.init_args.frame_step"}
    assert (ma["data.init_args.root"], mb["data.init_args.root"]) == ("data/a", "data/b")  # over the scale's
    assert ma["data.init_args.batch_size"] == mb["data.init_args.batch_size"] == 2  # the scale's, kept
    assert a.config_hash != b.config_hash and a.scale_hash == b.scale_hash  # a table's runs share the scale hash
    assert a.run_overrides()["data"] == {"init_args": {"root": "data/a", "batch_size": 2}}  # sweep_fit.yaml
    for regime, baseline in (("a", a), ("b", b)):  # the control: its regime's baseline config, with the regime's fit
        assert runs[f"{regime}/random_init/seed_0"].fit_overrides == baseline.fit_overrides
    # a regime's fit that changes the architecture (crop_size: the encoder's img_size) changes its control's hash
    bigger = {r.run_id: r.config_hash for r in expand(spec({"root": "data/b", "crop_size": 128}), "tiny")}
    assert bigger["b/random_init/seed_0"] != runs["b/random_init/seed_0"].config_hash
    assert bigger["a/random_init/seed_0"] == runs["a/random_init/seed_0"].config_hash


def test_a_scales_report_sets_only_the_entries_it_names():
    """report is merged by entry: the smoke scale's header leaves the spec's plot axes and cross_regime."""
    full, smoke = load_spec(EXPERIMENTS / "sweep.yaml"), load_spec(EXPERIMENTS / "sweep.yaml", "smoke")
    assert full.report.header == "" and smoke.report.header.startswith("Smoke scale: a plumbing check")
    assert "not results" in smoke.report.header
    assert (smoke.report.appearance, smoke.report.motion, smoke.report.cross_regime) == (
        full.report.appearance, full.report.motion, full.report.cross_regime)
    assert sweep.sweep_summary(smoke)["report"]["header"] == smoke.report.header  # what the report reads


def test_run_record_round_trip(tmp_path):
    """The sweep writes a RunRecord, the report reads the same RunRecord back; keys it does not know are kept."""
    (run,) = [r for r in expand(write_spec(tmp_path), "tiny") if r.run_id == "mixed/fwm_hw_ld/seed_5"]
    record = RunRecord.new(run)
    record.status, record.pretraining = "done", {"complete": True, "global_step": 4}
    record.metrics["ssv2"] = ProbeMetrics(top1=12.5, comparison_key="k" * 64, top1_ci95=[10.0, 15.0], epochs=2,
                                          results="probes/ssv2-abc.json")
    record.extra["integrity"] = {"sha256": "0" * 64}  # a key a later version adds
    write_record(run.registry_path, record)
    data = json.loads(run.registry_path.read_text())
    assert data["schema"] == "jepa_lit.sweep_run/1" and data["metrics"]["ssv2"]["top1"] == 12.5
    assert data["is_baseline"] is False and data["integrity"] == {"sha256": "0" * 64} and "host" not in data
    back = read_record(run.registry_path)
    assert back.directory == run.run_dir
    back.directory = None
    assert back == record and back.pretrained and not back.baseline_run
    run.registry_path.write_text('{"run_id": "x", "regime": "r", "variant": "v", "seed": "0"}')
    with pytest.raises(RecordError, match=r"run.json: damaged: it has \d+ bytes, its integrity record"):
        read_record(run.registry_path)  # edited after the sweep wrote it
    sidecar_path(run.registry_path).unlink()  # as a record written before integrity records existed
    with pytest.raises(RecordError, match=r"run.json: seed: expected an int, got '0'"):
        read_record(run.registry_path)
    run.registry_path.write_text("{not json")
    with pytest.raises(RecordError, match=r"run.json: not valid JSON"):
        read_record(run.registry_path)


def test_expanding_and_listing_runs_imports_neither_lightning_nor_torch(tmp_path):
    spec = write_spec(tmp_path)
    code = ("import sys\n"
            "from jepa_lit.study.sweep import main\n"
            f"assert main([{str(spec)!r}, '--dry-run']) == 0\n"
            f"assert main([{str(spec)!r}, '--list', '--scale', 'tiny']) == 0\n"
            "print(sorted(m for m in ('lightning', 'torch', 'lightning.pytorch') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == "[]"
    assert "mixed/fwm_hw_ld/seed_5" in lines and "ucf101/baseline/seed_0" in "\n".join(lines)


def test_config_hash_covers_what_the_run_sees():
    base = {"trainer": {"max_steps": 10, "callbacks": [{"class_path": "A"}]},
            "data": {"class_path": "x.Mixed", "init_args": {"root": "data", "frame_step": 2}}}
    regime = {"config": ["base.yaml"], "data": {"init_args": {"batch_size": 8}}}
    fit = {"trainer": {"callbacks": [{"class_path": "B"}]}, "data": {"class_path": "x.Synthetic", "init_args": {"num_clips": 8}}}
    merged = merged_config([base, regime], fit)
    assert merged == {"trainer": {"max_steps": 10, "callbacks": [{"class_path": "B"}]},  # lists replaced
                      "data": {"class_path": "x.Synthetic", "init_args": {"num_clips": 8}}}  # another class: replaced
    edited = dict(base, trainer={"max_steps": 10, "callbacks": [{"class_path": "C"}]})  # a callback the scale replaces
    assert merged_config([edited, regime], fit) == merged
    assert merged_config([dict(base, trainer={"max_steps": 11}), regime], fit) != merged


@pytest.mark.parametrize("change, message", [
    ({"seeds": [0, 0]}, "repeats a seed"),
    ({"bogus": 1}, "unknown key"),
    ({"regimes": {"ucf101": {"config": "ucf101_{variant}.yaml", "variants": ["mg"]}}}, "lacks the baseline"),
    ({"regimes": {"ucf101": {"config": "ucf101_{variant}.yaml", "variants": ["baseline"], "probes": ["nope"]}}},
     "no probe config"),
])
def test_bad_specs_are_refused_naming_the_key(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        load_spec(write_spec(tmp_path, **change))
    with pytest.raises(ValueError, match="no scale 'huge'"):
        load_spec(write_spec(tmp_path), "huge")


def test_a_final_step_that_lightnings_checkpoint_would_not_save_is_refused(tmp_path):
    checkpoint = {"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                  "init_args": {"save_last": True, "every_n_train_steps": 2}}
    with pytest.raises(ValueError, match="max_steps 5 is not a multiple of ModelCheckpoint every_n_train_steps 2"):
        expand(write_spec(tmp_path, fit={"trainer": {"max_steps": 5, "callbacks": [checkpoint]}}))
    # jepa-lit's own RunCheckpoint (base.yaml's callback) always saves the final step: no refusal.
    expand(write_spec(tmp_path, fit={"trainer": {"max_steps": 30001}}))


def test_missing_variant_file_is_named(tmp_path):
    spec = write_spec(tmp_path, regimes={"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"),
                                                    "variants": ["baseline", "does_not_exist"]}})
    with pytest.raises(FileNotFoundError, match="ucf101_does_not_exist.yaml"):
        expand(spec)


REGIMES = ("mixed", "ucf101", "synthetic")


def test_shipped_sweep_covers_every_experiment_file():
    runs = expand(EXPERIMENTS / "sweep.yaml", "full")
    for regime in REGIMES:  # every variant file, and the random_init control of each regime
        files = {p.stem.split("_", 1)[1] for p in EXPERIMENTS.glob(f"{regime}_*.yaml")}
        assert {r.variant for r in runs if r.regime == regime} == files | {"random_init"}
    variant_files = [p for regime in REGIMES for p in EXPERIMENTS.glob(f"{regime}_*.yaml")]
    assert {r.seed for r in runs} == {0, 1, 2} and len(runs) == 3 * (len(variant_files) + len(REGIMES))
    assert {p.benchmark for r in runs if r.regime == "mixed" for p in r.probes} == {"diving48", "imagenet100", "ssv2"}
    assert {p.benchmark for r in runs if r.regime == "synthetic" for p in r.probes} == {"synthetic"}
    ucf = [r for r in runs if r.regime == "ucf101"]
    assert [p.benchmark for p in ucf[-1].probes] == ["diving48", "imagenet100", "ssv2", "synthetic", "ucf101"]
    smoke = expand(EXPERIMENTS / "sweep.yaml", "smoke")
    assert {r.seed for r in smoke} == {0, 1} and smoke[0].variant == "baseline"
    assert sorted({r.regime for r in smoke}) == sorted(REGIMES)
    assert len(smoke) == 2 * (4 + 5 + 4)  # per seed: ucf101 3 + mixed 4 + synthetic 3 variants, 3 controls


def test_the_headline_variants_run_as_released_beside_the_corrected_ones():
    runs = {r.run_id: r for r in expand(EXPERIMENTS / "sweep.yaml", "full")}
    for variant in ("hw_ld", "fwm_hw_ld"):
        corrected, released = runs[f"mixed/{variant}/seed_0"], runs[f"mixed/{variant}_released/seed_0"]
        objectives = [yaml.safe_load(Path(r.config).read_text())["model"]["init_args"]["objectives"]
                      for r in (corrected, released)]
        ld = [next(o for o in listed if o["class_path"].endswith("LatentDynamics")) for listed in objectives]
        assert ld[0]["init_args"].pop("released_no_grad") is False
        assert ld[1]["init_args"].pop("released_no_grad") is True
        assert ld[0] == ld[1]  # nothing else differs in the LD term
        assert [o for o in objectives[0] if o not in ld] == [o for o in objectives[1] if o not in ld]
        assert corrected.config_hash != released.config_hash


def test_random_init_control_expands_per_regime_and_seed(tmp_path):
    runs = expand(write_spec(tmp_path, random_init=True), "tiny")
    controls = [r for r in runs if r.variant == "random_init"]
    assert [r.run_id for r in controls] == ["ucf101/random_init/seed_5", "mixed/random_init/seed_5"]
    control = controls[1]
    baseline = next(r for r in runs if r.run_id == "mixed/baseline/seed_5")
    assert not control.pretrain and baseline.pretrain
    assert control.config == baseline.config  # the baseline's architecture
    assert control.config_hash != baseline.config_hash
    assert control.checkpoint == control.run_dir / "checkpoints" / "architecture.ckpt"
    command = control.probe_command(control.probes[0], "py")
    assert command[command.index("--ckpt_path") + 1] == str(control.checkpoint)
    assert command[command.index("--encoder") + 1] == "random_init"
    assert "--encoder" not in baseline.probe_command(baseline.probes[0], "py")
    assert plan(control)[0] == "start" and "no pretraining" in plan(control)[1]
    # its hash covers the architecture only: another learning rate leaves it, another width does not
    lr = expand(write_spec(tmp_path, random_init=True, fit={"model": {"init_args": {"optimizer": {"lr": 1.0}}}}))
    width = expand(write_spec(tmp_path, random_init=True,
                              fit={"data": {"init_args": {"crop_size": 128}}}))  # the encoder's img_size
    full = {r.run_id: r.config_hash for r in expand(write_spec(tmp_path, random_init=True))}
    assert {r.run_id: r.config_hash for r in lr}["mixed/random_init/seed_0"] == full["mixed/random_init/seed_0"]
    assert {r.run_id: r.config_hash for r in lr}["mixed/baseline/seed_0"] != full["mixed/baseline/seed_0"]
    assert {r.run_id: r.config_hash for r in width}["mixed/random_init/seed_0"] != full["mixed/random_init/seed_0"]
    with pytest.raises(SpecError, match="regimes.mixed.variants: names 'random_init'"):
        load_spec(write_spec(tmp_path, regimes={"mixed": {"config": "mixed_{variant}.yaml",
                                                          "variants": ["baseline", "random_init"]}}))


def test_random_init_control_writes_the_baselines_architecture_and_probes_it_untrained(tmp_path):
    """The executor writes no pretraining for the control, only an architecture file that the probe CLI's
    --encoder random_init builds: the baseline's encoder (with the scale's overrides), weights from the seed."""
    from jepa_lit.eval.checkpoint import load_eval_encoder

    fit = {"model": {"init_args": {"encoder": {"init_args": {"size": "tiny"}}}},
           "data": {"init_args": {"num_frames": 8, "crop_size": 64}}}  # the encoder's clip size is the data's
    spec = write_spec(tmp_path, random_init=True, fit=fit)
    control = next(r for r in expand(spec) if r.run_id == "ucf101/random_init/seed_1")
    launch = FakeLaunch()
    assert Executor(launch=launch, echo=lambda m: None)(control) == "done"
    assert [cmd[3] for _, cmd in launch.calls] == ["test"]  # no fit
    assert "--encoder" in launch.calls[0][1] and "random_init" in launch.calls[0][1]
    record = read_record(control.registry_path)
    assert record.status == "done" and record.pretraining["random_init"] and record.pretraining["global_step"] == 0
    frozen = load_eval_encoder(str(control.checkpoint), random_init=True, seed=1)
    assert frozen.used == "random_init"
    assert (frozen.encoder_config["size"], frozen.encoder_config["img_size"], frozen.encoder_config["num_frames"]) == (
        "tiny", 64, 8)
    assert frozen.encoder_config["patch_size"] == 16 and frozen.encoder_config["interpolate_rope"] is True  # base.yaml
    again = load_eval_encoder(str(control.checkpoint), random_init=True, seed=1)
    other = load_eval_encoder(str(control.checkpoint), random_init=True, seed=2)
    assert frozen.weights_sha256 == again.weights_sha256 != other.weights_sha256  # the seed decides the weights
    with pytest.raises(ValueError, match="no 'encoder.\\*' weights"):  # never probed as if it had trained
        load_eval_encoder(str(control.checkpoint))
    assert plan(control)[0] == "skip"


def test_dry_run_lists_the_new_runs(capsys):
    assert sweep.main([str(EXPERIMENTS / "sweep.yaml"), "--scale", "smoke", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for run_id in ("mixed/fwm_hw_ld_released/seed_0", "synthetic/kinematic/seed_1", "synthetic/sigreg/seed_0",
                   "ucf101/random_init/seed_0", "mixed/random_init/seed_1", "synthetic/random_init/seed_1"):
        assert run_id in out
    assert "no pretraining (random_init control" in out
    assert sweep.main([str(EXPERIMENTS / "sweep.yaml"), "--list"]) == 0
    full = capsys.readouterr().out.split()
    assert {"mixed/hw_ld_released/seed_2", "mixed/fwm_hw_ld_released/seed_0", "synthetic/baseline/seed_2"} <= set(full)


# ----- resuming, with a stand-in for the two commands -------------------------------------------
class FakeLaunch:
    """Plays `jepa-lit fit` (config.yaml + a last.ckpt at some step) and `jepa-lit test --probe` (a results JSON).
    ``crash``: run_id -> the step at which its next pretraining dies."""

    def __init__(self, max_steps=4, crash=None, crash_status=1):
        self.max_steps, self.crash, self.calls = max_steps, dict(crash or {}), []
        self.crash_status = crash_status  # 0: the process exits cleanly but short of max_steps

    def __call__(self, cmd, log, env):
        run_dir = Path(log).parent.parent
        run_id = "/".join(run_dir.parts[-3:])
        self.calls.append((run_id, cmd))
        if cmd[3] == "fit":
            (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
            (run_dir / "config.yaml").write_text(yaml.safe_dump({"trainer": {"max_steps": self.max_steps}}))
            if "--ckpt_path" in cmd:  # `last`: the run's last.ckpt, or the intact one, as the CLI resolves it
                from jepa_lit.cli.fit import intact_or_newest_intact

                assert cmd[cmd.index("--ckpt_path") + 1] == "last"
                resumed = intact_or_newest_intact(run_dir / "checkpoints" / "last.ckpt")
                assert torch.load(resumed)["global_step"] < self.max_steps
            step = self.crash.pop(run_id, self.max_steps)
            torch.save({"global_step": step}, run_dir / "checkpoints" / "last.ckpt")
            return self.crash_status if step < self.max_steps else 0
        output = Path(cmd[cmd.index("--output") + 1])
        output.write_text(json.dumps({
            "metrics": {"top1": 50.0 + len(self.calls), "top1_ci95": [40.0, 60.0], "num_test_clips": 40},
            "comparison_key": "k" * 16, "training": {"epochs": 2}, "checkpoint": {"global_step": self.max_steps},
            "encoder": {"used": "target_encoder"}}))
        return 0


def test_a_run_that_exits_cleanly_short_of_its_steps_is_failed_with_the_step(tmp_path):
    spec = write_spec(tmp_path, regimes={"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"),
                                                    "probes": ["synthetic"], "variants": ["baseline"]}},
                      seeds=[0])
    runs = expand(spec)
    fake = FakeLaunch(crash={"ucf101/baseline/seed_0": 2}, crash_status=0)
    assert run_local(runs, Executor(launch=fake, echo=lambda m: None)) == {"ucf101/baseline/seed_0": "failed"}
    error = json.loads(runs[0].registry_path.read_text())["error"]
    assert "pretraining stopped at step 2 of 4" in error and plan(runs[0])[0] == "resume"


def statuses(runs):
    return {r.run_id: json.loads(r.registry_path.read_text())["status"] for r in runs}


def test_resume_skips_finished_runs_and_resumes_the_interrupted_one(tmp_path):
    spec = write_spec(tmp_path, regimes={"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"),
                                                    "probes": ["synthetic"], "variants": ["baseline", "mg"]}},
                      seeds=[0])
    runs = expand(spec)
    fake = FakeLaunch(crash={"ucf101/mg/seed_0": 2})
    sweep.register_pending(runs)
    assert statuses(runs) == {"ucf101/baseline/seed_0": "pending", "ucf101/mg/seed_0": "pending"}
    first = run_local(runs, Executor(launch=fake, echo=lambda m: None))
    assert first == {"ucf101/baseline/seed_0": "done", "ucf101/mg/seed_0": "failed"}
    mg = json.loads(runs[1].registry_path.read_text())
    assert "pretraining exited with status 1" in mg["error"]
    assert plan(runs[0]) == ("skip", "done") and plan(runs[1])[0] == "resume"

    fake.calls.clear()
    executor = Executor(launch=fake, echo=lambda m: None)
    second = run_local(runs, executor)
    assert second == {"ucf101/baseline/seed_0": "done", "ucf101/mg/seed_0": "done"}
    assert executor.executed == {"ucf101/mg/seed_0"}  # the baseline was skipped as complete (the ETA leaves it out)
    assert [(run_id, cmd[3]) for run_id, cmd in fake.calls] == [("ucf101/mg/seed_0", "fit"),
                                                                ("ucf101/mg/seed_0", "test")]
    assert fake.calls[0][1][-2:] == ["--ckpt_path", "last"]  # resumed, not restarted
    mg = json.loads(runs[1].registry_path.read_text())
    assert [a["action"] for a in mg["attempts"]] == ["start", "resume"] and mg["attempts"][1]["resumed_from_step"] == 2
    assert mg["pretraining"]["global_step"] == 4 and mg["metrics"]["synthetic"]["top1"] == 52.0
    assert mg["config_hash"] == runs[1].config_hash and mg["seed"] == 0 and mg["package"]["version"]
    assert yaml.safe_load((runs[1].run_dir / "probes" / "synthetic.sweep.yaml").read_text())["seed_everything"] == 0

    fake.calls.clear()
    executor = Executor(launch=fake, echo=lambda m: None)
    assert set(run_local(runs, executor).values()) == {"done"}
    assert fake.calls == [] and executor.executed == set()  # everything finished: nothing runs again

    # a probe setting changed: only that probe runs again, into a new results file
    changed = expand(write_spec(tmp_path, regimes={"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"),
                                                              "probes": ["synthetic"], "variants": ["baseline", "mg"]}},
                                seeds=[0], probe={"synthetic": {"trainer": {"max_epochs": 7}}}))
    assert plan(changed[0])[0] == "probe"
    run_local(changed[:1], Executor(launch=fake, echo=lambda m: None))
    assert [cmd[3] for _, cmd in fake.calls] == ["test"]


def test_changed_config_is_refused_then_rerun_aside(tmp_path):
    regimes = {"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"), "variants": ["baseline"]}}
    runs = expand(write_spec(tmp_path, regimes=regimes, seeds=[0]))
    fake = FakeLaunch()
    assert run_local(runs, Executor(launch=fake, echo=lambda m: None)) == {"ucf101/baseline/seed_0": "done"}
    changed = expand(write_spec(tmp_path, regimes=regimes, seeds=[0], fit={"trainer": {"max_steps": 8}}))
    assert plan(changed[0])[0] == "changed"
    assert run_local(changed, Executor(launch=fake, echo=lambda m: None)) == {"ucf101/baseline/seed_0": "changed"}
    assert run_local(changed, Executor(launch=fake, rerun_changed=True, echo=lambda m: None)) == {
        "ucf101/baseline/seed_0": "done"}
    assert len(list(changed[0].run_dir.parent.glob("seed_0.replaced-*"))) == 1  # the old run kept, aside


def test_progress_line_estimates_from_the_runs_that_did_work():
    # 12 of 48 finished, 3 of them skipped as complete; 9 ran, 70 s each on average; 2 jobs: 70 x 36 / 2 = 21 min
    assert sweep.progress_line(48, 12, 3, [60.0, 80.0] * 4 + [70.0], 845.0, 2) == (
        "[sweep] 12/48 runs finished (3 skipped as complete), 36 left, elapsed 14:05, "
        "ETA 21 min (mean 1m10s per run over 9 runs, 2 jobs)")
    # one run left: one job's time, whatever the jobs; hours past two; nothing worked yet: no estimate; all done
    assert sweep.progress_line(10, 9, 0, [600.0], 3700.0, 4).endswith(
        "1 left, elapsed 1:01:40, ETA 10 min (mean 10m00s per run over 1 run, 4 jobs)")
    assert ", ETA 5.0 h (" in sweep.progress_line(20, 2, 0, [2000.0, 2000.0], 4000.0, 2)
    assert sweep.progress_line(5, 3, 3, [], 2.0, 2) == (
        "[sweep] 3/5 runs finished (3 skipped as complete), 2 left, elapsed 0:02, "
        "ETA after the first run that does work")
    assert sweep.progress_line(5, 5, 0, [30.0] * 5, 90.0, 2) == (
        "[sweep] 5/5 runs finished (0 skipped as complete), 0 left, elapsed 1:30")


def test_the_local_sweep_prints_progress_counting_skipped_runs_apart(tmp_path, monkeypatch, capsys):
    import functools

    from jepa_lit.study import executor

    monkeypatch.setattr(executor, "Executor", functools.partial(Executor, launch=FakeLaunch()))
    regime = {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"), "probes": ["synthetic"],
              "variants": ["baseline", "mg"]}
    spec = str(write_spec(tmp_path, seeds=[0], regimes={"ucf101": regime}))

    def progress() -> list[str]:
        assert sweep.main([spec, "--jobs", "1"]) == 0
        return [line.split("] ", 1)[1] for line in capsys.readouterr().out.splitlines() if "[sweep]" in line]

    first = progress()
    assert [line.split(", elapsed")[0] for line in first] == [
        "[sweep] 1/2 runs finished (0 skipped as complete), 1 left",
        "[sweep] 2/2 runs finished (0 skipped as complete), 0 left"]
    assert "per run over 1 run, 1 job)" in first[0]
    again = progress()  # both complete: nothing to time, no estimate
    assert again[0].startswith("[sweep] 1/2 runs finished (1 skipped as complete), 1 left")
    assert again[0].endswith("ETA after the first run that does work") and "2 skipped as complete" in again[1]


def test_a_run_locked_by_a_live_process_is_left_alone(tmp_path):
    import fcntl

    runs = expand(write_spec(tmp_path, seeds=[0]))[:1]
    runs[0].run_dir.mkdir(parents=True)
    with open(runs[0].run_dir / ".lock", "w") as other:  # another process's lock (a separate open file)
        fcntl.flock(other, fcntl.LOCK_EX)
        fake = FakeLaunch()
        assert run_local(runs, Executor(launch=fake, echo=lambda m: None)) == {runs[0].run_id: "locked"}
        assert fake.calls == []
    assert run_local(runs, Executor(launch=fake, echo=lambda m: None)) == {runs[0].run_id: "done"}  # released


def test_a_fit_outliving_its_sweep_keeps_the_run_locked(tmp_path):
    """kill -9 of the sweep alone: its fit trains on and holds the lock, so a rerun leaves the run alone."""
    from jepa_lit.study.lock import LOCK_FD_VARIABLE

    runs = expand(write_spec(tmp_path, seeds=[0]))[:1]
    orphans = []

    def orphaning(cmd, log, env):  # the fit goes on in a process the sweep no longer waits for
        orphans.append(subprocess.Popen(["sleep", "60"], pass_fds=(int(env[LOCK_FD_VARIABLE]),)))
        return -9
    try:
        assert run_local(runs, Executor(launch=orphaning, echo=lambda m: None)) == {runs[0].run_id: "failed"}
        fake = FakeLaunch()
        assert run_local(runs, Executor(launch=fake, echo=lambda m: None)) == {runs[0].run_id: "locked"}
        assert fake.calls == []
    finally:
        for orphan in orphans:
            orphan.kill()
            orphan.wait()
    assert run_local(runs, Executor(launch=FakeLaunch(), echo=lambda m: None)) == {runs[0].run_id: "done"}


@pytest.mark.parametrize("status", [143, 130, -15])
def test_a_run_stopped_by_a_signal_is_interrupted_not_failed(tmp_path, status):
    runs = expand(write_spec(tmp_path, seeds=[0]))[:1]
    fake = FakeLaunch(crash={runs[0].run_id: 2}, crash_status=status)
    assert run_local(runs, Executor(launch=fake, echo=lambda m: None)) == {runs[0].run_id: "interrupted"}
    assert statuses(runs) == {runs[0].run_id: "interrupted"} and plan(runs[0])[0] == "resume"


def test_once_the_sweep_stops_no_run_starts(tmp_path):
    from jepa_lit.study import executor

    runs = expand(write_spec(tmp_path, seeds=[0]))[:2]
    fake = FakeLaunch()
    executor.STOPPING.set()
    try:
        assert set(run_local(runs, Executor(launch=fake, echo=lambda m: None)).values()) == {"interrupted"}
    finally:
        executor.STOPPING.clear()
    assert fake.calls == []


def test_every_run_records_the_git_info_read_once_before_the_jobs(tmp_path, monkeypatch):
    from jepa_lit.study import registry
    from jepa_lit.study.registry import PackageInfo

    runs = expand(write_spec(tmp_path, seeds=[0]))[:4]
    calls = []
    monkeypatch.setattr(registry, "package_info", lambda: calls.append(1) or PackageInfo(version="x"))
    package = PackageInfo(version="0.2.0", git_commit="c0ffee", git_dirty=False)
    run_local(runs, Executor(launch=FakeLaunch(), echo=lambda m: None, package=package), jobs=2)
    recorded = [json.loads(r.registry_path.read_text()) for r in runs]
    assert [r["package"]["git_commit"] for r in recorded] == ["c0ffee"] * 4
    assert all(a["package"]["git_commit"] == "c0ffee" for r in recorded for a in r["attempts"])
    # the environment the sweep gave its commands and the CPU, recorded with each attempt
    assert all(a["env"] == run.env and a["cpu"]["model"] for run, r in zip(runs, recorded) for a in r["attempts"])
    assert calls == []  # nothing read git again while the jobs ran


@pytest.mark.parametrize("target, dry_run", [("run.json", True), ("run.json", False), ("results", True),
                                             ("results", False)])
def test_a_corrupt_registry_file_is_named_and_exits_2(tmp_path, capsys, target, dry_run):
    from jepa_lit.study.__main__ import main as study_main

    spec = write_spec(tmp_path, regimes={"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"),
                                                    "probes": ["synthetic"], "variants": ["baseline"]}}, seeds=[0])
    runs = expand(spec)
    run_local(runs, Executor(launch=FakeLaunch(), echo=lambda m: None))
    broken = runs[0].registry_path if target == "run.json" else runs[0].run_dir / "probes" / runs[0].probes[0].output_name
    broken.write_text('{"run_id": "ucf101/baseline/seed_0", "metrics": {"top1": 5')  # cut short
    capsys.readouterr()
    assert study_main(["sweep", str(spec), "--scale", "full", *(["--dry-run"] if dry_run else [])]) == 2
    err = capsys.readouterr().err
    # the sweep writes run.json with its integrity record, which catches the cut; the fake probe wrote none
    expected = f"{broken}: damaged: it has " if target == "run.json" else f"{broken}: not valid JSON"
    assert expected in err and "Traceback" not in err


def test_sbatch_array_script(tmp_path):
    spec = load_spec(write_spec(tmp_path, slurm={"partition": "gpu", "max_parallel": 3}))
    runs = expand(spec)
    script = sbatch_script(runs, spec, Resources(1, 4, 4), python="/venv/bin/python")
    assert "#SBATCH --array=0-9%3" in script and "#SBATCH --ntasks-per-node=4" in script
    assert "#SBATCH --gres=gpu:4" in script and "#SBATCH --partition=gpu" in script
    (command,) = [line for line in script.splitlines() if "-m jepa_lit.study sweep" in line]
    assert shlex.split(command)[:4] == ["/venv/bin/python", "-m", "jepa_lit.study", "sweep"]
    assert '--run-id "$RUN_ID"' in command and "--fit-prefix 'srun --kill-on-bad-exit=1 --cpus-per-task=8'" in command
    assert f"#   9: {runs[9].run_id}" in script
    assert script_runs(script) == [r.run_id for r in runs]


def script_runs(script: str) -> list[str]:
    """The RUNS=(...) array of an sbatch script, as bash reads it."""
    (line,) = [line for line in script.splitlines() if line.startswith("RUNS=(")]
    return shlex.split(line[len("RUNS=("):-1])


def task_arguments(script: Path, task: int) -> list[str]:
    """The arguments task ``task`` passes to ``python -m jepa_lit.study sweep``: the script run by bash with
    that command replaced by printf, so bash itself resolves ${RUNS[$SLURM_ARRAY_TASK_ID]}."""
    text = script.read_text().replace(f"{shlex.quote(sys.executable)} -m jepa_lit.study sweep", "exec printf '%s\\0'")
    assert "exec printf" in text
    out = subprocess.run(["bash", "-c", text], capture_output=True, text=True, check=True,
                         env={**os.environ, "SLURM_ARRAY_TASK_ID": str(task)})
    return out.stdout.split("\0")[:-1]


def test_slurm_tasks_of_an_only_selection_run_their_own_run_by_id(tmp_path, capsys):
    """With --only, task i must run the i-th *selected* run (not run i of the whole expansion), and keep
    doing so when the spec is edited while the array waits in the queue."""
    spec = write_spec(tmp_path)
    assert sweep.main([str(spec), "--only", "mixed/.*", "--launcher", "slurm", "--no-submit"]) == 0
    script = tmp_path / "out" / "full" / "slurm" / "sweep-1x4gpu.sbatch"  # one layout: 4 GPUs (base.yaml)
    text = script.read_text()
    selected = ["mixed/baseline/seed_0", "mixed/fwm_hw_ld/seed_0", "mixed/baseline/seed_1", "mixed/fwm_hw_ld/seed_1"]
    assert "#SBATCH --array=0-3\n" in text and script_runs(text) == selected
    assert all(f"#   {i}: {run_id}\n" in text for i, run_id in enumerate(selected))
    assert [r.run_id for r in expand(spec)][0] == "ucf101/baseline/seed_0"  # what --index 0 would have run

    # the spec edited while queued: the ucf101 runs before the mixed ones change, the selected ids do not
    write_spec(tmp_path, seeds=[1, 0])
    for task in (0, 3):
        args = task_arguments(script, task)
        assert args[0] == str(spec.resolve()) and args[args.index("--run-id") + 1] == selected[task]
        capsys.readouterr()
        assert sweep.main([*args, "--dry-run"]) == 0  # the task's own selection, without running it
        listed = [line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
        assert listed == [selected[task]]


def test_a_selection_that_matches_nothing_is_an_error(tmp_path, capsys):
    spec = write_spec(tmp_path)
    assert sweep.main([str(spec), "--only", "ucf101/kinematic_l2"]) == 2
    err = capsys.readouterr().err
    assert "--only 'ucf101/kinematic_l2' matches none of the 10 runs" in err
    assert "did you mean 'ucf101/kinematic_l1/seed_" in err and "run ids (regime/variant/seed_S): ucf101/baseline/seed_0" in err
    assert not (tmp_path / "out").exists()  # nothing registered, nothing run
    assert sweep.main([str(spec), "--only", "mixed/(", "--dry-run"]) == 2
    assert "is not a regular expression" in capsys.readouterr().err
    assert sweep.main([str(spec), "--run-id", "mixed/fwm_hw_ld/seed_7", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "--run-id 'mixed/fwm_hw_ld/seed_7' is not a run of" in err and "did you mean 'mixed/fwm_hw_ld/seed_" in err
    assert sweep.main([str(spec), "--run-id", "mixed/fwm_hw_ld/seed_1", "--dry-run"]) == 0
    assert "1 runs" in capsys.readouterr().out


def test_probe_commands_do_not_inherit_the_slurm_task_layout(tmp_path, monkeypatch):
    run = expand(write_spec(tmp_path, seeds=[0]))[0]
    monkeypatch.setenv("SLURM_NTASKS", "4")
    executor = Executor()
    assert executor.environment(run)["SLURM_NTASKS"] == "4"
    assert "SLURM_NTASKS" not in executor.environment(run, probe=True)
    assert executor.environment(run, gpus="2,3")["CUDA_VISIBLE_DEVICES"] == "2,3"


# ----- one tiny real run: pretraining + probe through the CLI, interrupted, resumed, then skipped ---
@pytest.mark.slow
def test_tiny_real_run_end_to_end_and_resumed(tmp_path):
    tiny = {
        "trainer": {"accelerator": "cpu", "devices": 1, "strategy": "auto", "precision": "32-true", "max_steps": 4,
                    "enable_progress_bar": False, "enable_model_summary": False,
                    "callbacks": [{"class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                                   "init_args": {"save_last": True, "save_top_k": -1, "every_n_train_steps": 2}}]},
        "model": {"init_args": {"encoder": {"init_args": {"size": "tiny", "depth": 2,
                                                          "activation_checkpointing": False}},
                                "predictor_width": 32, "predictor_depth": 1, "predictor_heads": 2}},
        "data": {"class_path": "jepa_lit.data.synthetic.SyntheticMotionDataModule",
                 "init_args": {"num_clips": 8, "num_frames": 8, "crop_size": 64, "batch_size": 4}},
    }
    spec = write_spec(
        tmp_path, seeds=[0], env={"OMP_NUM_THREADS": "1"}, fit=tiny, keep_feature_cache=False,
        regimes={"synthetic": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"), "probes": ["synthetic"],
                               "variants": ["baseline"]}},
        probes={"synthetic": str(EXPERIMENTS / "probes" / "synthetic_demo.yaml")},
        probe={"synthetic": {"data": {"init_args": {"num_clips": 24, "crop_size": 32}}, "trainer": {"max_epochs": 2}}})
    (run,) = expand(spec)
    calls = []

    def launch(cmd, log, env):
        calls.append(cmd[3])
        return subprocess_launch(cmd, log, env)

    def logs():
        return tail(run.run_dir / "logs" / "fit.log", 30) + tail(run.run_dir / "logs" / "probe-synthetic.log", 30)

    assert run_local([run], Executor(launch=launch, echo=lambda m: None)) == {run.run_id: "done"}, logs()
    registry = json.loads(run.registry_path.read_text())
    assert registry["status"] == "done" and registry["pretraining"]["global_step"] == 4
    metric = registry["metrics"]["synthetic"]
    results = json.loads((run.run_dir / metric["results"]).read_text())
    assert metric["top1"] == results["metrics"]["top1"] and metric["comparison_key"] == results["comparison_key"]
    assert results["seed"] == 0 and results["training"]["epochs"] == 2 and results["checkpoint"]["global_step"] == 4
    saved = yaml.safe_load((run.run_dir / "config.yaml").read_text())  # LightningCLI's config, in the run dir
    assert saved["seed_everything"] == 0 and saved["trainer"]["max_steps"] == 4
    assert not (run.run_dir / "feature_cache").exists()  # keep_feature_cache: false
    assert run_local([run], Executor(launch=launch, echo=lambda m: None)) == {run.run_id: "done"}
    assert calls == ["fit", "test"]  # the second pass skipped the finished run

    # as if the run had died after step 2: its last.ckpt is the step-2 checkpoint, its registry says running
    (step2,) = (run.run_dir / "checkpoints").glob("*step=2.ckpt")
    state = torch.load(step2, weights_only=False)
    for key, callback in state["callbacks"].items():  # what last.ckpt written at step 2 would hold
        if "Checkpoint{" in key:
            callback["last_model_path"] = str(run.checkpoint)
    AtomicCheckpointIO().save_checkpoint(state, run.checkpoint)  # as the fit writes it: with its integrity record
    for later in (run.run_dir / "checkpoints").glob("*step=[3-9].ckpt"):  # not written yet at step 2
        AtomicCheckpointIO().remove_checkpoint(later)
    registry.update(status="running", pretraining=None, metrics={})
    write_json(run.registry_path, registry)  # as the sweep writes it: with its integrity record
    for path in (run.run_dir / "probes").glob("*.json"):
        path.unlink()
    assert run_local([run], Executor(launch=launch, echo=lambda m: None)) == {run.run_id: "done"}, logs()
    assert calls == ["fit", "test", "fit", "test"]
    registry = json.loads(run.registry_path.read_text())
    assert registry["attempts"][-1]["resumed_from_step"] == 2 and registry["pretraining"]["global_step"] == 4
    assert "Restored all states from the checkpoint" in tail(run.run_dir / "logs" / "fit.log", 15)


# ----- the sweep and the report together: 2 variants x 2 seeds, real commands, real registries ----
def tensorboard_image_tags(log_dir: Path) -> dict[str, int]:
    """{tag: number of image events} of the TensorBoard event files in ``log_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    events.Reload()
    return {tag: len(events.Images(tag)) for tag in events.Tags()["images"]}


@pytest.mark.slow
def test_sweep_then_report_two_variants_two_seeds(tmp_path, capsys):
    """The smoke scale of experiments/sweep.yaml made tinier (2 blocks, 4 steps, 8 clips; probe on 24 clips
    at 32 px for 2 epochs), baseline and Kin-L1 x seeds 0 and 1, two runs at a time, through the sweep's
    own main (each run: `jepa-lit fit`, then `jepa-lit test --probe` without a logger flag); then
    jepa_lit.study.report's make_report on the registries it wrote."""
    from jepa_lit.study.report import make_report

    smoke = yaml.safe_load((EXPERIMENTS / "sweep.yaml").read_text())["scales"]["smoke"]
    fit = deep_merge(smoke["fit"], {
        "trainer": {"max_steps": 4, "log_every_n_steps": 1},
        "model": {"init_args": {"encoder": {"init_args": {"depth": 2}}, "predictor_width": 32, "predictor_depth": 1,
                                "predictor_heads": 2}},
        "data": {"init_args": {"num_clips": 8}}})
    callbacks = {c["class_path"].rsplit(".", 1)[1]: c["init_args"] for c in fit["trainer"]["callbacks"]}
    callbacks["RunCheckpoint"]["every_n_train_steps"] = 2  # every callback acts within the 4 steps
    callbacks["RepresentationHealth"]["every_n_steps"] = 2
    spec = write_spec(
        tmp_path, seeds=[0, 1], jobs=2, env=smoke["env"], keep_feature_cache=False, fit=fit,
        report={"appearance": "imagenet100", "motion": ["synthetic"]},
        regimes={"synthetic": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"), "reference": "ucf101",
                               "probes": ["synthetic"], "variants": ["baseline", "kinematic_l1"]}},
        probes={"synthetic": str(EXPERIMENTS / "probes" / "synthetic_demo.yaml")},
        probe={"synthetic": {"data": {"init_args": {"num_clips": 24, "crop_size": 32}}, "trainer": {"max_epochs": 2}}})
    runs = expand(spec)
    assert [r.run_id for r in runs] == ["synthetic/baseline/seed_0", "synthetic/kinematic_l1/seed_0",
                                        "synthetic/baseline/seed_1", "synthetic/kinematic_l1/seed_1"]

    code = sweep.main([str(spec)])
    out = capsys.readouterr().out
    logs = "\n".join(tail(r.run_dir / "logs" / name, 20) for r in runs for name in ("fit.log", "probe-synthetic.log"))
    assert code == 0, out + logs
    assert "4/4 runs finished" in out and "sweep finished" in out and "4 done" in out

    # the registries are complete
    top1 = {}
    for run in runs:
        registry = json.loads(run.registry_path.read_text())
        assert registry["status"] == "done" and registry["error"] is None
        assert (registry["run_id"], registry["seed"], registry["config_hash"]) == (run.run_id, run.seed, run.config_hash)
        assert registry["pretraining"]["complete"] and registry["pretraining"]["global_step"] == 4
        assert registry["package"]["version"] and len(registry["attempts"]) == 1
        attempt = registry["attempts"][0]
        assert attempt["action"] == "start" and attempt["fit_rc"] == 0 and attempt["probe_synthetic_rc"] == 0
        metric = registry["metrics"]["synthetic"]
        results = json.loads((run.run_dir / metric["results"]).read_text())
        assert metric["top1"] == results["metrics"]["top1"] and metric["checkpoint_step"] == 4
        assert results["training"]["epochs"] == 2 and results["splits"]["test"] == 5
        top1[(run.variant, run.seed)] = metric["top1"]
        # the probe ran without a logger flag: its default logger drew the confusion matrix next to the JSON
        assert Path(results["tensorboard"]) == run.run_dir / "probes" / "tb" / "synthetic" / "version_0"
        assert tensorboard_image_tags(Path(results["tensorboard"])) == {"test/confusion_matrix": 1}
        assert not (run.run_dir / "feature_cache").exists()

    # the report on those registries
    root = runs[0].run_dir.parents[2]  # <output>/<scale>
    report = make_report(root)
    assert report["problems"] == [] and report["stale"] == {} and report["warnings"] == []
    (table,) = report["tables"]
    assert (table.regime, table.variants, table.benchmarks) == ("synthetic", ["baseline", "kinematic_l1"], ["synthetic"])
    assert table.seeds == {"baseline": [0, 1], "kinematic_l1": [0, 1]}
    base = [top1[("baseline", s)] for s in (0, 1)]
    kin = [top1[("kinematic_l1", s)] for s in (0, 1)]
    diffs = [k - b for k, b in zip(kin, base)]
    half = 12.7062 * statistics.stdev(diffs) / 2 ** 0.5  # t(0.975, 1) * sd / sqrt(n)
    cell = table.cells[("kinematic_l1", "synthetic")]
    assert cell.mean == pytest.approx(statistics.fmean(kin)) and cell.std == pytest.approx(statistics.stdev(kin))
    assert cell.delta.per_seed == pytest.approx({0: diffs[0], 1: diffs[1]}) and cell.delta.method == "paired-t"
    assert cell.delta.lo == pytest.approx(statistics.fmean(diffs) - half, abs=1e-3)
    assert cell.delta.hi == pytest.approx(statistics.fmean(diffs) + half, abs=1e-3)

    lines = report["markdown"].splitlines()
    assert f"| Baseline | 0, 1 | {statistics.fmean(base):.2f} ± {statistics.stdev(base):.2f} | — | 27.50 |" in lines
    (row,) = [line for line in lines if line.startswith("| Kin-L1 1.0 |")]
    delta = (f"{statistics.fmean(diffs):+.2f} [{statistics.fmean(diffs) - half:+.2f}, "
             f"{statistics.fmean(diffs) + half:+.2f}]")
    assert row.startswith(f"| Kin-L1 1.0 | 0, 1 | {statistics.fmean(kin):.2f} ± {statistics.stdev(kin):.2f} | ")
    assert delta in row and row.endswith("| 67.50‡ |")  # the paired delta, then the released reference
    folder = root / "report"
    with open(folder / "table_synthetic.csv") as handle:
        rows = {r["variant"]: r for r in csv.DictReader(handle)}
    assert float(rows["kinematic_l1"]["synthetic_mean"]) == pytest.approx(statistics.fmean(kin), abs=1e-4)
    assert float(rows["kinematic_l1"]["synthetic_delta"]) == pytest.approx(statistics.fmean(diffs), abs=1e-4)
    assert (rows["kinematic_l1"]["synthetic_n"], rows["kinematic_l1"]["synthetic_delta_method"]) == ("2", "paired-t")
    assert rows["baseline"]["synthetic_delta"] == "" and rows["kinematic_l1"]["synthetic_stale"] == "0"
    assert (folder / "heatmap_synthetic.png").read_bytes()[:4] == b"\x89PNG"
    with open(folder / "runs.csv") as handle:
        assert sorted(r["run_id"] for r in csv.DictReader(handle)) == sorted(r.run_id for r in runs)

    # the spec edited afterwards: the sweep would refuse the runs as changed, and the report marks them stale
    edited = yaml.safe_load(spec.read_text())
    edited["fit"]["trainer"]["max_steps"] = 5
    spec.write_text(yaml.safe_dump(edited))
    assert {plan(r)[0] for r in expand(spec)} == {"changed"}
    stale = make_report(root, plots=False)
    assert {run_id for run_id, _ in stale["stale"]} == {r.run_id for r in runs}
    assert "--rerun-changed" in stale["warnings"][0] and "## Stale runs (marked ※)" in stale["markdown"]


def test_a_run_failing_the_same_way_twice_is_left_alone_with_the_reason(tmp_path):
    spec = write_spec(tmp_path, regimes={"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"),
                                                    "probes": ["synthetic"], "variants": ["baseline"]}}, seeds=[0])
    runs = expand(spec)
    calls = []

    def broken(cmd, log, env):  # a fit that always stops with the same error (a config it refuses, say)
        calls.append(cmd)
        return 2

    for _ in range(2):
        assert run_local(runs, Executor(launch=broken, echo=lambda m: None)) == {runs[0].run_id: "failed"}
    assert len(calls) == 2
    echoed = []
    assert run_local(runs, Executor(launch=broken, echo=echoed.append)) == {runs[0].run_id: "failed"}
    assert len(calls) == 2  # not tried a third time
    record = json.loads(runs[0].registry_path.read_text())
    assert record["status"] == "failed" and record["error"].startswith(
        "failed twice the same way, not tried again: pretraining exited with status 2")
    assert "--retry-failed" in record["error"] and any("FAILED: failed twice the same way" in m for m in echoed)
    assert plan(runs[0])[0] == "failed" and plan(runs[0], retry_failed=True)[0] == "start"
    run_local(runs, Executor(launch=broken, echo=lambda m: None, retry_failed=True))
    assert len(calls) == 3  # asked for: tried again


def test_a_damaged_last_checkpoint_is_resumed_from_the_intact_one(tmp_path):
    from jepa_lit.checkpointing import AtomicCheckpointIO

    spec = write_spec(tmp_path, regimes={"ucf101": {"config": str(EXPERIMENTS / "ucf101_{variant}.yaml"),
                                                    "probes": ["synthetic"], "variants": ["baseline"]}}, seeds=[0])
    (run,) = expand(spec)
    io = AtomicCheckpointIO()
    io.save_checkpoint({"global_step": 2}, run.checkpoint.with_name("step=2.ckpt"))
    os.utime(run.checkpoint.with_name("step=2.ckpt"), (1, 1))
    io.save_checkpoint({"global_step": 3}, run.checkpoint)
    run.checkpoint.write_bytes(run.checkpoint.read_bytes()[:100])  # cut short
    fake, echoed = FakeLaunch(), []
    assert run_local([run], Executor(launch=fake, echo=echoed.append)) == {run.run_id: "done"}
    assert fake.calls[0][1][-2:] == ["--ckpt_path", "last"]
    assert f"{run.run_id}: pretraining (resuming from step 2, step=2.ckpt)" in echoed
    assert json.loads(run.registry_path.read_text())["attempts"][0]["resumed_from_step"] == 2
