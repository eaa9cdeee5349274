"""``jepa-lit export``: a jepa-lit pretraining checkpoint's encoders as an official V-JEPA 2 / 2.1 file
(the layout jepa_lit.models.official loads)."""

from __future__ import annotations

from pathlib import Path
from typing import Union

import torch
from torch import Tensor

from jepa_lit.checkpointing.metadata import read_metadata


def export_checkpoint(ckpt_path: Union[str, Path], out_path: Union[str, Path], prefix: str = "module.backbone.") -> Path:
    """Write a jepa-lit pretraining checkpoint's encoders as an official-layout file (``jepa-lit export``).

    ``encoder`` is the online encoder; ``target_encoder`` the EMA target, or the online encoder for runs
    trained without EMA (the encoder that trained, as checkpoint["jepa_lit"]["eval_encoder"] records).
    """
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
