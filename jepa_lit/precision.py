"""Which precision to train in: ``trainer.precision: auto`` resolved for this machine, and the CPU fallback
for mixed precision. bf16 pays off only on native bf16 units (a CUDA GPU that supports it, a CPU announcing
amx_bf16 / avx512_bf16); elsewhere autocast emulates it, several times slower than fp32. The CLI applies
these to the trainer config before the Trainer is built; bench/ reads the CPU's units from here too."""

from __future__ import annotations

from typing import Optional

from jepa_lit.distributed import is_rank_zero

# trainer.precision also takes "auto" (the demo and smoke configs): the CLI replaces it before the Trainer is built.
PRECISION_AUTO = "auto"


def _cpuinfo_field(name: str, cpuinfo: str) -> str:
    """The first ``name: value`` of /proc/cpuinfo ("" where there is none, e.g. not Linux)."""
    try:
        with open(cpuinfo) as handle:
            return next((line.split(":", 1)[1].strip() for line in handle if line.split(":", 1)[0].strip() == name), "")
    except OSError:
        return ""


def cpu_bf16_units(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The bf16 instruction sets this CPU announces (amx_bf16, avx512_bf16), from /proc/cpuinfo's flags."""
    flags = _cpuinfo_field("flags", cpuinfo).split()
    return [unit for unit in ("amx_bf16", "avx512_bf16") if unit in flags]


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> dict[str, object]:
    """This CPU for a run's record: its model and the vector units that change which kernels run."""
    flags = _cpuinfo_field("flags", cpuinfo).split()
    units = [unit for unit in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if unit in flags]
    return {"model": _cpuinfo_field("model name", cpuinfo) or "unknown", "units": units}


def cpu_precision_fallback(trainer_config, cpuinfo: str = "/proc/cpuinfo") -> None:
    """fp32 on CPU by default: with ``accelerator: auto`` on a machine without a GPU, a mixed precision
    (the study's bf16-mixed) becomes 32-true, because bf16 autocast runs many times slower than fp32 on
    CPUs without bf16 units. A CPU that announces them (amx_bf16 / avx512_bf16) keeps the precision. Naming
    ``accelerator: cpu`` keeps the precision asked for (e.g. to test bf16)."""
    precision = str(trainer_config.get("precision"))
    if trainer_config.get("accelerator") != "auto" or "mixed" not in precision:
        return
    import torch

    if torch.cuda.is_available() or (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        return
    from lightning.pytorch.utilities import rank_zero_warn

    units = cpu_bf16_units(cpuinfo)
    if units and "bf16" in precision:
        rank_zero_warn(f"no GPU: trainer.precision {precision} kept on the CPU (it announces {', '.join(units)})")
        return
    rank_zero_warn(f"no GPU: trainer.precision {precision} -> 32-true (this CPU announces no bf16 units "
                   "(amx_bf16 / avx512_bf16 in /proc/cpuinfo), so autocast would emulate it, many times slower "
                   "than fp32; set trainer.accelerator: cpu to keep the precision asked for)")
    trainer_config.precision = "32-true"


def auto_precision(accelerator: str, cpuinfo: str = "/proc/cpuinfo") -> tuple[str, str]:
    """(precision, why) for ``precision: auto``: bf16-mixed where bf16 runs on native units (a CUDA GPU that
    supports it, a CPU that announces amx_bf16 / avx512_bf16), 32-true elsewhere. On CPUs without those
    units autocast emulates bf16 and runs several times slower than fp32 (docs/demo.md has a measurement)."""
    import torch

    gpu = accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available()
    if gpu:
        if torch.cuda.is_bf16_supported():
            return "bf16-mixed", f"the GPU ({torch.cuda.get_device_name()}) supports bf16"
        return "32-true", f"the GPU ({torch.cuda.get_device_name()}) does not support bf16"
    if accelerator in ("auto", "mps") and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "32-true", "Apple MPS: bf16 autocast is not used there"
    units = cpu_bf16_units(cpuinfo)
    if units:
        return "bf16-mixed", f"no GPU, and this CPU announces bf16 units ({', '.join(units)} in {cpuinfo})"
    return "32-true", (f"no GPU, and this CPU announces no bf16 units (amx_bf16 / avx512_bf16 in {cpuinfo}), so "
                       "bf16 autocast would be emulated, slower than fp32")


def resolve_precision_auto(trainer_config, cpuinfo: str = "/proc/cpuinfo") -> Optional[str]:
    """Replace ``trainer.precision: auto`` by the precision auto_precision picks, print it and why; the
    message, or None when the config asks for a precision itself."""
    if str(trainer_config.get("precision")) != PRECISION_AUTO:
        return None
    precision, why = auto_precision(str(trainer_config.get("accelerator") or "auto"), cpuinfo)
    trainer_config.precision = precision
    message = f"trainer.precision: auto -> {precision} ({why})"
    if is_rank_zero():  # before the Trainer exists, so Lightning's rank_zero helpers do not know the rank yet
        print(message, flush=True)
    return message
