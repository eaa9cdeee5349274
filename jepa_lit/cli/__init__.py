"""The ``jepa-lit`` command (console script ``jepa-lit = jepa_lit.cli:main``; ``python -m jepa_lit.cli``).

    commands.py  the command table and main
    fit.py       JepaCLI (fit / validate / predict): config and checkpoint checks, ``--ckpt_path last``
    probe.py     ProbeCLI (test --probe)
    hints.py     ``did you mean`` hints for jsonargparse's errors
    noise.py     the dependencies' warnings and log lines the command leaves out
"""

from jepa_lit.cli.commands import COMMANDS, main
from jepa_lit.cli.fit import run_cli

__all__ = ["COMMANDS", "main", "run_cli"]
