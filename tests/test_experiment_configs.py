"""Every shipped experiment config: the study's variants are all there, stack base + regime, and train
two steps through the CLI on the fixture datasets (slow: ``-m "not slow"`` leaves it out).

The run keeps each config's model, masks, objectives (untouched: their heads are sized by the module)
and data pipeline, and shrinks only what a CPU test needs: a tiny encoder (depth 2, 64 px, 8 frames), a
small predictor, no activation checkpointing, one CPU process in fp32 without workers, 2 steps, per-term
gradient norms at the first step, and the regime's dataset read from a fixture tree built once per session
(jepa_lit.data.fixtures).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch
import yaml

from jepa_lit.cli import run_cli
from jepa_lit.config import expand_config_stack
from jepa_lit.data.datasets import DATASETS

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
VARIANTS = {
    "mixed": ["baseline", "mg", "amg", "hw", "delta", "fwm", "ld", "fwm_ld", "hw_ld", "fwm_hw_ld", "combo",
              "spectral", "ltc", "ac", "ac_hw", "fac", "hw_ld_released", "fwm_hw_ld_released"],
    "ucf101": ["baseline", "kinematic_l1", "kinematic_l1_0_1", "kinematic_huber", "kinematic_accel",
               "kinematic_split", "kinematic_anneal", "sigreg", "sigreg_no_ema", "hamiltonian", "velgate", "mg",
               "future", "motion_future"],
    "synthetic": ["baseline", "kinematic", "sigreg"],
}
TRAINING_KEYS = {"config", "trainer", "model"}  # sweep.yaml and probes/ are not `jepa-lit fit` configs
SHIPPED = sorted(p.name for p in EXPERIMENTS.glob("*.yaml") if TRAINING_KEYS & set(yaml.safe_load(p.read_text()) or {}))


def import_object(class_path: str):
    module, name = class_path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def objectives_of(path: Path) -> list:
    """The objectives list a config ends up with (its own, else the last of the files it stacks)."""
    found = []
    for file in expand_config_stack(["--config", str(path)])[1::2]:
        listed = load(Path(file)).get("model", {}).get("init_args", {}).get("objectives")
        if listed is not None:
            found = listed
    return found


def test_every_variant_has_a_config():
    expected = {f"{regime}_{variant}.yaml" for regime, names in VARIANTS.items() for variant in names}
    # 27 variants (MG in both regimes) + 2 baselines + mixed MG counted once each; HW-LD and FWM-HW-LD also
    # as released; the synthetic regime's baseline, Kinematic and SIGReg
    assert len(expected) == 30 + 2 + 3
    assert expected <= set(SHIPPED), sorted(expected - set(SHIPPED))


@pytest.mark.parametrize("name", [f"{r}_{v}.yaml" for r, names in VARIANTS.items() for v in names])
def test_variant_config_stacks_base_and_regime(name):
    config = load(EXPERIMENTS / name)
    regime = name.split("_")[0]
    assert config["config"] == ["base.yaml", f"regimes/{regime}.yaml"]
    assert config["trainer"]["logger"]["init_args"]["name"] == Path(name).stem
    for spec in config["model"]["init_args"].get("objectives") or []:
        import_object(spec["class_path"])  # every class path resolves
    sampler = config["model"]["init_args"].get("mask_sampler")
    if sampler:
        import_object(sampler["class_path"])


def test_study_coefficients():
    def args(name, index=0):
        return load(EXPERIMENTS / name)["model"]["init_args"]["objectives"][index]["init_args"]

    assert args("mixed_hw.yaml") == {"weight": 0.3, "temperature": 1.0}
    assert args("mixed_hw_ld.yaml", 0)["weight"] == 1.0
    fwm_hw_ld = load(EXPERIMENTS / "mixed_fwm_hw_ld.yaml")["model"]["init_args"]["objectives"]
    assert [o["class_path"].rsplit(".", 1)[1] for o in fwm_hw_ld] == [
        "FactorizedWorldModel", "HardWeighting", "LatentDynamics"]
    assert fwm_hw_ld[2]["init_args"]["reads"] == "dynamics" and fwm_hw_ld[2]["init_args"]["hard_weighting"]
    assert fwm_hw_ld[2]["init_args"]["released_no_grad"] is False
    amg = load(EXPERIMENTS / "mixed_combo.yaml")["model"]["init_args"]["mask_sampler"]["init_args"]
    assert (amg["alpha"], amg["random_rate"]) == (5.0, 0.0)
    for name in ["kinematic_l1", "kinematic_l1_0_1", "kinematic_huber", "kinematic_accel", "kinematic_split",
                 "kinematic_anneal", "sigreg_no_ema"]:
        assert load(EXPERIMENTS / f"ucf101_{name}.yaml")["model"]["init_args"]["target_encoder"] == "online"
    assert "target_encoder" not in load(EXPERIMENTS / "ucf101_sigreg.yaml")["model"]["init_args"]
    assert args("ucf101_kinematic_l1.yaml")["weight"] == 1.0 and args("ucf101_kinematic_l1_0_1.yaml")["weight"] == 0.1
    assert args("synthetic_kinematic.yaml") == {"weight": 1.0, "penalty": "l1"}
    assert args("synthetic_sigreg.yaml")["weight"] == 1.0
    synthetic = load(EXPERIMENTS / "regimes" / "synthetic.yaml")  # the release's train_synth_2gpu_*.yaml recipe
    assert synthetic["model"]["init_args"]["target_encoder"] == "online"  # no EMA
    assert synthetic["trainer"] == {"devices": 2, "max_steps": 5000}
    assert "encoder" not in synthetic["model"]["init_args"]  # its clip size is the data's (8 x 128)
    assert (synthetic["data"]["init_args"]["num_frames"], synthetic["data"]["init_args"]["crop_size"]) == (8, 128)
    assert synthetic["model"]["init_args"]["optimizer"]["warmup_steps"] == 50



@pytest.fixture(scope="session")
def fixture_data(tmp_path_factory) -> Path:
    """One tree of the datasets the two regimes read (UCF-101, SSv2, ImageNet-100), for the whole session."""
    root = tmp_path_factory.mktemp("fixture_data")
    for name in ("ucf101", "ssv2", "imagenet100"):
        DATASETS[name].make_fixture(root / name, broken=False)
    return root


def data_arguments(path: Path, root: Path) -> list[str]:
    """The config's own DataModule pointed at the fixture tree (smoke.yaml keeps its synthetic data;
    base.yaml, which has none, gets the UCF-101 regime's)."""
    stack = [Path(f).name for f in expand_config_stack(["--config", str(path)])[1::2]]
    if "mixed.yaml" in stack:
        return [f"--data.init_args.root={root}"]
    if "ucf101.yaml" in stack:
        return [f"--data.init_args.root={root / 'ucf101'}"]
    if "data" in load(path):
        return []
    return ["--config", str(EXPERIMENTS / "regimes" / "ucf101.yaml"), f"--data.init_args.root={root / 'ucf101'}"]


