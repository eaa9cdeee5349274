"""What a run needs next, read from its files: skip | probe | resume | start | changed | restart | failed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from jepa_lit.config import load_yaml
from jepa_lit.study.registry import RunRecord, read_record, read_results
from jepa_lit.study.runs import Run


def checkpoint_step(path: Path) -> Optional[int]:
    import torch  # here, not at the top: expanding and listing runs must not import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=True)
    except Exception:  # noqa: BLE001 - a checkpoint we cannot read is as good as none
        return None
    return int(checkpoint.get("global_step", 0)) if isinstance(checkpoint, dict) else None


def resume_checkpoint(run: Run) -> Optional[Path]:
    """What ``fit --ckpt_path last`` resumes from: the run's last.ckpt, or when it is damaged the newest intact
    checkpoint beside it (None when there is none)."""
    from jepa_lit.checkpointing.integrity import checkpoint_problem, newest_intact  # imports torch

    if run.checkpoint.is_file() and checkpoint_problem(run.checkpoint) is None:
        return run.checkpoint
    return newest_intact(run.checkpoint)


def failure_signature(attempt: dict) -> Optional[tuple]:
    """What a failed attempt did and how it ended; None for one that did not fail (or was interrupted)."""
    if attempt.get("status", "failed" if attempt.get("error") else None) != "failed" or not attempt.get("error"):
        return None
    return attempt.get("action"), attempt.get("resumed_from_step"), attempt["error"]


def repeated_failure(record: Optional[RunRecord]) -> Optional[str]:
    """The error of a run whose last two attempts failed the same way (same action, same resume step, same
    error): a third try would fail again, so the sweep stops trying."""
    if record is None or len(record.attempts) < 2:
        return None
    last, before = (failure_signature(a) for a in record.attempts[-2:][::-1])
    return last[2] if last is not None and last == before else None


def target_steps(run: Run) -> Optional[int]:
    """trainer.max_steps from the config LightningCLI saved in the run directory (None if not step-bound)."""
    saved = run.run_dir / "config.yaml"
    if not saved.is_file():
        return None
    steps = ((load_yaml(saved) or {}).get("trainer") or {}).get("max_steps")
    return steps if isinstance(steps, int) and steps > 0 else None


def plan(run: Run, record: Optional[RunRecord] = None, retry_failed: bool = False) -> tuple[str, str]:
    """(action, description): skip | probe | resume | start | changed | restart (a finished pretraining whose
    checkpoint is gone) | failed (the same failure twice; tried again only with ``retry_failed``)."""
    record = record if record is not None else read_record(run.registry_path)
    started = run.checkpoint.exists() or (record is not None and record.attempts)
    if record is not None and started and record.config_hash != run.config_hash:
        return "changed", (f"config changed since the run started (config hash {record.config_hash} -> "
                           f"{run.config_hash}); --rerun-changed moves {run.run_dir} aside and starts again")
    if record is not None and record.pretrained and run.pretrain and not run.checkpoint.is_file():
        # pretrained once, its checkpoint deleted since: pretraining again must not keep the old probe results
        return "restart", (f"{run.checkpoint} is gone although run.json records a finished pretraining: "
                           "pretraining and probing again")
    repeated = None if retry_failed else repeated_failure(record)
    if repeated is not None:
        return "failed", (f"failed twice the same way, not tried again: {repeated}; fix the cause, then rerun "
                          "the sweep with --retry-failed")
    if record is not None and record.pretrained and run.checkpoint.is_file():
        missing = [p.benchmark for p in run.probes if not (run.run_dir / "probes" / p.output_name).is_file()]
        for probe in run.probes:  # a results JSON that is there must be readable (a RegistryError names it)
            if probe.benchmark not in missing:
                read_results(run.run_dir / "probes" / probe.output_name)
        if not missing and record.status == "done":
            return "skip", "done"
        return "probe", "probe " + ", ".join(missing) if missing else "record the probe results"
    if not run.pretrain:  # the random_init control: its architecture file, then the probes
        return "start", "start: no pretraining (random_init control: the baseline's architecture, untrained)"
    if run.checkpoint.is_file():
        return "resume", "resume from its last checkpoint"
    return "start", "start"


def recipe_line(run: Run) -> str:
    """What a dry run shows of a regime's recipe (from its baseline's merged config): steps, the context-loss
    ramp in absolute steps (the release ramps over iterations 15,000 -> 30,000 whatever the run's length), and
    the benchmarks its runs are probed on."""
    from jepa_lit.study.runs import merged_config

    merged = merged_config([load_yaml(f) for f in run.config_stack], run.fit_overrides)
    steps = (merged.get("trainer") or {}).get("max_steps")
    model = (merged.get("model") or {}).get("init_args") or {}
    weight = model.get("context_loss_weight", 0.5)
    start, end = model.get("context_loss_start", 0.5), model.get("context_loss_end", 1.0)
    unit = model.get("context_loss_unit", "fraction")
    if unit == "fraction" and isinstance(steps, int):
        start, end = int(start * steps), int(end * steps)
    ramp = f"context loss {weight} ramped over steps {start} -> {end} ({unit})"
    if isinstance(steps, int) and start >= steps:
        ramp += ": 0 for the whole run, as in the release"
    probes = ", ".join(p.benchmark for p in run.probes)
    return f"{run.regime}: {steps} steps; {ramp}; probes: {probes}"
