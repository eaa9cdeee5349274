"""``--trainer.enable_progress_bar false`` with a config whose callbacks list a progress bar (base.yaml sets the
bar's refresh rate that way): the bar is dropped instead of Lightning refusing the pair."""

from pathlib import Path

import yaml
from jsonargparse import Namespace
from lightning.pytorch.callbacks import LearningRateMonitor, TQDMProgressBar

from jepa_lit.cli.fit import drop_progress_bar_when_disabled

BASE = Path(__file__).resolve().parents[1] / "experiments" / "base.yaml"


def base_callbacks() -> list[Namespace]:
    return [Namespace(**spec) for spec in yaml.safe_load(BASE.read_text())["trainer"]["callbacks"]]


def test_a_disabled_bar_drops_the_configured_progress_bar_and_keeps_the_rest():
    callbacks = base_callbacks()
    assert any(c.class_path.endswith("TQDMProgressBar") for c in callbacks)  # what the test is about
    trainer = Namespace(enable_progress_bar=False, callbacks=callbacks)
    drop_progress_bar_when_disabled(trainer)
    kept = [c.class_path for c in trainer.callbacks]
    assert kept == [c.class_path for c in callbacks if not c.class_path.endswith("TQDMProgressBar")]
    assert kept  # the checkpoint and learning-rate callbacks stay


def test_instances_and_a_single_callback_are_handled():
    trainer = Namespace(enable_progress_bar=False, callbacks=TQDMProgressBar(refresh_rate=5))
    drop_progress_bar_when_disabled(trainer)
    assert trainer.callbacks == []
    monitor = LearningRateMonitor()
    trainer = Namespace(enable_progress_bar=False, callbacks=[monitor, TQDMProgressBar()])
    drop_progress_bar_when_disabled(trainer)
    assert trainer.callbacks == [monitor]


def test_an_enabled_or_unset_bar_changes_nothing():
    for flag in (True, None):
        callbacks = base_callbacks()
        trainer = Namespace(enable_progress_bar=flag, callbacks=callbacks)
        drop_progress_bar_when_disabled(trainer)
        assert trainer.callbacks is callbacks
