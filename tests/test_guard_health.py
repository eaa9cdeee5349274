import lightning as L
import pytest
import torch

from jepa_lit.callbacks.health import RepresentationHealth, effective_rank
from jepa_lit.guard import GuardConfig, LossGuard, NonFiniteLossError, SkippedStepsError
from jepa_lit.objectives import Objective
from jepa_lit.step import StepRecord


class NaNAt(Objective):
    """A term that goes non-finite at one step."""

    name = "nan_at"

    def __init__(self, step: int = 1):
        super().__init__()
        self.step = step

    def forward(self, outputs):
        value = outputs.zero() + (float("nan") if outputs.step == self.step else 0.0)
        return {self.name: value}


def test_nonfinite_term_stops_naming_step_and_term(tiny_module, fit_synthetic):
    L.seed_everything(0)
    with pytest.raises(NonFiniteLossError, match=r"step 1: term\(s\) nan_at"):
        fit_synthetic(tiny_module(objectives=[NaNAt(1)]), steps=3)


@pytest.mark.slow
def test_nonfinite_term_skips_when_asked(tiny_module, fit_synthetic):
    L.seed_everything(0)
    module = tiny_module(objectives=[NaNAt(1)], guard=GuardConfig(on_nonfinite="skip", max_skipped_fraction=0.5))
    trainer, _ = fit_synthetic(module, steps=3)
    assert module.guard.skipped == 1 and all(torch.isfinite(p).all() for p in module.parameters())
    assert module.guard.batches == 3 and module.guard.summary() == "guard: skipped 1 of 3 training batches (33.3%)"


class NaNEveryOther(Objective):
    """A term that is non-finite on every other batch."""

    name = "nan_every_other"

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, outputs):
        self.calls += 1
        return {self.name: outputs.zero() + (float("nan") if self.calls % 2 == 0 else 0.0)}


def test_a_fit_that_skipped_too_many_steps_fails_with_a_summary(tiny_module, fit_synthetic):
    L.seed_everything(0)
    module = tiny_module(objectives=[NaNEveryOther()], guard=GuardConfig(on_nonfinite="skip"))
    with pytest.raises(SkippedStepsError, match=r"guard: skipped 1 of 3 training batches \(33.3%\), more than "
                                                r"model.init_args.guard.max_skipped_fraction=0.1"):
        fit_synthetic(module, steps=3)
    assert SkippedStepsError.exit_code == 1


def test_loss_spike_rule():
    guard = LossGuard(GuardConfig(spike_std=3.0, spike_window=10, spike_min_history=5))
    for loss in [1.0, 1.1, 0.9, 1.0, 1.05]:
        assert guard.spike(loss, 0) is None
    assert "loss spike at step 7" in guard.spike(5.0, 7)
    assert guard.spike(1.02, 8) is None and len(guard.history) == 6  # the spike is not recorded
    huge = torch.tensor(1e9)
    assert LossGuard(GuardConfig()).check({"pred": huge}, huge, 0) is None  # spike skipping is off by default
    spiky = LossGuard(GuardConfig(spike_std=3.0, spike_min_history=5))
    for loss in [1.0, 1.1, 0.9, 1.0, 1.05]:
        assert spiky.check({"pred": torch.tensor(loss)}, torch.tensor(loss), 0) is None
    assert "loss spike at step 9" in spiky.check({"pred": huge}, huge, 9)


def test_effective_rank_known_values():
    assert effective_rank(torch.randn(500, 1) @ torch.randn(1, 16)) == pytest.approx(1.0, abs=0.05)
    # The centred identity has 7 equal non-zero singular values.
    assert effective_rank(torch.eye(8)) == pytest.approx(7.0, rel=1e-4)


def test_health_measures_and_warns_on_collapse(tiny_module):
    module = tiny_module()
    outputs = module.forward_step(torch.randn(2, 3, 8, 64, 64), step=0)
    metrics = RepresentationHealth.measure(module, outputs)
    assert set(metrics) == {"target_std", "context_rank", "pred_target_cos", "ema_drift"}
    assert metrics["ema_drift"] == pytest.approx(0.0) and metrics["target_std"] > 0.1
    with torch.no_grad():  # target = 2 x online: the drift is exactly 1
        for target, online in zip(module.target_encoder.parameters(), module.encoder.parameters()):
            target.copy_(2 * online)
    assert RepresentationHealth.measure(module, outputs)["ema_drift"] == pytest.approx(1.0, rel=1e-5)
    outputs.target = torch.zeros_like(outputs.target)  # a collapsed target
    assert RepresentationHealth.measure(module, outputs)["target_std"] == 0.0
    module.last_step, logged = StepRecord(outputs, {}, outputs.clip), {}
    module.log_dict = lambda metrics, **kwargs: logged.update(metrics)
    trainer = type("Trainer", (), {"global_step": 0})()
    with pytest.warns(UserWarning, match=r"step 0: target features are collapsing \(std 0 < 0.05\)"):
        RepresentationHealth(every_n_steps=1).on_train_batch_end(trainer, module, None, None, 0)
    assert logged["health/target_std"] == 0.0


class InfiniteGradientAt(Objective):
    """A finite term (sqrt(0) = 0) whose gradient is not (d sqrt / dx at 0 = inf): only the gradient check sees it."""

    name = "inf_grad"

    def __init__(self, step: int = 1):
        super().__init__()
        self.step = step

    def forward(self, outputs):
        context = outputs.generators[0][0].context
        if outputs.step != self.step:
            return {self.name: context.sum() * 0.0}
        return {self.name: (context - context.detach()).square().sum().sqrt()}


@pytest.mark.slow
def test_nonfinite_gradient_stops_naming_step_and_term(tiny_module, fit_synthetic):
    L.seed_everything(0)
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient at step 1 from term\(s\) inf_grad \(loss"):
        fit_synthetic(tiny_module(objectives=[InfiniteGradientAt(1)]), steps=3)


@pytest.mark.slow
def test_nonfinite_gradient_skips_the_step_when_asked(tiny_module, fit_synthetic):
    L.seed_everything(0)
    module = tiny_module(objectives=[InfiniteGradientAt(1)],
                         guard=GuardConfig(on_nonfinite="skip", max_skipped_fraction=0.5))
    with pytest.warns(UserWarning, match=r"skipping step 1: non-finite gradient at step 1 from term\(s\) inf_grad"):
        fit_synthetic(module, steps=3)
    assert module.guard.skipped == 1 and all(torch.isfinite(p).all() for p in module.parameters())
