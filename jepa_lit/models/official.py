"""Official V-JEPA 2 / 2.1 encoder weights in and out of jepa-lit's encoder.

Official checkpoints are dicts of networks, their keys prefixed by ``module.`` and / or ``backbone.`` (DDP
and wrapper modules). The encoder weights to evaluate are the EMA ones: ``ema_encoder`` in the public
V-JEPA 2.1 ViT-B / ViT-L files (upstream's hub loads those from that entry), ``target_encoder`` in the
other official files, ``encoder`` (the online network) only as a last resort. jepa-lit's encoder uses the
official parameter names, so loading is a prefix strip plus two known layout differences:

- V-JEPA 2 (before 2.1) has one final ``norm``; 2.1 has ``norms_block.0..3``, the last of which is the
  final norm. A V-JEPA 2 ``norm.*`` loads into the last ``norms_block``; the other levels and the
  modality embeddings then keep their initial values and are reported as not in the checkpoint.
- V-JEPA 2 RoPE checkpoints carry a stray ``pos_embed`` that RoPE never reads: it is ignored, reported.

Anything else that does not match (a missing or unexpected key, a shape) is an error listing all of it.

RoPE has no weights, so a wrong RoPE setting passes the key and shape checks and silently gives wrong
features. The layout tells the version, and the version fixes the settings (``ROPE_SETTINGS``); a
contradicting encoder is refused with the key to set, unless the caller opts out (``check_rope=False``).
jepa-lit's own exports record their encoder's settings (``jepa_lit_encoder_config``), which then apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import Tensor, nn

PREFIXES = ("module.", "backbone.")
# Entries tried by entry="auto", EMA weights first (what the official evaluations read).
ENTRIES = ("ema_encoder", "target_encoder", "encoder")

# The RoPE settings each checkpoint version was trained with. V-JEPA 2 expands its frequency tables with
# `repeat` (a bug upstream keeps for checkpoint compatibility) and rotates by integer token positions;
# 2.1 uses `repeat_interleave` and rescales row / column positions to its pretraining grid (16 x 16 at
# patch 16).
ROPE_SETTINGS = {
    "V-JEPA 2": {"rope_interleave": False, "interpolate_rope": False},
    "V-JEPA 2.1": {"rope_interleave": True, "interpolate_rope": True},
}
LAYOUT_NAMES = {"V-JEPA 2": "single final norm", "V-JEPA 2.1": "norms_block.0..3"}


@dataclass
class LoadReport:
    """What happened to each key of a load, and where the weights came from."""

    entry: str = ""  # the checkpoint entry read ("" for a bare state dict)
    layout: str = ""  # "V-JEPA 2", "V-JEPA 2.1" or "unknown"
    rope_check: str = ""  # how the encoder's RoPE settings were checked against the checkpoint
    loaded: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # checkpoint key -> encoder key
    ignored: list[str] = field(default_factory=list)  # in the checkpoint, knowingly unused
    kept_initial: list[str] = field(default_factory=list)  # in the encoder, knowingly not in the checkpoint

    def summary(self) -> str:
        entry = repr(self.entry) if self.entry else "(bare state dict)"
        lines = [f"entry {entry}, {self.layout} layout: loaded {len(self.loaded)} tensors",
                 f"RoPE settings: {self.rope_check}"]
        if self.renamed:
            lines.append("renamed: " + ", ".join(f"{a} -> {b}" for a, b in self.renamed.items()))
        if self.ignored:
            lines.append("ignored (unused by this encoder): " + ", ".join(self.ignored))
        if self.kept_initial:
            lines.append("not in the checkpoint, kept at initial values: " + ", ".join(self.kept_initial))
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """For a results JSON: the loaded keys as a count (every other encoder key is listed elsewhere)."""
        return {"entry": self.entry, "layout": self.layout, "rope_check": self.rope_check,
                "num_loaded": len(self.loaded), "renamed": dict(self.renamed), "ignored": list(self.ignored),
                "kept_initial": list(self.kept_initial)}


class CheckpointMismatch(ValueError):
    pass


def strip_prefixes(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    out = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def read_checkpoint(checkpoint: Union[dict, str, Path],
                    entry: str = "auto") -> tuple[dict[str, Tensor], str, Optional[dict]]:
    """(encoder weights with prefixes stripped, the entry they came from, the jepa-lit encoder config the
    file records or None) of an official checkpoint, a path or a loaded dict.

    entry: "auto" (the first of ``ENTRIES`` present, else the dict itself if it holds only tensors), or
    the name of the entry to use.
    """
    source = str(checkpoint) if isinstance(checkpoint, (str, Path)) else "the given checkpoint"
    if isinstance(checkpoint, (str, Path)):
        if not Path(checkpoint).is_file():
            raise FileNotFoundError(f"pretrained encoder weights: no file at {checkpoint}")
        checkpoint = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if entry == "auto":
        entry = next((name for name in ENTRIES if name in checkpoint), "")
        if not entry and not all(isinstance(v, Tensor) for v in checkpoint.values()):
            raise CheckpointMismatch(
                f"{source} has no {' / '.join(repr(e) for e in ENTRIES)} entry (found {sorted(checkpoint)[:10]})"
            )
    if entry and entry not in checkpoint:
        raise CheckpointMismatch(f"{source} has no {entry!r} entry (found {sorted(checkpoint)})")
    state = checkpoint[entry] if entry else checkpoint
    return strip_prefixes(state), entry, checkpoint.get("jepa_lit_encoder_config")


def checkpoint_layout(state: dict[str, Tensor]) -> str:
    """"V-JEPA 2.1" (hierarchical ``norms_block``), "V-JEPA 2" (a single final ``norm``) or "unknown"."""
    if "norms_block.0.weight" in state:
        return "V-JEPA 2.1"
    if "norm.weight" in state:
        return "V-JEPA 2"
    return "unknown"


def check_rope_settings(encoder: nn.Module, layout: str, recorded: Optional[dict]) -> str:
    """Refuse an encoder whose RoPE settings contradict the checkpoint's; returns what was checked.

    recorded: the encoder config a jepa-lit export carries; its settings are the ones that trained.
    """
    if getattr(encoder, "positions", "rope") != "rope":
        return "not applicable (sin-cos positions)"
    expected = {k: recorded[k] for k in ("rope_interleave", "interpolate_rope") if k in (recorded or {})}
    if expected:
        what = "a jepa-lit export whose encoder trained with " + ", ".join(
            f"{k}: {str(v).lower()}" for k, v in expected.items())
    elif layout in ROPE_SETTINGS:
        expected = ROPE_SETTINGS[layout]
        what = f"a {layout} checkpoint ({LAYOUT_NAMES[layout]})"
    else:
        return "not checked (unknown layout)"
    wrong = [k for k, v in expected.items() if getattr(encoder, k) != v]
    if wrong:
        wanted = ", ".join(f"{k}: {str(expected[k]).lower()}" for k in wrong)
        found = ", ".join(f"{k}: {str(getattr(encoder, k)).lower()}" for k in wrong)
        older_export = ("" if recorded else " A jepa-lit export written before 0.2.0 has this layout but does not "
                        "record its settings: give the encoder the settings it trained with and allow the mismatch.")
        raise CheckpointMismatch(
            f"this is {what}: set {wanted} in the encoder's arguments (it has {found}). RoPE has no weights, "
            "so this mismatch would load without a key error and give wrong features." + older_export +
            " To load anyway: allow_rope_mismatch: true (in --official_encoder, or the encoder's arguments "
            "next to pretrained), or check_rope=False."
        )
    return "consistent with " + what


def load_official_encoder(encoder: nn.Module, checkpoint: Union[dict, str, Path], entry: str = "auto",
                          check_rope: bool = True) -> LoadReport:
    """Load official V-JEPA 2 / 2.1 encoder weights into ``encoder`` with strict key and shape checks, and a
    check of its RoPE settings against the checkpoint's version (``check_rope=False`` skips it, recorded)."""
    incoming, used_entry, recorded = read_checkpoint(checkpoint, entry)
    own = encoder.state_dict()
    report = LoadReport(entry=used_entry, layout=checkpoint_layout(incoming))
    last_norm = f"norms_block.{len(encoder.norms_block) - 1}"
    if report.layout == "V-JEPA 2":
        for suffix in ("weight", "bias"):
            report.renamed[f"norm.{suffix}"] = f"{last_norm}.{suffix}"
            incoming[f"{last_norm}.{suffix}"] = incoming.pop(f"norm.{suffix}")
        report.kept_initial += [k for k in own if k.startswith("norms_block.") and not k.startswith(last_norm + ".")]
        report.kept_initial += [k for k in own if k.endswith("_mod_embed") and k not in incoming]
    if "pos_embed" in incoming and "pos_embed" not in own:
        incoming.pop("pos_embed")
        report.ignored.append("pos_embed")
    if "patch_embed_img.proj.weight" in incoming and "patch_embed_img.proj.weight" not in own:
        for suffix in ("weight", "bias"):
            incoming.pop(f"patch_embed_img.proj.{suffix}", None)
            report.ignored.append(f"patch_embed_img.proj.{suffix}")

    check_keys(own, incoming, report.kept_initial, "encoder",
               "check its size, patch / tubelet size and positions setting")
    # After the key checks, so that the layout the settings are inferred from is known to be right.
    if check_rope:
        report.rope_check = check_rope_settings(encoder, report.layout, recorded)
    else:
        report.rope_check = "not checked (allow_rope_mismatch)"
    copy_weights(own, incoming, report)
    return report


