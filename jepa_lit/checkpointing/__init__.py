"""Checkpoints: written atomically (``writing``), their jepa-lit metadata read and checked (``metadata``),
and exported to the official V-JEPA layout (``export``). Configs name the writers as
``jepa_lit.checkpointing.AtomicCheckpointIO`` and so on."""

from jepa_lit.checkpointing.metadata import checkpoint_not_found, read_metadata
from jepa_lit.checkpointing.writing import AtomicCheckpointIO, EpochEndCheckpoint, RunCheckpoint

__all__ = ["AtomicCheckpointIO", "EpochEndCheckpoint", "RunCheckpoint", "checkpoint_not_found", "read_metadata"]
