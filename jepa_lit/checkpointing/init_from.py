"""``model.init_args.init_from``: a new run that starts from another run's weights (fine-tuning), as opposed
to ``--ckpt_path``, which resumes the same run (its step, optimizer and schedules) and refuses a checkpoint
whose objectives or model differ (docs/checkpoints.md)."""

from __future__ import annotations

from lightning.pytorch.utilities import rank_zero_warn
from torch import nn

from jepa_lit.checkpointing.integrity import load_checkpoint_file
from jepa_lit.errors import CheckpointError


def load_weights_from(module: nn.Module, path: str) -> None:
    """``init_from``: the weights of ``path`` whose names and shapes match ``module``'s (the encoders and the
    predictor; the objective heads where they exist in both), nothing else (no step, optimizer or
    schedules); the parts left at their initial values are named once."""
    checkpoint = load_checkpoint_file(path, map_location="cpu", weights_only=False)
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not isinstance(checkpoint.get("jepa_lit"), dict):
        raise CheckpointError(f"model.init_from {path}: not a jepa-lit pretraining checkpoint (no 'state_dict' and "
                              "'jepa_lit' entries); expected RUN/checkpoints/last.ckpt of a jepa-lit fit")
    own = module.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not any(k.startswith("encoder.") for k in matching):
        raise CheckpointError(f"model.init_from {path}: none of its encoder weights fit this model's encoder "
                              f"(model.init_args.encoder differs from {checkpoint['jepa_lit'].get('encoder_config')})")
    module.load_state_dict(matching, strict=False)
    fresh = sorted({k.split(".")[0] if not k.startswith("objectives.") else ".".join(k.split(".")[:2])
                    for k in own if k not in matching})
    rank_zero_warn(f"model.init_from {path}: weights loaded ({len(matching)} tensors)"
                   + (f"; initialised fresh: {', '.join(fresh)}" if fresh else ""))
