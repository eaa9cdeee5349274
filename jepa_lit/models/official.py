"""Official V-JEPA 2 / 2.1 encoder weights in and out of jepa-lit's encoder.

Official checkpoints are dicts with ``encoder`` and ``target_encoder`` entries (the target is what the
official evaluations use), their keys prefixed by ``module.`` and / or ``backbone.`` (DDP and wrapper
modules). jepa-lit's encoder uses the official parameter names, so loading is a prefix strip plus two
known layout differences:

- V-JEPA 2 (before 2.1) has one final ``norm``; 2.1 has ``norms_block.0..3``, the last of which is the
  final norm. A V-JEPA 2 ``norm.*`` loads into the last ``norms_block``; the other levels and the
  modality embeddings then keep their initial values and are reported as not in the checkpoint.
- V-JEPA 2 RoPE checkpoints carry a stray ``pos_embed`` that RoPE never reads: it is ignored, reported.

Anything else that does not match (a missing or unexpected key, a shape) is an error listing all of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

import torch
from torch import Tensor, nn

PREFIXES = ("module.", "backbone.")
ENTRIES = ("target_encoder", "encoder")


@dataclass
class LoadReport:
    """What happened to each key of a load."""

    loaded: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)  # checkpoint key -> encoder key
    ignored: list[str] = field(default_factory=list)  # in the checkpoint, knowingly unused
    kept_initial: list[str] = field(default_factory=list)  # in the encoder, knowingly not in the checkpoint

    def summary(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        if self.renamed:
            lines.append("renamed: " + ", ".join(f"{a} -> {b}" for a, b in self.renamed.items()))
        if self.ignored:
            lines.append("ignored (unused by this encoder): " + ", ".join(self.ignored))
        if self.kept_initial:
            lines.append("not in the checkpoint, kept at initial values: " + ", ".join(self.kept_initial))
        return "\n".join(lines)


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


def encoder_state_dict(checkpoint: Union[dict, str, Path], entry: str = "auto") -> dict[str, Tensor]:
    """The encoder weights of an official checkpoint (a path or a loaded dict), prefixes stripped.

    entry: "auto" (``target_encoder``, else ``encoder``, else the dict itself if it holds tensors),
    or the name of the entry to use.
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
                f"{source} has no 'target_encoder' or 'encoder' entry (found {sorted(checkpoint)[:10]})"
            )
    state = checkpoint[entry] if entry else checkpoint
    if entry and entry not in checkpoint:
        raise CheckpointMismatch(f"{source} has no {entry!r} entry (found {sorted(checkpoint)})")
    return strip_prefixes(state)


def load_official_encoder(encoder: nn.Module, checkpoint: Union[dict, str, Path], entry: str = "auto") -> LoadReport:
    """Load official V-JEPA 2 / 2.1 encoder weights into ``encoder`` with strict key and shape checks."""
    incoming = encoder_state_dict(checkpoint, entry)
    own = encoder.state_dict()
    report = LoadReport()
    last_norm = f"norms_block.{len(encoder.norms_block) - 1}"
    if "norm.weight" in incoming and "norms_block.0.weight" not in incoming:  # V-JEPA 2 layout
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

    missing = [k for k in own if k not in incoming and k not in report.kept_initial]
    unexpected = [k for k in incoming if k not in own]
    shapes = [f"{k}: checkpoint {tuple(incoming[k].shape)} vs encoder {tuple(own[k].shape)}"
              for k in incoming if k in own and incoming[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        problems = []
        if missing:
            problems.append(f"missing from the checkpoint ({len(missing)}): {', '.join(missing[:20])}")
        if unexpected:
            problems.append(f"not in this encoder ({len(unexpected)}): {', '.join(unexpected[:20])}")
        if shapes:
            problems.append(f"shape mismatches ({len(shapes)}): " + "; ".join(shapes[:20]))
        raise CheckpointMismatch(
            "official encoder weights do not fit this encoder (check its size, patch / tubelet size and "
            "positions setting):\n  " + "\n  ".join(problems)
        )
    with torch.no_grad():
        for key, value in incoming.items():
            own[key].copy_(value)
            report.loaded.append(key)
    return report


def export_official(module: nn.Module, prefix: str = "module.backbone.") -> dict[str, dict[str, Tensor]]:
    """A JEPAModule's encoders in the official layout: ``{"encoder": ..., "target_encoder": ...}``.

    No-EMA runs have no separate target; their online encoder is exported under both names, since it is
    the one that trained.
    """
    online = {prefix + k: v.detach().clone() for k, v in module.encoder.state_dict().items()}
    target_module = getattr(module, "target_encoder", None) or module.encoder
    target = {prefix + k: v.detach().clone() for k, v in target_module.state_dict().items()}
    return {"encoder": online, "target_encoder": target}


def export_checkpoint(ckpt_path: Union[str, Path], out_path: Union[str, Path], prefix: str = "module.backbone.") -> Path:
    """Write a jepa-lit pretraining checkpoint's encoders as an official-layout file (``jepa-lit export``).

    ``encoder`` is the online encoder; ``target_encoder`` the EMA target, or the online encoder for runs
    trained without EMA (the encoder that trained, as checkpoint["jepa_lit"]["eval_encoder"] records).
    """
    from jepa_lit.eval.checkpoint import read_metadata  # the one reader of checkpoint["jepa_lit"]

    if not Path(ckpt_path).is_file():
        raise FileNotFoundError(f"checkpoint not found: {ckpt_path}")
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    meta = read_metadata(str(ckpt_path), checkpoint)
    state = checkpoint["state_dict"]

    def part(name: str) -> dict[str, Tensor]:
        return {prefix + k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}

    exported = {"encoder": part("encoder"), "target_encoder": part(meta["eval_encoder"]),
                "jepa_lit_encoder_config": meta["encoder_config"], "epoch": checkpoint.get("epoch"),
                "global_step": checkpoint.get("global_step")}
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(exported, out_path)
    return out_path


def export_main(argv: list[str]) -> int:
    """``jepa-lit export CKPT OUT``."""
    if len(argv) != 2 or argv[0].startswith("-"):
        print("usage: jepa-lit export RUN/checkpoints/last.ckpt OUT.pt   (official V-JEPA 2 / 2.1 layout)")
        return 2
    try:
        out = export_checkpoint(argv[0], argv[1])
    except (FileNotFoundError, ValueError) as error:  # ValueError: a missing or bad jepa_lit entry
        print(f"jepa-lit export: error: {error}")
        return 2
    print(f"wrote {out} (entries 'encoder' and 'target_encoder', keys prefixed 'module.backbone.')")
    return 0
