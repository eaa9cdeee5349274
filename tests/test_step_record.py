"""The typed seam between a training step and the callbacks: JEPAModule.last_step (a StepRecord) read
through last_step_of, which names the callback and the module when the module is not a JEPAModule."""

from types import SimpleNamespace

import lightning as L
import pytest
import torch

from jepa_lit.callbacks.health import RepresentationHealth
from jepa_lit.callbacks.mask_images import MaskImages
from jepa_lit.callbacks.term_gradients import TermGradientNorms
from jepa_lit.step import StepRecord

pytestmark = pytest.mark.usefixtures("one_thread")


class NotAJepaModule(L.LightningModule):
    pass


def call(callback, module, trainer):
    if isinstance(callback, TermGradientNorms):
        return callback.on_before_backward(trainer, module, None)
    return callback.on_train_batch_end(trainer, module, None, None, 0)


CALLBACKS = [TermGradientNorms(every_n_steps=1), RepresentationHealth(every_n_steps=1), MaskImages(every_n_steps=1)]


@pytest.mark.parametrize("callback", CALLBACKS, ids=lambda c: type(c).__name__)
def test_a_callback_on_another_module_is_a_clear_error(callback):
    trainer = SimpleNamespace(global_step=0, loggers=[], is_global_zero=True)
    with pytest.raises(TypeError, match=rf"{type(callback).__name__} reads a JEPAModule's training step.*NotAJepaModule"):
        call(callback, NotAJepaModule(), trainer)


@pytest.mark.parametrize("callback", CALLBACKS, ids=lambda c: type(c).__name__)
def test_before_the_first_step_a_callback_does_nothing(callback, tiny_module):
    module = tiny_module()
    assert module.last_step is None
    call(callback, module, SimpleNamespace(global_step=0, loggers=[], is_global_zero=True))


def test_the_step_leaves_its_record(tiny_module, fit_synthetic):
    module = tiny_module()
    fit_synthetic(module, steps=1)
    record = module.last_step
    assert isinstance(record, StepRecord) and record.clip.shape == (4, 3, 8, 32, 32)
    assert record.outputs.clip is record.clip or torch.equal(record.outputs.clip, record.clip)
    assert set(record.terms) == {"pred", "context"}
