"""The probe result as the study reads it, typed: the numbers of a probe results JSON (jepa_lit.eval.results
writes it) with the whole document. Light to import (no torch, no Lightning): the sweep reads results
while it plans, before anything trains."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Optional, Union

from jepa_lit.errors import RegistryError

SCHEMA = "jepa_lit.probe_result/1"
RERUN_PROBE = "rerun the probe (jepa-lit test --probe BENCHMARK --ckpt_path CKPT) to write it again"


@dataclass(frozen=True)
class ProbeResult:
    """A probe results JSON as the study reads it: the numbers a sweep records and a report tabulates, typed,
    with the whole document (``to_dict``) for the comparison settings and the side-by-side tools."""

    comparison_key: str
    top1: float
    epochs: int
    benchmark: Optional[str] = None
    top1_ci95: Optional[list[float]] = None
    top5: Optional[float] = None
    mean_class_acc: Optional[float] = None
    num_test_clips: Optional[int] = None
    checkpoint_step: Optional[int] = None
    encoder: Optional[str] = None  # the weights probed: target_encoder, encoder or random_init
    document: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_dict(cls, data: Any, source: Union[str, os.PathLike] = "probe results",
                  advice: str = RERUN_PROBE) -> "ProbeResult":
        """The typed result of a results dict; RegistryError naming ``source``, the key and ``advice`` when it
        is not one."""
        def need(where: str, value: Any, types: tuple[type, ...], what: str) -> Any:
            if not isinstance(value, types) or isinstance(value, bool):
                raise RegistryError(f"{source}: {where}: expected {what}, got {value!r}; {advice}")
            return value

        need("the file", data, (dict,), f"a probe results JSON object (\"schema\": \"{SCHEMA}\")")
        if "schema" in data and not str(data["schema"]).startswith(SCHEMA.split("/")[0]):
            raise RegistryError(f"{source}: schema: expected {SCHEMA!r}, got {data.get('schema')!r}; {advice}")
        metrics = need("metrics", data.get("metrics"), (dict,), "an object")
        training = need("training", data.get("training"), (dict,), "an object")
        checkpoint = need("checkpoint", data.get("checkpoint", {}), (dict,), "an object")
        encoder = need("encoder", data.get("encoder", {}), (dict,), "an object")
        return cls(
            comparison_key=need("comparison_key", data.get("comparison_key"), (str,), "a string"),
            top1=need("metrics.top1", metrics.get("top1"), (int, float), "a number"),
            epochs=need("training.epochs", training.get("epochs"), (int,), "an int"),
            top1_ci95=metrics.get("top1_ci95"), top5=metrics.get("top5"),
            mean_class_acc=metrics.get("mean_class_acc"), num_test_clips=metrics.get("num_test_clips"),
            benchmark=data.get("benchmark"), checkpoint_step=checkpoint.get("global_step"),
            encoder=encoder.get("used"), document=data)

    def to_dict(self) -> dict[str, Any]:
        """The results JSON as written (what ``from_dict`` read)."""
        return self.document
