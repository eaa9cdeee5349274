"""The laptop scale of experiments/sweep.yaml: the study's objectives at their coefficients on the laptop recipe,
two regimes that differ in their data alone, motion and appearance probes on disjoint clips."""

from pathlib import Path

from jepa_lit.config import load_yaml
from jepa_lit.study.runs import expand, merged_config
from jepa_lit.study.spec import load_spec

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
ISSUE_VARIANTS = {"baseline", "ld", "hw", "hw_ld", "hw_ld_released", "fwm_hw_ld", "fwm_hw_ld_released", "fwm", "delta",
                  "kinematic", "sigreg", "mg", "future"}


def merged(run) -> dict:
    return merged_config([load_yaml(f) for f in run.config_stack], run.fit_overrides)


def differences(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from differences(a.get(key), b.get(key), f"{path}.{key}" if path else key)
    elif a != b:
        yield path


def test_the_regimes_differ_in_their_data_weights_alone():
    runs = [r for r in expand(EXPERIMENTS / "sweep.yaml", "laptop") if r.seed == 0 and r.pretrain]
    by_regime = {regime: {r.variant: r for r in runs if r.regime == regime} for regime in ("video", "mixture")}
    assert set(by_regime["video"]) | set(by_regime["mixture"]) == ISSUE_VARIANTS
    shared = set(by_regime["video"]) & set(by_regime["mixture"])
    assert {"baseline", "ld", "fwm_hw_ld"} <= shared  # the cross-regime question has variants to answer it
    for variant in shared:
        video, mixture = merged(by_regime["video"][variant]), merged(by_regime["mixture"][variant])
        assert list(differences(video, mixture)) == ["data.init_args.weights"], variant
        assert video["data"]["init_args"]["weights"] == [1.0, 0.0, 0.0]
        assert mixture["data"]["init_args"]["weights"] == [0.2, 0.6, 0.2]  # the study's UCF : SSv2 : IN-100


def test_each_variant_is_its_study_file_on_the_laptop_recipe():
    recipe = load_yaml(EXPERIMENTS / "laptop" / "recipe.yaml")
    for run in expand(EXPERIMENTS / "sweep.yaml", "laptop"):
        if run.seed or not run.pretrain:
            continue
        config = merged(run)
        study = merged_config([load_yaml(f) for f in run.config_stack[:-1]], {})  # without recipe.yaml
        model, study_model = config["model"]["init_args"], study["model"]["init_args"]
        # the objectives, masks and target are the study file's; the recipe sets only size, EMA and optimiser
        for key in ("objectives", "mask_sampler", "target_encoder"):
            assert model.get(key) == study_model.get(key), (run.variant, key)
        assert model["encoder"]["init_args"]["size"] == "tiny" and config["trainer"]["precision"] == "32-true"
        assert "objectives" not in recipe["model"]["init_args"] and "mask_sampler" not in recipe["model"]["init_args"]


def test_threads_kernels_and_probe_clips_are_fixed_and_disjoint():
    spec = load_spec(EXPERIMENTS / "sweep.yaml", "laptop")
    assert spec.env["OMP_NUM_THREADS"] == "1" and spec.env["ATEN_CPU_CAPABILITY"] == "avx2"
    assert spec.report.cross_regime == ["mixture", "video"] and spec.report.appearance == "synthetic_appearance"
    assert "not a reproduction" in spec.report.header
    ranges = {}
    for bench in sorted({b for regime in spec.regimes.values() for b in regime.probes}):
        path = spec.probes[bench]
        args = load_yaml(spec.spec_dir / path)["data"]["init_args"]
        ranges[bench] = range(args["seed"], args["seed"] + args["num_clips"])  # generator seeds: seed + index
        test = round(args["num_clips"] * args["val_fraction"])
        assert test >= (2000 if bench == "synthetic" else 500)  # test-clip noise small beside seed noise
    pool = load_yaml(EXPERIMENTS / "laptop" / "recipe.yaml")["data"]["init_args"]
    assert sorted(ranges) == ["synthetic", "synthetic_appearance"]
    seeds = [set(r) for r in ranges.values()]
    assert not seeds[0] & seeds[1]
    assert all(max(r) < pool.get("seed", 100_000) for r in ranges.values())  # below the pretraining pool