def export_official(module: nn.Module, prefix: str = "module.backbone.") -> dict[str, Any]:
    """A JEPAModule's encoders in the official layout: ``{"encoder": ..., "target_encoder": ...}``, plus the
    encoder's config (``jepa_lit_encoder_config``: its RoPE settings are checked when the file is loaded).

    No-EMA runs have no separate target; their online encoder is exported under both names, since it is
    the one that trained.
    """
    online = {prefix + k: v.detach().clone() for k, v in module.encoder.state_dict().items()}
    target_module = getattr(module, "target_encoder", None) or module.encoder
    target = {prefix + k: v.detach().clone() for k, v in target_module.state_dict().items()}
    exported: dict[str, Any] = {"encoder": online, "target_encoder": target}
    if getattr(module, "predictor", None) is not None:
        exported["predictor"] = export_predictor(module.predictor, prefix)
    if hasattr(module.encoder, "config"):
        exported["jepa_lit_encoder_config"] = dict(module.encoder.config)
    return exported


# The official training predictor holds 2 mask tokens (hub files 10); the release trained only token 0.
OFFICIAL_MASK_TOKENS = 2


def load_official_predictor(predictor: nn.Module, checkpoint: Union[dict, str, Path],
                            entry: str = "predictor") -> LoadReport:
    """Load official V-JEPA 2.1 predictor weights into ``predictor`` with strict key and shape checks.

    Mask tokens: a shared-token predictor (one token) takes the checkpoint's token 0, the one the release
    trained; a per-generator predictor takes the first of them. Extra tokens are reported as ignored.
    """
    incoming, used_entry, _ = read_checkpoint(checkpoint, entry)
    own = predictor.state_dict()
    report = LoadReport(entry=used_entry, layout="V-JEPA 2.1 predictor", rope_check="not applicable")
    for key in [k for k in incoming if k.startswith("mask_tokens.") and k not in own]:
        incoming.pop(key)
        report.ignored.append(key)
    check_keys(own, incoming, [], "predictor", "check its width, depth and the encoder width")
    copy_weights(own, incoming, report)
    return report


