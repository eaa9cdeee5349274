"""Dependencies' noise that the ``jepa-lit`` command does not print: each filter matches one message from one
module (or logger) of one library, so the same library's other warnings, and all of jepa-lit's, still show.

- Lightning's ``_pytree`` builds a ``torch.utils._pytree.LeafSpec`` on every batch it moves, which torch
  2.13 deprecates (a FutureWarning meant for Lightning's developers, printed again after every change of
  the warning filters, 15 times in ``make demo``).
- Lightning advertises litlogger / litmodels ("💡 Tip: ...") at every Trainer it builds (3 in ``make demo``);
  Lightning has no switch for it, so a logging filter on the logger that prints it drops those two lines.
- LightningCLI warns when it is given ``args`` in a process that has command-line arguments: that is how
  ``main`` passes the command line on (minus ``test`` for probes), so it is expected here.
"""

from __future__ import annotations

import logging
import warnings

# (message regex, category, module regex) of each dependency warning the command leaves out
IGNORED_WARNINGS = (
    (r"`isinstance\(treespec, LeafSpec\)` is deprecated", FutureWarning, r"lightning\.pytorch\.utilities\._pytree$"),
    (r"LightningCLI's args parameter is intended", UserWarning, r"lightning\.pytorch\.cli$"),
)
# Lightning's rank-zero log lines that advertise its cloud products, and the loggers they are printed through
LIGHTNING_TIPS = ("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]",
                  "💡 Tip: For seamless cloud uploads and versioning, try installing [litmodels]")
TIP_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")


class DropLightningTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(LIGHTNING_TIPS)


def silence_dependency_noise() -> None:
    """Install the filters above (once per process; calling again adds nothing)."""
    for message, category, module in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category, module=module)
    for name in TIP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, DropLightningTips) for f in logger.filters):
            logger.addFilter(DropLightningTips())
