"""The frozen encoder to evaluate, rebuilt from a jepa-lit pretraining checkpoint.

A JEPAModule checkpoint carries ``checkpoint["jepa_lit"] = {"encoder_config", "eval_encoder",
"target_mode"}``. ``eval_encoder`` names the state-dict prefix of the encoder that trained: the EMA
target ("target_encoder") for V-JEPA runs, the online encoder ("encoder") for runs without EMA. The
study's release evaluated the never-updated EMA copy of its no-EMA runs, i.e. random weights
(docs/reproducing.md, the release's defects); reading the choice from the checkpoint, never from a flag, keeps
that from happening again. A checkpoint without this metadata is refused.

A random-init control (the same architecture, freshly initialised from a seed) is available with
``random_init=True``; it is labelled as such everywhere.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from jepa_lit.checkpointing.integrity import load_checkpoint_file
from jepa_lit.checkpointing.metadata import checkpoint_not_found, read_metadata
from jepa_lit.models import VisionTransformer
from jepa_lit.models.official import load_official_encoder

FEATURE_LAYER = "final block, after its LayerNorm (norms_block[-1]): the D-wide evaluation output"


@dataclass
class EvalEncoder:
    """A frozen encoder and where it came from."""

    encoder: VisionTransformer
    checkpoint: str
    used: str  # "target_encoder", "encoder", "random_init" or "official"
    target_mode: str  # "ema" or "online": how the run was trained
    encoder_config: dict[str, Any]
    weights_sha256: str
    checkpoint_info: dict[str, Any] = field(default_factory=dict)
    trained_data: dict[str, Any] = field(default_factory=dict)  # checkpoint["jepa_lit"]["data"]: clip settings
    load_report: dict[str, Any] = field(default_factory=dict)  # official weights: LoadReport.as_dict()

    def describe(self, feature_layer: str = FEATURE_LAYER) -> dict[str, Any]:
        """The "encoder" section of a results JSON; ``feature_layer``: which channels the probe read, in words."""
        labels = {
            "target_encoder": "EMA target encoder",
            "encoder": "online encoder (the run trained without EMA)",
            "random_init": "randomly initialised encoder (control; same architecture, no training)",
        }
        if self.used == "official":  # say which entry was read: EMA (ema_ / target_encoder) or online
            entry = self.load_report.get("entry") or "(bare state dict)"
            labels["official"] = (f"official V-JEPA 2 / 2.1 weights: the checkpoint's {entry!r} entry, "
                                  f"{self.load_report.get('layout', 'unknown')} layout")
        described = {
            "used": self.used,
            "description": labels[self.used],
            "target_mode": self.target_mode,
            "config": self.encoder_config,
            "weights_sha256": self.weights_sha256,
            "feature_layer": feature_layer,
            "feature_dim": self.encoder.embed_dim,
            "depth": self.encoder.depth,
        }
        if self.load_report:
            described["load_report"] = self.load_report
        return described


def weights_sha256(module: torch.nn.Module) -> str:
    """A hash of a module's state dict (names, dtypes, shapes and values): equal weights, equal hash."""
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def load_official_eval_encoder(path: str, encoder_config: dict[str, Any]) -> EvalEncoder:
    """The frozen encoder of an official V-JEPA 2 / 2.1 checkpoint, built with ``encoder_config``
    (VisionTransformer arguments: official files do not record the architecture) and loaded with strict
    key, shape and RoPE-setting checks.

    Two keys of ``encoder_config`` steer the load instead: ``pretrained_entry`` (default "auto": the EMA
    weights, ``ema_encoder`` else ``target_encoder``, else ``encoder``) and ``allow_rope_mismatch`` (skip
    the RoPE check). The entry read and the load report go into the results JSON (``describe()``).
    """
    if not Path(path).is_file():
        raise checkpoint_not_found(path)
    entry = encoder_config.get("pretrained_entry") or "auto"
    check_rope = not encoder_config.get("allow_rope_mismatch", False)
    config = {k: v for k, v in encoder_config.items()
              if k not in ("pretrained", "pretrained_entry", "allow_rope_mismatch")}
    encoder = VisionTransformer(**config)
    report = load_official_encoder(encoder, path, entry, check_rope=check_rope)
    encoder.eval().requires_grad_(False)
    target_mode = {"encoder": "online", "": "unknown"}.get(report.entry, "ema")  # ema_ / target_encoder: EMA
    return EvalEncoder(encoder=encoder, checkpoint=str(Path(path).resolve()), used="official",
                       target_mode=target_mode, encoder_config=config, weights_sha256=weights_sha256(encoder),
                       load_report=report.as_dict())


def load_eval_encoder(path: str, random_init: bool = False, seed: int = 0) -> EvalEncoder:
    """The frozen (eval mode, no grad) encoder a probe should read, from a checkpoint file.

    random_init: build the checkpoint's architecture with fresh weights drawn from ``seed`` instead.
    """
    if not Path(path).is_file():
        raise checkpoint_not_found(path)
    checkpoint = load_checkpoint_file(path, map_location="cpu", weights_only=False, mmap=True)
    meta = read_metadata(path, checkpoint)
    config = dict(meta["encoder_config"])
    prefix = meta["eval_encoder"] + "."
    if random_init:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            encoder = VisionTransformer(**config)
        used = "random_init"
    else:
        encoder = VisionTransformer(**config)
        state = checkpoint.get("state_dict", {})
        weights = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not weights:
            raise ValueError(
                f"{path}: the state dict has no '{prefix}*' weights, which checkpoint['jepa_lit']['eval_encoder'] "
                f"names (found prefixes {sorted({k.split('.')[0] for k in state})})"
            )
        missing, unexpected = encoder.load_state_dict(weights, strict=False)
        if missing or unexpected:
            raise ValueError(
                f"{path}: the '{prefix}*' weights do not match the recorded encoder_config: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}"
            )
        used = meta["eval_encoder"]
    encoder.eval().requires_grad_(False)
    info = {k: checkpoint.get(k) for k in ("epoch", "global_step") if k in checkpoint}
    return EvalEncoder(
        encoder=encoder,
        checkpoint=str(Path(path).resolve()),
        used=used,
        target_mode=meta.get("target_mode", "ema" if meta["eval_encoder"] == "target_encoder" else "online"),
        encoder_config=config,
        weights_sha256=weights_sha256(encoder),
        checkpoint_info=info,
        trained_data=dict(meta.get("data") or {}),
    )


def probe_clip_changes(frozen: EvalEncoder, datamodule: Any) -> list[str]:
    """``data.KEY: trained -> probed`` for each clip setting (num_frames, crop_size) the probe's data uses
    other than the one the checkpoint was trained at. A random-init control was trained at nothing."""
    if frozen.used == "random_init":
        return []
    probed = {k: getattr(datamodule, k, None) for k in frozen.trained_data}
    return [f"data.{k}: {frozen.trained_data[k]!r} -> {probed[k]!r}" for k in sorted(probed)
            if isinstance(probed[k], int) and probed[k] != frozen.trained_data[k]]


def warn_probe_clip_changes(frozen: EvalEncoder, datamodule: Any) -> list[str]:
    """One warning naming every clip setting that differs from training (a probe may legitimately read
    other clips, but the numbers then measure a transfer, not the run as trained); returns its text (for
    the results JSON), or [] when none differ."""
    changes = probe_clip_changes(frozen, datamodule)
    if not changes:
        return []
    message = (f"probing {frozen.checkpoint} with clip settings other than those it was trained with: "
               + "; ".join(changes) + " (the encoder sees clips it never trained on)")
    warnings.warn(message, stacklevel=2)
    return [message]
