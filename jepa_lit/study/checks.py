"""What the report refuses to put side by side, and which runs no longer match their spec.

Refused (unless ``--allow-mismatch``): results of one benchmark whose probe settings differ, a variant
result without a baseline result of the same seed and regime, seeds of one variant pretrained with
different configs, and one regime's runs at different scales. Stale: finished runs whose config or
probe settings are no longer what the sweep's spec expands to.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from jepa_lit.eval.results import comparison_settings, differences
from jepa_lit.study.registry import RunRecord, read_results


class Refused(ValueError):
    """The results cannot be tabulated side by side; the message names the runs and fields."""


@dataclass
class Result:
    """One benchmark's result of one finished run."""

    run_id: str
    regime: str
    variant: str
    seed: int
    benchmark: str
    top1: float
    ci95: Optional[list[float]]
    key: str
    settings: Optional[dict[str, Any]]  # comparison_settings of the results JSON (None if it is gone)
    record: RunRecord

    @property
    def is_baseline(self) -> bool:
        return self.record.baseline_run


def collect(records: list[RunRecord], missing: Optional[list[str]] = None) -> list[Result]:
    """The results of finished runs. A result whose run.json names a results JSON that is gone is left out,
    with a line in ``missing``; a results JSON that cannot be read raises a RegistryError naming it."""
    results = []
    for record in records:
        if record.status != "done":
            continue
        for bench, metric in record.metrics.items():
            settings = None
            path = Path(record.directory or ".") / (metric.results or "")
            if metric.results and not path.is_file():
                if missing is not None:
                    missing.append(f"{record.run_id} {bench}: {Path(record.directory or '.') / 'run.json'} lists "
                                   f"{path}, which no longer exists (not tabulated; rerun the sweep to probe again)")
                continue
            if metric.results:
                settings = comparison_settings(read_results(path).to_dict())
            results.append(Result(record.run_id, record.regime, record.variant, record.seed, bench,
                                  float(metric.top1), metric.top1_ci95, metric.comparison_key, settings, record))
    return results


def names(runs: list[str], limit: int = 6) -> str:
    runs = sorted(set(runs))
    return ", ".join(runs[:limit]) + (f" and {len(runs) - limit} more" if len(runs) > limit else "")


def find_mismatches(results: list[Result], records: list[RunRecord]) -> list[dict[str, Any]]:
    """What the report refuses: each {"kind", "message", "cells": {(regime, variant, benchmark)}}."""
    return (_probe_settings_differ(results) + _no_same_seed_baseline(results) + _config_differs(records)
            + _scale_differs(records))


def _probe_settings_differ(results: list[Result]) -> list[dict[str, Any]]:
    problems = []
    by_bench = defaultdict(list)
    for r in results:
        by_bench[r.benchmark].append(r)
    for bench, group in sorted(by_bench.items()):
        keys = Counter(r.key for r in group)
        if len(keys) < 2:
            continue
        # the reference: the key of most baseline results, then of most results
        ref_key = max(keys, key=lambda k: (sum(r.key == k and r.is_baseline for r in group), keys[k]))
        ref = [r for r in group if r.key == ref_key]
        ref_settings = next((r.settings for r in ref if r.settings is not None), None)
        for key in sorted(set(keys) - {ref_key}):
            odd = [r for r in group if r.key == key]
            settings = next((r.settings for r in odd if r.settings is not None), None)
            fields = (differences(ref_settings, settings) if ref_settings is not None and settings is not None
                      else ["(results JSONs not found: fields unknown)"])
            problems.append({
                "kind": "probe settings differ",
                "message": (f"{bench}: probe settings differ: {len(odd)} result(s) with comparison key {key[:8]} "
                            f"({names([r.run_id for r in odd])}) vs {len(ref)} with key {ref_key[:8]} "
                            f"({names([r.run_id for r in ref])}): " + "; ".join(fields)),
                "cells": {(r.regime, r.variant, bench) for r in odd},
            })
    return problems


