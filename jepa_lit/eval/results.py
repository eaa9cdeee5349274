"""The probe results JSON: everything a comparison needs, written next to the run.

One file per (benchmark, checkpoint, encoder, settings): ``<run dir>/probes/<benchmark>-<ckpt>-<encoder>-<key>.json``
where ``<run dir>`` is the folder holding ``checkpoints/`` and ``<key>`` starts the ``comparison_key``.

``comparison_key`` hashes the settings that must match for two results to be compared (benchmark,
probe type and every probe hyperparameter, epochs, feature layer and pooling, clip protocol), and
leaves out what may legitimately differ between the rows of a table (checkpoint, encoder weights,
seeds, data root, cache and loader settings). ``check_comparable`` refuses a set of results whose keys
differ (the study's release compared probes trained for 50 and 100 epochs; docs/reproducing.md, the release's defects).
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from pathlib import Path
from typing import Any, Iterable, Optional

import lightning
import torch
import torchmetrics

import jepa_lit
from jepa_lit.atomic import SIDECAR_SUFFIX, read_checked_text, write_json
from jepa_lit.errors import RegistryError
from jepa_lit.eval.features import LOADER_ONLY_ARGS
from jepa_lit.eval.probe_result import RERUN_PROBE, SCHEMA, ProbeResult
from jepa_lit.hashing import json_sha256
from jepa_lit.precision import cpu_description

# Probe-module arguments that do not change what is measured.
_REPORTING_ONLY = frozenset({"bootstrap_samples", "bootstrap_seed", "embed_dim", "num_classes"})
_NOT_PROTOCOL = LOADER_ONLY_ARGS | {"root", "seed", "on_error"}


def run_dir_of(checkpoint: str) -> Path:
    """RUN for RUN/checkpoints/x.ckpt; the checkpoint's own folder otherwise."""
    path = Path(checkpoint).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def comparison_settings(results: dict[str, Any]) -> dict[str, Any]:
    """The part of a results dict that must be equal for two results to be comparable."""
    probe = {k: v for k, v in results["probe"].items() if k not in _REPORTING_ONLY}
    if len(probe.get("grid", [])) == 1:  # one head: the selection rule has nothing to choose, so it changes nothing
        probe.pop("selection", None)
    clip = results["clip_protocol"]
    return {
        "benchmark": results["benchmark"],
        "probe": probe,
        "epochs": results["training"]["epochs"],
        "batch_size": results["training"]["batch_size"],
        "feature_layer": results["encoder"]["feature_layer"],
        "pooling": results["features"]["pooling"],
        "data_class": clip["datamodule"],
        "data_args": {k: v for k, v in clip["init_args"].items() if k not in _NOT_PROTOCOL},
        # what the code measures for these settings (results written before it existed: 1)
        "behaviour_version": results.get("versions", {}).get("jepa_lit_behaviour", 1),
    }


def comparison_key(results: dict[str, Any]) -> str:
    return json_sha256(comparison_settings(results))[:16]


def check_comparable(results: Iterable[dict[str, Any]]) -> str:
    """The shared comparison key; a ValueError naming the differing settings when they are not shared."""
    results = list(results)
    if not results:
        raise ValueError("no results to compare")
    keys = {comparison_key(r) for r in results}
    if len(keys) == 1:
        return keys.pop()
    first = comparison_settings(results[0])
    for other in results[1:]:
        settings = comparison_settings(other)
        if settings != first:
            differing = differences(first, settings)
            raise ValueError(
                f"probe results are not comparable: settings differ at {differing} "
                f"({results[0].get('checkpoint', {}).get('path')} vs {other.get('checkpoint', {}).get('path')})"
            )
    raise ValueError("probe results are not comparable")  # unreachable: equal settings give equal keys


