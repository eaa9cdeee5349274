"""What a jepa-lit pretraining checkpoint says about itself: ``checkpoint["jepa_lit"]``, read and checked in
one place (evaluation and export read it), and the error for a checkpoint path that is not a file.

``JEPAModule.on_save_checkpoint`` writes ``{"encoder_config", "eval_encoder", "target_mode",
"behaviour_version"}``; ``eval_encoder`` names the state-dict prefix of the encoder that trained.
"""

from __future__ import annotations

from typing import Any

from jepa_lit.hints import path_hint


def checkpoint_not_found(path: str) -> FileNotFoundError:
    """The error for a checkpoint path that is not a file: the path, what is near it, what was expected."""
    hint = path_hint(path, (".ckpt", ".pt", ".pth", ".tar"))
    return FileNotFoundError(
        f"checkpoint not found: {path}" + (f"\n{hint}" if hint else "")
        + "\n(expected a file written by jepa-lit fit, RUN/checkpoints/last.ckpt, "
          "e.g. runs/smoke/version_0/checkpoints/last.ckpt)"
    )


def read_metadata(path: str, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """checkpoint["jepa_lit"], validated; a clear error naming the file and the missing key otherwise."""
    meta = checkpoint.get("jepa_lit") if isinstance(checkpoint, dict) else None
    if not isinstance(meta, dict):
        raise ValueError(
            f"{path}: not a jepa-lit pretraining checkpoint: it has no 'jepa_lit' entry (expected "
            "{'encoder_config': ..., 'eval_encoder': 'target_encoder' | 'encoder', 'target_mode': ...}, "
            "written by JEPAModule.on_save_checkpoint). Without it the encoder that trained cannot be "
            "told from an untrained EMA copy, so the checkpoint is not probed."
        )
    for key in ("encoder_config", "eval_encoder"):
        if key not in meta:
            raise ValueError(f"{path}: checkpoint['jepa_lit'] has no {key!r} entry (found {sorted(meta)})")
    if meta["eval_encoder"] not in ("target_encoder", "encoder"):
        raise ValueError(
            f"{path}: checkpoint['jepa_lit']['eval_encoder'] = {meta['eval_encoder']!r}; expected "
            "'target_encoder' or 'encoder'"
        )
    return meta
