"""``python -m jepa_lit.study sweep ...`` / ``python -m jepa_lit.study report ...``."""

from __future__ import annotations

import sys
from typing import Callable, Optional


def _sweep(argv: list[str]) -> int:
    from jepa_lit.study.sweep import main

    return main(argv)


def _report(argv: list[str]) -> int:
    from jepa_lit.study.report import main

    return main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "sweep": (_sweep, "expand, list or run the sweep of a spec (experiments/sweep.yaml)"),
    "report": (_report, "tables and plots of a sweep's finished runs"),
}


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        lines = ["usage: python -m jepa_lit.study {sweep,report} ...", "", "commands:"]
        lines += [f"  {name:8s} {text}" for name, (_, text) in COMMANDS.items()]
        asked = bool(argv) and argv[0] in ("-h", "--help")
        print("\n".join(lines), file=sys.stdout if asked else sys.stderr)
        if argv and not asked:
            print(f"error: unknown command {argv[0]!r}", file=sys.stderr)
        return 0 if asked else 2
    from jepa_lit.errors import run_command

    return run_command(f"python -m jepa_lit.study {argv[0]}", COMMANDS[argv[0]][0], argv[1:])


if __name__ == "__main__":
    raise SystemExit(main())