@pytest.mark.slow
@pytest.mark.usefixtures("one_thread")
@pytest.mark.filterwarnings("ignore:LightningCLI's args parameter", "ignore:The number of training batches")
@pytest.mark.parametrize("name", SHIPPED)
def test_config_trains_two_steps_with_a_tiny_encoder(name, tmp_path, fixture_data):
    """The config as shipped (its objectives untouched: heads take the encoder's width from the module),
    with only the encoder shrunk, 64 px, 8 frames, on one CPU process in fp32."""
    path = EXPERIMENTS / name
    callbacks = [{"class_path": "jepa_lit.callbacks.term_gradients.TermGradientNorms",
                  "init_args": {"every_n_steps": 2}}]  # at the first step only
    encoder = "--model.init_args.encoder.init_args."
    args = ["fit", "--config", str(path), *data_arguments(path, fixture_data),
            "--data.init_args.num_frames=8", "--data.init_args.crop_size=64", "--data.init_args.batch_size=2",
            "--data.init_args.num_workers=0",
            "--trainer.accelerator=cpu", "--trainer.devices=1", "--trainer.strategy=auto",
            "--trainer.precision=32-true", "--trainer.max_steps=2", "--trainer.limit_val_batches=0",
            "--trainer.num_sanity_val_steps=0",
            f"--trainer.default_root_dir={tmp_path}", f"--trainer.logger.init_args.save_dir={tmp_path}",
            "--trainer.callbacks=" + json.dumps(callbacks), "--trainer.enable_checkpointing=false",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false",
            f"{encoder}size=tiny", f"{encoder}img_size=64", f"{encoder}num_frames=8", f"{encoder}depth=2",
            f"{encoder}activation_checkpointing=false",
            "--model.init_args.predictor_width=64", "--model.init_args.predictor_depth=1",
            "--model.init_args.predictor_heads=4"]
    cli = run_cli(args)
    trainer, module = cli.trainer, cli.model
    assert trainer.global_step == 2
    assert [type(o).__name__ for o in module.objectives] == [o["class_path"].rsplit(".", 1)[1] for o in objectives_of(path)]
    assert all((o.embed_dim, o.num_levels) == (192, 4) for o in module.objectives)  # sized by the tiny encoder
    norms = trainer.callbacks[0].last_norms
    assert set(norms) == {f"grad_norm/{k}" for k in module.last_step.terms}
    assert all(f"train/{k}" in trainer.logged_metrics for k in module.last_step.terms)
    for objective in module.objectives:  # every auxiliary term reaches the encoder, but the one run as released
        as_released = getattr(objective, "released_no_grad", False)  # the release's LD term: a constant
        for key in module.last_step.terms:
            if key.startswith(objective.name):
                assert (norms[f"grad_norm/{key}"] == 0) if as_released else (norms[f"grad_norm/{key}"] > 0), key


def test_gpu_regimes_copy_uint8_pinned_batches():
    """The study's GPU regimes send uint8 clips from page-locked memory (normalised on the device)."""
    for regime in ("ucf101", "mixed"):
        data = load(EXPERIMENTS / "regimes" / f"{regime}.yaml")["data"]["init_args"]
        assert data["pin_memory"] is True and data["uint8_batches"] is True, regime
    for probe in (EXPERIMENTS / "probes").glob("*.yaml"):  # probes read float32 clips (check_probe_datamodule)
        assert not load(probe).get("data", {}).get("init_args", {}).get("uint8_batches", False), probe.name
