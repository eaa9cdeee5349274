"""``jepa-lit export``: a jepa-lit pretraining checkpoint's encoders and predictor as an official V-JEPA 2.1
file (the layout jepa_lit.models.official loads: ``encoder``, ``target_encoder``, ``predictor``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import torch
from torch import Tensor

from jepa_lit.atomic import atomic_write
from jepa_lit.checkpointing.integrity import load_checkpoint_file
from jepa_lit.checkpointing.metadata import checkpoint_not_found, read_metadata
from jepa_lit.errors import CheckpointError
from jepa_lit.models.official import export_predictor_state

USAGE = "usage: jepa-lit export RUN/checkpoints/last.ckpt OUT.pt [--overwrite]   (official V-JEPA 2 / 2.1 layout)"


def check_export_target(ckpt_path: Path, out_path: Path, overwrite: bool) -> None:
    """Never write onto the checkpoint being read (same path, or another name of the same file), whatever
    the flags; an existing OUT only with ``overwrite``."""
    if not out_path.exists():
        return
    if out_path.resolve() == ckpt_path.resolve() or os.path.samefile(out_path, ckpt_path):
        raise CheckpointError(f"{out_path} is the checkpoint being exported ({ckpt_path}); "
                              "writing there would replace the run's checkpoint. Choose another OUT file.")
    if not overwrite:
        raise CheckpointError(f"{out_path} already exists; pass --overwrite to replace it, "
                              "or choose another OUT file")


def export_checkpoint(ckpt_path: Union[str, Path], out_path: Union[str, Path], prefix: str = "module.backbone.",
                      overwrite: bool = False) -> Path:
    """Write a jepa-lit pretraining checkpoint's encoders and predictor as an official-layout file
    (``jepa-lit export``).

    ``encoder`` is the online encoder; ``target_encoder`` the EMA target, or the online encoder for runs
    trained without EMA (the encoder that trained, as checkpoint["jepa_lit"]["eval_encoder"] records);
    ``predictor`` the predictor with the official two mask tokens (export_predictor_state).
    Written atomically with an integrity record; an existing ``out_path`` is replaced only with
    ``overwrite``, and never when it is the checkpoint itself.
    """
    ckpt_path, out_path = Path(ckpt_path), Path(out_path)
    if not ckpt_path.is_file():
        raise CheckpointError(str(checkpoint_not_found(str(ckpt_path))))
    check_export_target(ckpt_path, out_path, overwrite)
    checkpoint = load_checkpoint_file(ckpt_path, map_location="cpu", weights_only=False)
    meta = read_metadata(str(ckpt_path), checkpoint)
    state = checkpoint["state_dict"]

    def part(name: str) -> dict[str, Tensor]:
        return {prefix + k[len(name) + 1:]: v for k, v in state.items() if k.startswith(name + ".")}

    predictor = {k[len("predictor."):]: v for k, v in state.items() if k.startswith("predictor.")}
    if not predictor:
        raise CheckpointError(f"{ckpt_path}: the state dict has no 'predictor.*' weights (found prefixes "
                              f"{sorted({k.split('.')[0] for k in state})}); expected a jepa-lit pretraining checkpoint")
    exported = {"encoder": part("encoder"), "target_encoder": part(meta["eval_encoder"]),
                "predictor": export_predictor_state(predictor, prefix),
                "jepa_lit_encoder_config": meta["encoder_config"], "epoch": checkpoint.get("epoch"),
                "global_step": checkpoint.get("global_step")}
    check_export_target(ckpt_path, out_path, overwrite)  # again: OUT may have appeared while reading
    atomic_write(out_path, lambda f: torch.save(exported, f), integrity=True, kind="torch",
                 replace_other_kinds=overwrite)  # --overwrite: the user's word that OUT may go
    return out_path


def export_main(argv: list[str]) -> int:
    """``jepa-lit export CKPT OUT [--overwrite]``."""
    overwrite = "--overwrite" in argv
    paths = [a for a in argv if a != "--overwrite"]
    if len(paths) != 2 or any(a.startswith("-") for a in paths):
        print(USAGE)
        return 2
    try:
        out = export_checkpoint(paths[0], paths[1], overwrite=overwrite)
    except CheckpointError:
        raise  # the top-level handler prints it
    except ValueError as error:  # a missing or bad jepa_lit entry (read_metadata)
        raise CheckpointError(str(error)) from error
    print(f"wrote {out} (entries 'encoder', 'target_encoder' and 'predictor', keys prefixed 'module.backbone.')")
    return 0
