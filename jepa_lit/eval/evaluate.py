"""Frozen-encoder evaluation of one checkpoint on one benchmark: encoder -> cached features -> probes -> JSON.

``evaluate_checkpoint`` is what ``jepa-lit test --probe <benchmark>`` runs once LightningCLI has built
its parts (the benchmark's pixel DataModule, the ProbeModule, the FeatureDataModule and the probe's
Trainer); it can be called the same way from Python.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any, Literal, Optional

import lightning as L

from jepa_lit.atomic import check_replaceable, check_writable
from jepa_lit.eval.benchmarks import Benchmark, place_probe_logger
from jepa_lit.eval.checkpoint import load_eval_encoder, load_official_eval_encoder, warn_probe_clip_changes
from jepa_lit.eval.feature_data import FeatureDataModule
from jepa_lit.eval.features import cache_key, describe_layer, extract_or_load
from jepa_lit.eval.probe_module import ProbeModule
from jepa_lit.eval.results import build_results, run_dir_of, summary, write_results

EncoderChoice = Literal["checkpoint", "random_init", "official"]


def probe_attention_heads(probe) -> Optional[int]:
    """Attention heads of a built probe (None for the linear probe)."""
    attn = getattr(probe, "attn", None)
    if attn is not None:
        return attn.num_heads
    cross = getattr(probe, "cross_block", None)
    return cross.xattn.num_heads if cross is not None else None


def check_probe_datamodule(datamodule: L.LightningDataModule) -> None:
    """Cached features are extracted once, so the train split must go through the eval pipeline."""
    if getattr(datamodule, "train_augment", False):
        raise ValueError(
            "data.train_augment=true: probe features are extracted once and cached, so the train split is "
            "read like the test split (set data.train_augment false and data.train_sampling uniform)"
        )
    if getattr(datamodule, "train_sampling", "uniform") != "uniform":
        raise ValueError(f"data.train_sampling={datamodule.train_sampling!r}: probe features use 'uniform' "
                         "frames over the whole video on the train split too (the study's protocol)")
    if getattr(datamodule, "uint8_batches", False):
        # Features are extracted outside a training fit, where no on_after_batch_transfer normalises.
        raise ValueError("data.uint8_batches=true: probe features are read as float32 clips (the uint8 "
                         "option is for pretraining batches, normalised on the device by the Trainer); "
                         "set data.uint8_batches false")
    if not getattr(datamodule, "num_classes", 0):
        raise ValueError(f"{type(datamodule).__name__} does not expose num_classes, which the probe needs")


def evaluate_checkpoint(
    *,
    benchmark: Benchmark,
    ckpt_path: str,
    datamodule: L.LightningDataModule,
    data_config: dict[str, Any],
    model: ProbeModule,
    features: FeatureDataModule,
    trainer: L.Trainer,
    encoder: EncoderChoice = "checkpoint",
    seed: Optional[int] = None,
    output: Optional[str] = None,
    extract_kwargs: Optional[dict[str, Any]] = None,
    verbose: bool = True,
    official_encoder: Optional[dict[str, Any]] = None,
) -> tuple[dict[str, Any], Path]:
    """Probe the frozen eval encoder of ``ckpt_path``; returns (results dict, path of the results JSON).

    data_config: {"class_path", "init_args"} of ``datamodule`` (recorded, and part of the cache key).
    encoder: "checkpoint" (the encoder the checkpoint names), "random_init" (a control), or "official"
        (``ckpt_path`` is an official V-JEPA 2 / 2.1 file, built with ``official_encoder`` arguments).
    extract_kwargs: Trainer arguments for the extraction pass (accelerator, precision, ...).
    """
    start = time.perf_counter()
    check_probe_datamodule(datamodule)
    # Before the work: the results JSON must not replace a file of another kind (a checkpoint), and the
    # results and feature cache folders must be writable (one message naming the path, not a lost probe).
    results_target = Path(output) if output else run_dir_of(ckpt_path) / "probes"
    check_writable(results_target, "probe results")
    if output:
        check_replaceable(output, "json")
    check_writable(Path(features.cache_dir or run_dir_of(ckpt_path) / "feature_cache"), "feature cache")
    if encoder == "official":
        frozen = load_official_eval_encoder(ckpt_path, official_encoder or {})
    else:
        frozen = load_eval_encoder(ckpt_path, random_init=encoder == "random_init",
                                   seed=seed if seed is not None else 0)
    probe_warnings = warn_probe_clip_changes(frozen, datamodule)  # once, before the long extraction

    key, description = cache_key(frozen.weights_sha256, frozen.encoder_config, features.pooling,
                                 data_config["class_path"], data_config.get("init_args", {}),
                                 features.layer, features.app_ratio)
    cache_dir = features.cache_dir or str(run_dir_of(ckpt_path) / "feature_cache")
    sets, hit, entry = extract_or_load(frozen.encoder, datamodule, cache_dir, key, description, features.pooling,
                                       extract_kwargs, features.layer, features.app_ratio)
    features.attach(sets["train"], sets["test"], datamodule.num_classes, needs_validation=model.needs_validation)
    extracted = time.perf_counter()

    if seed is not None:  # the probe's init and data order do not depend on whether the cache was hit
        L.seed_everything(seed, workers=True, verbose=False)
    # the default logger (ProbeLogger) writes TensorBoard next to the results JSON: RUN/probes/tb/<benchmark>
    results_dir = Path(output).resolve().parent if output else run_dir_of(ckpt_path) / "probes"
    tensorboard = place_probe_logger(trainer, results_dir, benchmark.name)
    with warnings.catch_warnings():  # no validation split is the default, not a mistake
        warnings.filterwarnings("ignore", message=".*Total length of .* across ranks is zero.*")
        warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")  # short probe epochs
        trainer.fit(model, datamodule=features)
        trainer.test(model, datamodule=features, verbose=False)
    done = time.perf_counter()

    hparams = {k: v for k, v in model.hparams.items() if not k.startswith("_")}
    probe = {**hparams, "attn_heads_used": probe_attention_heads(model.heads[0]),
             "grid": [{"lr": lr, "weight_decay": wd} for lr, wd in model.grid],
             "num_probe_parameters": sum(p.numel() for p in model.heads[0].parameters())}
    training = {"epochs": trainer.max_epochs, "optimizer_steps": trainer.global_step, "batch_size": features.batch_size,
                "optimizer": "AdamW", "betas": list(hparams["betas"]), "lr_schedule": hparams["lr_schedule"],
                "precision": str(trainer.precision), "augmentation": "none (cached features)"}
    views = {split: sets[split].shape[1] for split in sets}
    layer = {"layer": features.layer, **({"app_ratio": features.app_ratio}
                                         if features.layer in ("appearance", "dynamics") else {})}
    held_out = features.val_fraction_used > 0
    selection = {**model.results["selection"],
                 "validation": {"source": "held out of the training clips", "fraction": features.val_fraction_used,
                                "seed": features.split_seed, "stratified_by_class": features.stratify,
                                "clips": features.sizes()["val"]} if held_out else None}
    init_args = dict(data_config.get("init_args", {}))
    results = build_results(
        benchmark={"name": benchmark.name, "title": benchmark.title, "chance": benchmark.chance,
                   "study_split": benchmark.study_split, "notes": benchmark.notes},
        checkpoint={"path": frozen.checkpoint, **frozen.checkpoint_info},
        encoder=frozen.describe(describe_layer(features.layer, frozen.encoder.embed_dim, frozen.encoder.num_levels,
                                               features.app_ratio)),
        features={**layer, "pooling": features.pooling, "tokens_per_clip": features.tokens_per_clip,
                  "dim": features.embed_dim, "dtype": "float16", "cache_key": key, "cache_dir": str(entry),
                  "cache_hit": hit, "val_fraction": features.val_fraction_used, "split_seed": features.split_seed},
        clip_protocol={"datamodule": data_config["class_path"], "init_args": init_args,
                       "num_frames": getattr(datamodule, "num_frames", None),
                       "crop_size": getattr(datamodule, "crop_size", None),
                       "trained_at": frozen.trained_data,  # the checkpoint's own clip settings
                       "train_views": views["train"], "test_views": views["test"],
                       "multi_view": "softmax probabilities averaged over the test views" if views["test"] > 1 else None},
        probe=probe,
        training=training,
        # clips: per extracted split, the clips used and those dropped as bad files (with their reasons)
        splits={**features.sizes(), "num_classes": datamodule.num_classes,
                "clips": {split: sets[split].clip_counts() for split in sets}},
        outcome={**model.results, "selection": selection},
        seed=seed,
        timing={"features": round(extracted - start, 2), "probe": round(done - extracted, 2),
                "total": round(done - start, 2)},
    )
    results["warnings"] = probe_warnings
    results["tensorboard"] = tensorboard  # the probe's TensorBoard log folder (None without a logger)
    path = write_results(results, output) if trainer.is_global_zero else Path(output or "")
    if verbose and trainer.is_global_zero:
        dropped = ", ".join(f"{split} {len(sets[split].dropped)}" for split in sets if sets[split].dropped)
        note = f"\n  bad clips dropped: {dropped} (listed under splits.clips in the results)" if dropped else ""
        print(summary(results) + note + f"\n  results: {path}", flush=True)
    return results, path
