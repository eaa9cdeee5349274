"""The import layers: each jepa_lit module imports only from its own layer or the ones below, and no
import circle, read from the source with ``ast`` (every import: top level, inside functions, under
TYPE_CHECKING).

    1  distributed, seeds, schedules, hashing, hints, config, errors, atomic (and the package root's constants)
    2  data, models, masks, step, losses, objectives, guard, checkpointing
    3  module, callbacks, eval, demo (the figure and sentence of make demo)
    4  cli
    5  the study tooling (jepa_lit.study: sweep, report)

A package is placed by its name: every module in it (jepa_lit.objectives.new_one) is on its layer, so a new
file in a package needs no edit here. A new top-level module (jepa_lit/x.py) or package fails this test
until it is placed.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "jepa_lit"

LAYERS = {  # package or top-level module -> layer; "jepa_lit" is the package root's own __init__ only
    1: ["jepa_lit", "jepa_lit.distributed", "jepa_lit.seeds", "jepa_lit.schedules", "jepa_lit.hashing",
        "jepa_lit.hints", "jepa_lit.config", "jepa_lit.errors", "jepa_lit.atomic", "jepa_lit.precision",
        "jepa_lit.library_seams", "jepa_lit.run_folder"],
    2: ["jepa_lit.step", "jepa_lit.losses", "jepa_lit.guard", "jepa_lit.checkpointing", "jepa_lit.data",
        "jepa_lit.masks", "jepa_lit.models", "jepa_lit.objectives"],
    3: ["jepa_lit.module", "jepa_lit.callbacks", "jepa_lit.eval", "jepa_lit.demo"],
    4: ["jepa_lit.cli"],
    5: ["jepa_lit.study"],
}
LAYER_OF = {name: layer for layer, names in LAYERS.items() for name in names}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def placed_by(module: str) -> str | None:
    """The LAYERS name that places ``module``: itself, or the package holding it (not the package root)."""
    parts = module.split(".")
    for n in range(len(parts), 1, -1):
        if ".".join(parts[:n]) in LAYER_OF:
            return ".".join(parts[:n])
    return module if module in LAYER_OF else None


def layer_of(module: str) -> int:
    name = placed_by(module)
    if name is None:
        pytest.fail(f"{module} is not placed: add it (or its package) to LAYERS in tests/test_layers.py")
    return LAYER_OF[name]


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
    missing = [m for m in MODULES if placed_by(m) is None]
    assert not missing, f"add these modules (or their package) to LAYERS in tests/test_layers.py: {missing}"
    stale = sorted(name for name in LAYER_OF if not any(placed_by(m) == name for m in MODULES))
    assert not stale, f"LAYERS names what is no longer a jepa_lit module or package: {stale}"


def test_a_new_file_in_a_package_is_placed_by_its_package():
    assert layer_of("jepa_lit.objectives.a_new_objective") == 2 and layer_of("jepa_lit.data.a_new_dataset") == 2
    assert layer_of("jepa_lit.cli.fit") == 4 and layer_of("jepa_lit.study.anything") == 5
    assert placed_by("jepa_lit.a_new_top_level_module") is None  # the root places only itself


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_from_its_layer_or_below(module):
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
