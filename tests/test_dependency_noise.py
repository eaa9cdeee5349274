"""The command leaves out Lightning's LeafSpec deprecation and its litlogger / litmodels tips, and nothing
else: another warning from the same Lightning module, the same message from another module, and
jepa-lit's own warnings and Lightning's other log lines still show."""

import logging
import warnings

import pytest

from jepa_lit.cli.noise import TIP_LOGGERS, silence_dependency_noise


@pytest.fixture
def quiet():
    """silence_dependency_noise() with this process's filters and loggers restored afterwards."""
    loggers = {name: list(logging.getLogger(name).filters) for name in TIP_LOGGERS}
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")  # every warning the filters let through is recorded, repeats too
        silence_dependency_noise()
        yield shown
    for name, filters in loggers.items():
        logging.getLogger(name).filters[:] = filters


def messages(shown) -> list[str]:
    return [str(w.message) for w in shown]


def test_lightnings_leafspec_deprecation_is_left_out_and_nothing_else(quiet):
    from lightning.pytorch.utilities._pytree import _tree_flatten
    from lightning.pytorch.utilities.rank_zero import rank_zero_warn

    with warnings.catch_warnings(record=True) as unfiltered:  # without the filters, Lightning does warn
        warnings.simplefilter("always")
        _tree_flatten(1.0)  # what Lightning runs on each batch: builds the deprecated LeafSpec
    assert [m for m in messages(unfiltered) if "LeafSpec" in m]
    _tree_flatten(1.0)
    assert not [m for m in messages(quiet) if "LeafSpec" in m]
    # another FutureWarning from the same Lightning module shows
    warnings.warn_explicit("something else is deprecated", FutureWarning, "_pytree.py", 1,
                           module="lightning.pytorch.utilities._pytree")
    # the same message from another module (ours) shows
    warnings.warn_explicit("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, "module.py", 1,
                           module="jepa_lit.module")
    # jepa-lit's own warnings show (through Lightning's rank_zero_warn, as jepa_lit.precision does)
    rank_zero_warn("no GPU: trainer.precision bf16-mixed -> 32-true")
    assert messages(quiet) == ["something else is deprecated", "`isinstance(treespec, LeafSpec)` is deprecated",
                               "no GPU: trainer.precision bf16-mixed -> 32-true"]


def test_lightnings_tips_are_left_out_and_its_other_lines_kept(quiet):
    from lightning.pytorch import Trainer

    class Record(logging.Handler):
        def __init__(self):
            super().__init__(logging.DEBUG)
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    record = Record()
    loggers = [logging.getLogger(name) for name in TIP_LOGGERS]
    for logger in loggers:
        logger.addHandler(record)
    try:
        Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_model_summary=False)
    finally:
        for logger in loggers:
            logger.removeHandler(record)
    assert record.lines, "Lightning printed nothing through its rank-zero loggers: TIP_LOGGERS moved?"
    assert not [line for line in record.lines if "litlogger" in line or "litmodels" in line], record.lines
    assert any(line.startswith("GPU available") for line in record.lines), record.lines


def test_without_the_filters_lightning_does_print_the_tip(quiet):
    """The check above would pass if Lightning stopped printing the tip: it does print it, unfiltered."""
    from lightning.pytorch import Trainer

    for name in TIP_LOGGERS:
        logging.getLogger(name).filters[:] = []
    lines = []
    handler = logging.Handler()
    handler.emit = lambda r: lines.append(r.getMessage())
    logger = logging.getLogger(TIP_LOGGERS[0])
    logger.addHandler(handler)
    try:
        Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_model_summary=False)
    finally:
        logger.removeHandler(handler)
    assert any("litlogger" in line for line in lines), lines
