"""Guarded training: stop (or skip) on a non-finite loss or gradient, and skip loss spikes.

A non-finite term stops the run with a message naming the step and the term (``on_nonfinite: stop``),
or skips the step (``skip``). A loss above mean + ``spike_std`` x std of the trailing ``spike_window``
losses is skipped, as V-JEPA does (off by default). Under DDP both rules read the batch's loss
(averaged over the ranks), so every rank takes the same decision and keeps the same history.

The same all-reduce carries each rank's stop request (a SIGTERM, callbacks/preemption.py): every rank
learns at the same step that some rank was told to stop, without a collective of its own.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal, Optional

import torch
from torch import Tensor

from jepa_lit.distributed import all_reduce_sum, world_size
from jepa_lit.errors import JepaLitError


class NonFiniteLossError(RuntimeError):
    pass


class SkippedStepsError(JepaLitError, RuntimeError):
    """More steps were skipped than ``guard.max_skipped_fraction`` allows: the run did not really train."""

    exit_code = 1  # the run failed; its input is not known to be at fault


@dataclass
class GuardConfig:
    """on_nonfinite: "stop" raises naming the step and the term; "skip" drops the step.
    spike_std: skip a step whose loss exceeds mean + spike_std * std of the last ``spike_window``
    losses (None: off); checked once ``spike_min_history`` losses are known.
    max_skipped_fraction: a fit that skipped more than this fraction of its training batches (non-finite
    or spike) fails at its end (non-zero exit status) after saving its last checkpoint."""

    on_nonfinite: Literal["stop", "skip"] = "stop"
    spike_std: Optional[float] = None
    spike_window: int = 100
    spike_min_history: int = 20
    max_skipped_fraction: float = 0.1


class LossGuard:
    def __init__(self, config: GuardConfig):
        self.config = config
        self.history: deque[float] = deque(maxlen=config.spike_window)
        self.skipped = 0
        self.batches = 0  # training batches seen (skipped ones included), over every resumed attempt
        self.stop_agreed = False  # after check(): some rank asked to stop at this step (the same on every rank)

    def check(self, terms: dict[str, Tensor], loss: Tensor, step: int, stop_requested: bool = False) -> Optional[str]:
        """Why this step must be skipped (None: train on it); raises on a non-finite loss under "stop".
        One all-reduce, of the loss and of this rank's stop request, and one host read per step."""
        loss = loss.detach().float()
        stop = loss.new_ones(()) if stop_requested else loss.new_zeros(())  # a fill, not a host-to-device copy
        total, stops = all_reduce_sum(torch.stack([loss, stop])).tolist()  # the one host sync
        self.stop_agreed = stops > 0
        value = total / world_size()
        if not math.isfinite(value):
            return self.nonfinite(terms, step)
        return None if self.config.spike_std is None else self.spike(value, step)

    def bad_terms(self, terms: dict[str, Tensor]) -> list[str]:
        return [name for name, value in terms.items() if not torch.isfinite(value).all()]

    def nonfinite(self, terms: dict[str, Tensor], step: int) -> str:
        """The message for a non-finite loss (raises when the policy is "stop")."""
        bad = self.bad_terms(terms)
        message = f"non-finite loss at step {step}: " + (
            f"term(s) {', '.join(bad)} = " + ", ".join(f"{terms[name].item()}" for name in bad) if bad
            else "on another rank")
        if self.config.on_nonfinite == "stop":
            raise NonFiniteLossError(message + " (set model.init_args.guard.on_nonfinite: skip to skip such steps)")
        return message

    def spike(self, loss: float, step: int) -> Optional[str]:
        """A message if ``loss`` is a spike against the trailing window; records non-spike losses."""
        if len(self.history) >= self.config.spike_min_history:
            mean = sum(self.history) / len(self.history)
            std = math.sqrt(sum((x - mean) ** 2 for x in self.history) / len(self.history))
            threshold = mean + self.config.spike_std * std
            if loss > threshold:
                return f"loss spike at step {step}: {loss:.4g} > {threshold:.4g} (mean + {self.config.spike_std} std)"
        self.history.append(loss)
        return None

    def summary(self) -> Optional[str]:
        """``skipped k of n training batches (p%)``, or None when none was skipped."""
        if not self.skipped:
            return None
        return (f"guard: skipped {self.skipped} of {self.batches} training batches "
                f"({100.0 * self.skipped / max(1, self.batches):.1f}%)")

    def check_skipped(self) -> None:
        """Raise SkippedStepsError when more than ``max_skipped_fraction`` of the batches were skipped."""
        limit = self.config.max_skipped_fraction
        if self.batches and self.skipped / self.batches > limit:
            raise SkippedStepsError(f"{self.summary()}, more than model.init_args.guard.max_skipped_fraction="
                                    f"{limit}: the run did not really train (see the skip warnings above for the "
                                    "steps and terms)")

    def state_dict(self) -> dict:
        return {"history": list(self.history), "skipped": self.skipped, "batches": self.batches}

    def load_state_dict(self, state: dict) -> None:
        self.history.clear()
        self.history.extend(state.get("history", []))
        self.skipped = state.get("skipped", 0)
        self.batches = state.get("batches", 0)
