"""The import layers: each jepa_lit module imports only from its own layer or the ones below, and no
import circle, read from the source with ``ast`` (every import: top level, inside functions, under
TYPE_CHECKING).

    1  distributed, seeds, schedules, hashing, hints, config, errors, atomic (and the package root's constants)
    2  data, models, masks, step, losses, objectives, guard, checkpointing
    3  module, callbacks, eval, demo (the figure and sentence of make demo)
    4  cli
    5  the study tooling (sweep, report; jepa_lit.study)

Every module must be placed in LAYERS: a new module fails this test until it is.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jepa_lit"

LAYERS = {
    1: ["jepa_lit", "jepa_lit.distributed", "jepa_lit.seeds", "jepa_lit.schedules", "jepa_lit.hashing",
        "jepa_lit.hints", "jepa_lit.config", "jepa_lit.errors", "jepa_lit.atomic",
        "jepa_lit.run_folder"],
    2: ["jepa_lit.step", "jepa_lit.losses", "jepa_lit.guard",
        "jepa_lit.checkpointing", "jepa_lit.checkpointing.export", "jepa_lit.checkpointing.metadata",
        "jepa_lit.checkpointing.writing", "jepa_lit.checkpointing.integrity",
        "jepa_lit.data", "jepa_lit.data.check", "jepa_lit.data.clip_sampling", "jepa_lit.data.decode",
        "jepa_lit.data.diving48", "jepa_lit.data.fixtures", "jepa_lit.data.imagenet100", "jepa_lit.data.mixed",
        "jepa_lit.data.resumable", "jepa_lit.data.ssv2", "jepa_lit.data.synthetic", "jepa_lit.data.transforms",
        "jepa_lit.data.ucf101", "jepa_lit.data.records", "jepa_lit.data.clip_dataset",
        "jepa_lit.data.datamodule",
        "jepa_lit.masks", "jepa_lit.masks.base", "jepa_lit.masks.future", "jepa_lit.masks.motion_guided",
        "jepa_lit.masks.multiblock", "jepa_lit.masks.groups",
        "jepa_lit.models", "jepa_lit.models.blocks", "jepa_lit.models.official", "jepa_lit.models.positions",
        "jepa_lit.models.predictor", "jepa_lit.models.probes", "jepa_lit.models.vit",
        "jepa_lit.objectives", "jepa_lit.objectives.action", "jepa_lit.objectives.base",
        "jepa_lit.objectives.delta", "jepa_lit.objectives.factorized", "jepa_lit.objectives.hamiltonian",
        "jepa_lit.objectives.hard_weighting", "jepa_lit.objectives.heads", "jepa_lit.objectives.kinematic",
        "jepa_lit.objectives.latent_dynamics", "jepa_lit.objectives.ltc", "jepa_lit.objectives.sigreg",
        "jepa_lit.objectives.spectral", "jepa_lit.objectives.velgate"],
    3: ["jepa_lit.module",
        "jepa_lit.callbacks", "jepa_lit.callbacks.health", "jepa_lit.callbacks.mask_images",
        "jepa_lit.callbacks.online_probe", "jepa_lit.callbacks.term_gradients", "jepa_lit.callbacks.preemption",
        "jepa_lit.eval", "jepa_lit.eval.benchmarks", "jepa_lit.eval.checkpoint", "jepa_lit.eval.evaluate",
        "jepa_lit.eval.feature_data", "jepa_lit.eval.features", "jepa_lit.eval.probe_module",
        "jepa_lit.eval.results", "jepa_lit.demo"],
    4: ["jepa_lit.cli"],
    5: ["jepa_lit.sweep", "jepa_lit.report"],
}
TOP_PACKAGE = "jepa_lit.study"  # the study tooling's package: every module in it is on the top layer
LAYER_OF = {module: layer for layer, modules in LAYERS.items() for module in modules}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    if module == TOP_PACKAGE or module.startswith(TOP_PACKAGE + "."):
        return max(LAYERS)
    return LAYER_OF[module]


def imported_modules(module: str) -> set[str]:
    """The jepa_lit modules ``module`` names in any import statement (``from pkg import submodule``
    counts as the submodule)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from its package upwards
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {name for name in found if name == "jepa_lit" or name.startswith("jepa_lit.")}


def with_parents(module: str) -> list[str]:
    """Importing a.b.c runs a and a.b first: their imports count too."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def test_every_module_is_placed_in_a_layer():
    missing = [m for m in MODULES if not (m in LAYER_OF or m == TOP_PACKAGE or m.startswith(TOP_PACKAGE + "."))]
    assert not missing, f"add these modules to LAYERS in tests/test_layers.py: {missing}"
    stale = sorted(set(LAYER_OF) - set(MODULES))
    assert not stale, f"LAYERS lists modules that no longer exist: {stale}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_its_layer_or_below(module):
    if module not in LAYER_OF and not module.startswith(TOP_PACKAGE):
        pytest.fail(f"{module} is not placed in LAYERS")
    own = layer_of(module)
    upward = []
    for name in imported_modules(module):
        assert name in MODULES, f"{module} imports {name}, which is not a jepa_lit module"
        upward += [f"{m} (layer {layer_of(m)})" for m in with_parents(name) if layer_of(m) > own]
    assert not upward, f"{module} (layer {own}) imports from above its layer: {sorted(set(upward))}"


def test_no_import_circles():
    graph = {module: sorted(imported_modules(module) - {module}) for module in MODULES}
    done, on_path = set(), []

    def visit(module: str) -> None:
        if module in on_path:
            cycle = on_path[on_path.index(module):] + [module]
            pytest.fail("import circle: " + " -> ".join(cycle))
        if module in done:
            return
        on_path.append(module)
        for name in graph[module]:
            visit(name)
        on_path.pop()
        done.add(module)

    for module in graph:
        visit(module)


def test_the_checker_sees_imports_inside_functions_and_type_checking(tmp_path):
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from jepa_lit.module import JEPAModule\n"
              "def f():\n    import jepa_lit.cli\n    from jepa_lit.objectives import heads\n")
    MODULES["jepa_lit.probe_of_the_checker"] = path = tmp_path / "probe.py"
    try:
        path.write_text(source)
        assert imported_modules("jepa_lit.probe_of_the_checker") == {
            "jepa_lit.module", "jepa_lit.cli", "jepa_lit.objectives.heads"}
    finally:
        del MODULES["jepa_lit.probe_of_the_checker"]
