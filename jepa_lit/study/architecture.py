"""The random_init control's stand-in for a pretraining: a checkpoint that records only the encoder's
architecture (``checkpoint["jepa_lit"]``, as JEPAModule writes it) and no weights.

``jepa-lit test --encoder random_init --ckpt_path <it>`` then builds that architecture with weights drawn
from the probe's seed (jepa_lit.eval.checkpoint.load_eval_encoder), which the sweep sets to the run's
seed. The architecture is the regime baseline's, read from its merged config with the scale's overrides,
so the control is the same network as the runs of its table, untrained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jepa_lit
from jepa_lit.config import import_class, load_yaml
from jepa_lit.models.vit import VisionTransformer
from jepa_lit.study.runs import Run, merged_config

_NOT_ARCHITECTURE = ("pretrained", "pretrained_entry", "allow_rope_mismatch")  # how weights load, not the network


def encoder_section(merged: dict[str, Any], source: str) -> dict[str, Any]:
    """``model.init_args.encoder`` of a merged config, checked to be a VisionTransformer."""
    encoder = (((merged.get("model") or {}).get("init_args") or {}).get("encoder")) or {}
    if not isinstance(encoder, dict) or "class_path" not in encoder:
        raise ValueError(f"{source}: model.init_args.encoder: expected {{class_path, init_args}} of the encoder, "
                         f"got {encoder!r}")
    if import_class(encoder["class_path"]) is not VisionTransformer:
        raise ValueError(f"{source}: model.init_args.encoder.class_path: the random_init control builds a "
                         f"jepa_lit.models.VisionTransformer, got {encoder['class_path']}")
    return encoder


def architecture_of(run: Run) -> dict[str, Any]:
    """The VisionTransformer config of a run (``VisionTransformer.config``: every argument, defaults filled)."""
    import torch

    merged = merged_config([load_yaml(f) for f in run.config_stack], run.fit_overrides)
    args = dict(encoder_section(merged, run.config).get("init_args") or {})
    for key in _NOT_ARCHITECTURE:
        args.pop(key, None)
    with torch.device("meta"):  # the config only: no memory, no time, no random draws
        return dict(VisionTransformer(**args).config)


def write_architecture_checkpoint(run: Run) -> Path:
    """``run.checkpoint``: the architecture of ``run`` for ``--encoder random_init``, written atomically."""
    import os

    import torch

    path = run.checkpoint
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {"global_step": 0, "epoch": 0,
                  "jepa_lit": {"encoder_config": architecture_of(run), "eval_encoder": "encoder",
                               "target_mode": "untrained", "behaviour_version": jepa_lit.BEHAVIOUR_VERSION,
                               "random_init_control": True}}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(checkpoint, temporary)
    os.replace(temporary, path)
    return path