def differences(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two nested dicts differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        found = []
        for k in sorted(set(a) | set(b)):
            found += differences(a.get(k), b.get(k), f"{prefix}.{k}" if prefix else str(k))
        return found
    return [] if a == b else [f"{prefix}: {a!r} != {b!r}"]


def build_results(
    *,
    benchmark: dict[str, Any],
    checkpoint: dict[str, Any],
    encoder: dict[str, Any],
    features: dict[str, Any],
    clip_protocol: dict[str, Any],
    probe: dict[str, Any],
    training: dict[str, Any],
    splits: dict[str, int],
    outcome: dict[str, Any],
    seed: Optional[int],
    timing: dict[str, float],
) -> dict[str, Any]:
    """Assemble the results dict (adds the comparison key, versions and a timestamp)."""
    results = {
        "schema": SCHEMA,
        "benchmark": benchmark["name"],
        "benchmark_info": benchmark,
        "checkpoint": checkpoint,
        "encoder": encoder,
        "features": features,
        "clip_protocol": clip_protocol,
        "probe": probe,
        "training": training,
        "seed": seed,
        "splits": splits,
        "selection": outcome["selection"],
        "metrics": outcome["metrics"],
        "heads": outcome["heads"],
        "wall_time_s": timing,
        "versions": {"jepa_lit": jepa_lit.__version__, "jepa_lit_behaviour": jepa_lit.BEHAVIOUR_VERSION, "torch": torch.__version__, "lightning": lightning.__version__,
                     "torchmetrics": torchmetrics.__version__, "python": platform.python_version()},
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        # what decides the numerics beside the code: threads, the kernels torch dispatches to, the CPU
        "numerics": {"torch_threads": torch.get_num_threads(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                     "cpu": cpu_description()},
    }
    results["comparison_key"] = comparison_key(results)
    ProbeResult.from_dict(results)  # what the study reads back (jepa_lit.study): fail here, not in a sweep
    return results


def default_output_path(results: dict[str, Any]) -> Path:
    run = run_dir_of(results["checkpoint"]["path"])
    stem = Path(results["checkpoint"]["path"]).stem
    name = f"{results['benchmark']}-{stem}-{results['encoder']['used']}-{results['comparison_key'][:8]}.json"
    return run / "probes" / name


def write_results(results: dict[str, Any], path: Optional[str] = None) -> Path:
    out = Path(path) if path else default_output_path(results)
    # atomic (a crash never leaves half a file), with its integrity record (checked by whoever reads it)
    return write_json(out, results, integrity=True)


def summary(results: dict[str, Any]) -> str:
    """A few human-readable lines: every head, the selected one and the rule, top-1 with its interval."""
    m, sel = results["metrics"], results["selection"]
    lines = [
        f"probe {results['benchmark']}: {results['probe']['probe']} probe on the {results['encoder']['description']}",
        f"  checkpoint: {results['checkpoint']['path']}",
        f"  clips: train {results['splits']['train']}, val {results['splits']['val']}, test {results['splits']['test']}; "
        f"epochs {results['training']['epochs']}, batch {results['training']['batch_size']}, seed {results['seed']}",
    ]
    layer = results["features"].get("layer", "last")
    if layer != "last":
        lines.append(f"  features: {results['encoder']['feature_layer']}")
    for head in results["heads"]:
        mark = "*" if head["head"] == sel["selected_head"] else " "
        val = f"val top-1 {head['val_top1']:.2f}" if head.get("val_top1") is not None else ""
        if head.get("top1") is None:  # chosen against on the validation split: never scored on the test clips
            test = "not scored on the test clips"
        else:
            test = (f"top-1 {head['top1']:.2f}, top-{m['top_k']} {head['top5']:.2f}, "
                    f"mean class {head['mean_class_acc']:.2f}")
        lines.append(f"  {mark} head {head['head']}: lr {head['lr']:g}, wd {head['weight_decay']:g}: "
                     + ", ".join(part for part in (test, val) if part))
    lo, hi = m["top1_ci95"]
    validation = sel.get("validation")
    held_out = (f" (validation: {validation['clips']} training clips held out, fraction {validation['fraction']:g}, "
                f"seed {validation['seed']})") if validation else ""
    lines.append(f"  selected head {sel['selected_head']} of {sel['num_heads']}, rule: {sel['description']}{held_out}")
    optimistic = "OPTIMISTIC (test-set maximum over heads) " if sel.get("optimistic") else ""
    lines.append(f"  {optimistic}top-1 {m['top1']:.2f} % (95% CI {lo:.2f}-{hi:.2f}, {m['num_test_clips']} test clips; "
                 f"chance {results['benchmark_info']['chance']:.2f} %), top-{m['top_k']} {m['top5']:.2f} %, "
                 f"mean per-class {m['mean_class_acc']:.2f} %")
    for warning in results.get("warnings") or []:  # e.g. probed at clip settings other than those trained
        lines.append(f"  warning: {warning}")
    if results.get("tensorboard"):  # the confusion matrix image and the probe's losses
        lines.append(f"  TensorBoard: tensorboard --logdir {results['tensorboard']}")
    return "\n".join(lines)


def compare(results: list[dict[str, Any]]) -> str:
    """A table of comparable results (refused, with the differing settings, when they are not)."""
    key = check_comparable(results)
    first = results[0]
    lines = [f"{first['benchmark']}: {first['probe']['probe']} probe, {first['training']['epochs']} epochs, "
             f"{first['splits']['test']} test clips, chance {first['benchmark_info']['chance']:.2f} % "
             f"(comparison key {key})"]
    for r in results:
        m = r["metrics"]
        lo, hi = m["top1_ci95"]
        optimistic = " optimistic" if r.get("selection", {}).get("optimistic") else ""
        lines.append(f"  {r['encoder']['used']:>15s}  top-1 {m['top1']:6.2f} %{optimistic}  (95% CI {lo:5.2f}-{hi:5.2f})  "
                     f"probe {r['wall_time_s']['total']:.0f} s  {r['checkpoint']['path']}")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    """``python -m jepa_lit.eval.results A.json B.json ...``: print the results side by side."""
    import sys

    # RUN/probes/*.json also matches the results' integrity records (*.json.sha256.json): not results
    paths = [p for p in (sys.argv[1:] if argv is None else argv) if not str(p).endswith(SIDECAR_SUFFIX)]
    if not paths:
        print("usage: python -m jepa_lit.eval.results RESULT.json [RESULT.json ...]", file=sys.stderr)
        return 2
    loaded = []
    for p in paths:  # a wrong path or a file that is not a results JSON: say which, not a traceback
        try:
            results = json.loads(read_checked_text(p, RERUN_PROBE, RegistryError))
        except RegistryError as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
        except FileNotFoundError:
            from jepa_lit.hints import path_hint

            hint = path_hint(str(Path(p).absolute()), suffixes=[".json"])  # absolute: the listing of "." too
            print(f"error: results file not found: {p}" + (f"\n{hint}" if hint else ""), file=sys.stderr)
            return 2
        except OSError as error:
            print(f"error: cannot read {p}: {error.strerror or error}", file=sys.stderr)
            return 2
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            print(f"error: {p} is not JSON ({error}); expected a probe results JSON written by "
                  "jepa-lit test --probe", file=sys.stderr)
            return 2
        if not isinstance(results, dict) or not str(results.get("schema", "")).startswith(SCHEMA.split("/")[0]):
            print(f"error: {p} is not a probe results JSON (no \"schema\": \"{SCHEMA}\"); expected a file "
                  "written by jepa-lit test --probe (RUN/probes/*.json)", file=sys.stderr)
            return 2
        loaded.append(results)
    try:
        print(compare(loaded))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