def _no_same_seed_baseline(results: list[Result]) -> list[dict[str, Any]]:
    problems = []
    have = {(r.regime, r.seed, r.benchmark) for r in results if r.is_baseline}
    for r in results:
        if not r.is_baseline and (r.regime, r.seed, r.benchmark) not in have:
            seeds = sorted(s for (g, s, b) in have if g == r.regime and b == r.benchmark)
            problems.append({
                "kind": "no same-seed baseline",
                "message": (f"{r.run_id} ({r.benchmark}): no {r.record.baseline} result of seed "
                            f"{r.seed} in regime {r.regime} (baseline seeds with a {r.benchmark} result: "
                            f"{', '.join(map(str, seeds)) or 'none'}); a delta against another seed mixes the "
                            "seed's effect into the variant's"),
                "cells": {(r.regime, r.variant, r.benchmark)},
            })
    return problems


def _config_differs(records: list[RunRecord]) -> list[dict[str, Any]]:
    problems = []
    groups = defaultdict(list)
    for record in records:
        if record.status == "done":
            groups[(record.regime, record.variant)].append(record)
    for (regime, variant), group in sorted(groups.items()):
        if len({r.config_hash for r in group}) > 1:
            problems.append({
                "kind": "config differs between seeds",
                "message": f"{regime}/{variant}: seeds pretrained with different configs: " + "; ".join(
                    f"{r.run_id} config hash {r.config_hash}" for r in sorted(group, key=lambda g: g.seed)),
                "cells": {(regime, variant, b) for r in group for b in r.metrics},
            })
    return problems


def _scale_differs(records: list[RunRecord]) -> list[dict[str, Any]]:
    problems = []
    by_regime = defaultdict(list)
    for record in records:
        if record.status == "done":
            by_regime[record.regime].append(record)
    for regime, group in sorted(by_regime.items()):
        scales = Counter((r.scale, r.scale_hash) for r in group)
        if len(scales) > 1:
            problems.append({
                "kind": "scale differs",
                "message": f"{regime}: runs of different scales or scale overrides: " + "; ".join(
                    f"scale {s} ({h}): {names([r.run_id for r in group if (r.scale, r.scale_hash) == (s, h)])}"
                    for s, h in scales),
                "cells": {(regime, r.variant, b) for r in group for b in r.metrics},
            })
    return problems


def find_stale(records: list[RunRecord], sweep: dict[str, Any]) -> tuple[dict[tuple[str, str], str], list[str]]:
    """Finished runs whose results no longer match what the sweep's spec (``sweep.json``: spec and scale)
    expands to today: ({(run_id, benchmark): why}, notes). A run is stale when its config hash differs
    (the hash with which the sweep's ``--dry-run`` says "config changed"), when a probe's settings changed
    (its results file is not the one the spec now writes), or when the spec no longer has the run.
    Without a spec in sweep.json (registries made by hand) nothing is checked."""
    spec_path, scale = sweep.get("spec"), sweep.get("scale")
    if not spec_path or not scale:
        return {}, []
    from jepa_lit.study.runs import expand

    try:
        current = {run.run_id: run for run in expand(spec_path, scale)}
    except Exception as error:  # noqa: BLE001 - a spec that no longer loads must not stop the report
        return {}, [f"runs not checked against the spec: {spec_path} (scale {scale}) does not expand: {error}"]
    stale = {}
    for record in records:
        if record.status != "done":
            continue
        run, benches = current.get(record.run_id), list(record.metrics)
        if run is None:
            stale.update({(record.run_id, b): f"not a run of {spec_path} at scale {scale} any more" for b in benches})
        elif record.config_hash != run.config_hash:
            stale.update({(record.run_id, b): f"config changed since it ran (config hash {record.config_hash} -> "
                                              f"{run.config_hash})" for b in benches})
        else:
            wanted = {p.benchmark: f"probes/{p.output_name}" for p in run.probes}
            for bench in benches:
                had = record.metrics[bench].results
                if bench not in wanted:
                    stale[(record.run_id, bench)] = f"{bench} is no longer a probe of regime {record.regime}"
                elif had != wanted[bench]:
                    # the name holds the hash of every level of the probe's config stack and the files it names
                    stale[(record.run_id, bench)] = (f"{bench} probe settings changed since it ran ({had}; the spec "
                                                     f"now writes {wanted[bench]}: its config stack, a file it "
                                                     "names, or the spec's overrides)")
    return stale, []
