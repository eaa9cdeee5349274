import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads(monkeypatch):
    torch.manual_seed(0)
    torch.set_num_threads(2)
    # seed_everything exports the run's seed, which masks and data read when their own is unset; a test
    # must not see the seed an earlier in-process CLI run left behind.
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    monkeypatch.delenv("PL_SEED_WORKERS", raising=False)


@pytest.fixture
def one_thread():
    """For tiny models: they gain nothing from threads, and on a shared CPU their spin-waits cost a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_tiny_module(objectives=(), *, depth: int = 2, num_frames: int = 8, img_size: int = 32,
                     generators=None, predictor_depth: int = 1, seed=None, **kwargs):
    """A JEPAModule with a tiny ViT (``depth`` blocks on ``num_frames`` x ``img_size`` px clips) and a
    1-2 block predictor; ``generators``: (blocks, scale) per mask generator, None for the module's default
    sampler; ``seed``: seeds the weights when set."""
    from jepa_lit.masks import BlockGenerator, MultiBlock3D
    from jepa_lit.models import VisionTransformer
    from jepa_lit.module import JEPAModule

    if seed is not None:
        torch.manual_seed(seed)
    encoder = VisionTransformer(size="tiny", depth=depth, num_frames=num_frames, img_size=img_size)
    if generators is not None:
        kwargs["mask_sampler"] = MultiBlock3D(
            generators=[BlockGenerator(blocks, (scale, scale)) for blocks, scale in generators])
    return JEPAModule(encoder, objectives=list(objectives) or None, predictor_width=32, predictor_depth=predictor_depth,
                      predictor_heads=2, **kwargs)


@pytest.fixture
def tiny_module():
    """make_tiny_module: test files that need another size override this fixture with their own sizes."""
    return make_tiny_module


def fit_on_synthetic(module, steps, precision="32-true", **data):
    """``steps`` training steps of ``module`` on synthetic discs (40 clips of 8 x 32 px, batch 4, no
    validation); returns the trainer and the prediction loss of each step."""
    import lightning as L

    from jepa_lit.data.synthetic import SyntheticMotionDataModule

    data = SyntheticMotionDataModule(**{"num_clips": 40, "num_frames": 8, "crop_size": 32, "batch_size": 4, **data})
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", devices=1, precision=precision, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0)
    losses = []

    class Record(L.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            losses.append(pl_module.last_step.terms["pred"].item())

    trainer.callbacks.append(Record())
    trainer.fit(module, datamodule=data)
    return trainer, losses


@pytest.fixture
def fit_synthetic():
    """fit_on_synthetic (tests/test_module.py, tests/test_guard_health.py)."""
    return fit_on_synthetic


def build_resumable_run():
    """A tiny module with every schedule active (EMA, context ramp, cosine lr, weight decay) and Delta, on
    25 synthetic clips (5 batches an epoch), seeded: two builds are equal (tests/test_resume.py)."""
    import lightning as L

    from jepa_lit.data.synthetic import SyntheticMotionDataModule
    from jepa_lit.masks import BlockGenerator, MultiBlock3D
    from jepa_lit.models import VisionTransformer
    from jepa_lit.module import JEPAModule
    from jepa_lit.objectives import Delta
    from jepa_lit.schedules import OptimizerConfig

    L.seed_everything(0)
    encoder = VisionTransformer(size="tiny", depth=2, num_frames=4, img_size=32)
    masks = MultiBlock3D(generators=[BlockGenerator(2, (0.25, 0.25)), BlockGenerator(1, (0.5, 0.5))])
    module = JEPAModule(encoder, masks, objectives=[Delta()], predictor_width=32, predictor_depth=1,
                        predictor_heads=2, ema_momentum=0.9, context_loss_start=0.3, context_loss_end=0.8,
                        optimizer=OptimizerConfig(lr=1e-3, warmup_steps=3, lr_schedule="cosine",
                                                  final_weight_decay=0.2))
    data = SyntheticMotionDataModule(num_clips=25, num_frames=4, crop_size=32, batch_size=4, seed=3)
    return module, data


@pytest.fixture
def resumable_run():
    """build_resumable_run (tests/test_resume.py, tests/test_checkpoint_retention.py)."""
    return build_resumable_run


def crash_at(step: int):
    """A callback that kills the run when it reaches ``step``, as a crash would (the last checkpoint is the
    step before)."""
    import lightning as L

    class Crash(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == step:
                raise SystemError("simulated crash")

    return Crash()


@pytest.fixture
def crash():
    """crash_at: a callback that raises SystemError at a step."""
    return crash_at
