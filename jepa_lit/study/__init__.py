"""The study tooling: the sweep (spec, runs, registry, executors) and its report.

    python -m jepa_lit.study sweep experiments/sweep.yaml [--scale smoke] [--dry-run | --list]
    python -m jepa_lit.study report runs/sweep/smoke

Layering inside the package: spec -> runs -> registry -> plan / lock -> executor -> launchers -> sweep
for the writer; stats, released, checks -> tables -> render / plots -> report for the reader. Expanding
and listing runs imports neither torch nor Lightning.
"""