def export_predictor(predictor: nn.Module, prefix: str = "module.backbone.") -> dict[str, Tensor]:
    """A predictor in the official layout, with ``OFFICIAL_MASK_TOKENS`` mask tokens: a shared token is
    token 0, and the tokens the predictor lacks are zeros (the release's untrained token, at its init)."""
    return export_predictor_state(predictor.state_dict(), prefix)


def export_predictor_state(state: dict[str, Tensor], prefix: str = "module.backbone.") -> dict[str, Tensor]:
    """``export_predictor`` of a predictor's state dict (e.g. read from a saved checkpoint, without building
    the module)."""
    state = {k: v.detach().clone() for k, v in state.items()}
    if "mask_tokens.0" not in state:
        raise CheckpointMismatch(f"not a predictor state dict: no 'mask_tokens.0' (found {sorted(state)[:8]})")
    tokens = sum(1 for k in state if k.startswith("mask_tokens."))
    for i in range(tokens, OFFICIAL_MASK_TOKENS):
        state[f"mask_tokens.{i}"] = torch.zeros_like(state["mask_tokens.0"])
    return {prefix + k: v for k, v in state.items()}


def check_keys(own: dict[str, Tensor], incoming: dict[str, Tensor], kept_initial: list[str], what: str,
               advice: str) -> None:
    """Strict key and shape checks of official weights against a module's state dict (``kept_initial``: keys
    the checkpoint may lack, which keep their initial values)."""
    missing = [k for k in own if k not in incoming and k not in kept_initial]
    unexpected = [k for k in incoming if k not in own]
    shapes = [f"{k}: checkpoint {tuple(incoming[k].shape)} vs {what} {tuple(own[k].shape)}"
              for k in incoming if k in own and incoming[k].shape != own[k].shape]
    problems = []
    if missing:
        problems.append(f"missing from the checkpoint ({len(missing)}): {', '.join(missing[:20])}")
    if unexpected:
        problems.append(f"not in this {what} ({len(unexpected)}): {', '.join(unexpected[:20])}")
    if shapes:
        problems.append(f"shape mismatches ({len(shapes)}): " + "; ".join(shapes[:20]))
    if problems:
        raise CheckpointMismatch(f"official {what} weights do not fit this {what} ({advice}):\n  "
                                 + "\n  ".join(problems))


def copy_weights(own: dict[str, Tensor], incoming: dict[str, Tensor], report: "LoadReport") -> None:
    """Copy checked weights into the module's tensors (``own`` is its state dict: the same storage)."""
    with torch.no_grad():
        for key, value in incoming.items():
            own[key].copy_(value)
            report.loaded.append(key)
