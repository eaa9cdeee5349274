"""OnlineProbe: during pretraining, every N epochs, a quick probe on frozen features of a labelled dataset.

The labelled DataModule may differ from the pretraining one (synthetic motion, or an SSv2 subset while
pretraining on UCF-101). At the end of every ``every_n_epochs``-th training epoch the module's eval
encoder (EMA target, or the online encoder of no-EMA runs) encodes the DataModule's train and test
splits under no_grad; a fresh ProbeModule is fitted on the train features by a separate, quiet
Trainer on the same device and scored on the test features; the top-1 (%) is logged as
``online_probe/<name>/top1``. The probe never touches the pretraining model or its optimizer, and
its random draws are made in a forked RNG so the pretraining run's randomness is unchanged.

Runs on global rank 0 only (the value is logged with ``rank_zero_only``); with DDP the other ranks
wait for it at their next collective.

Example (YAML, under ``trainer.callbacks``)::

    - class_path: jepa_lit.callbacks.online_probe.OnlineProbe
      init_args:
        every_n_epochs: 5
        datamodule:
          class_path: jepa_lit.data.synthetic.SyntheticMotionDataModule
          init_args: {num_clips: 80, crop_size: 64}
"""

from __future__ import annotations

import warnings
from typing import Optional

import lightning as L
import torch

from jepa_lit.eval.evaluate import check_probe_datamodule
from jepa_lit.eval.feature_data import FeatureDataModule
from jepa_lit.eval.features import FeatureLayer, Pooling, check_layer, extract_in_memory, quiet_lightning, split_loaders
from jepa_lit.eval.probe_module import ProbeModule
from jepa_lit.models.probes import ProbeType


class OnlineProbe(L.Callback):
    """Args:
        datamodule: a labelled DataModule (train split trains the probe, test split scores it).
        every_n_epochs: probe after every N-th training epoch.
        name: the log key is ``online_probe/<name>/top1``.
        probe, pooling: probe type and cached feature pooling (see jepa_lit.models.probes).
        layer, app_ratio: which encoder channels the probe reads ("last", the default; "levels";
            FWM's "appearance" / "dynamics" split at app_ratio), as FeatureDataModule.
        epochs, lr, weight_decay, batch_size: the probe's AdamW training.
        max_train_clips, max_test_clips: use only the first clips of each split (None: all).
        seed: seed of the probe's initialisation and data order.
        at_start: also probe before the first training step (logged at step 0): the encoder as
            initialised, i.e. the random-init control of a run that starts from scratch.
    """

    def __init__(
        self,
        datamodule: L.LightningDataModule,
        every_n_epochs: int = 1,
        name: str = "probe",
        probe: ProbeType = "attentive",
        pooling: Pooling = "tokens",
        layer: FeatureLayer = "last",
        app_ratio: float = 0.5,
        epochs: int = 20,
        lr: float = 1e-3,
        weight_decay: float = 0.01,
        batch_size: int = 32,
        max_train_clips: Optional[int] = None,
        max_test_clips: Optional[int] = None,
        seed: int = 0,
        at_start: bool = False,
    ):
        super().__init__()
        if every_n_epochs < 1:
            raise ValueError(f"OnlineProbe.every_n_epochs={every_n_epochs}; expected >= 1")
        self.datamodule, self.every_n_epochs, self.name = datamodule, every_n_epochs, name
        check_layer(layer, app_ratio)
        self.probe, self.pooling, self.epochs = probe, pooling, epochs
        self.layer, self.app_ratio = layer, app_ratio
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.max_train_clips, self.max_test_clips, self.seed = max_train_clips, max_test_clips, seed
        self.at_start = at_start
        self.history: list[tuple[int, float]] = []  # (global step, top-1 %)
        self._loaders = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        check_probe_datamodule(self.datamodule)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Only a fresh run: a resumed one has already logged its start (and its encoder is trained).
        if self.at_start and trainer.global_step == 0 and trainer.is_global_zero:
            self.record(trainer, self.evaluate(trainer, pl_module))

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs or not trainer.is_global_zero:
            return
        top1 = self.evaluate(trainer, pl_module)
        self.history.append((trainer.global_step, top1))
        pl_module.log(f"online_probe/{self.name}/top1", top1, rank_zero_only=True)

    def record(self, trainer: L.Trainer, top1: float) -> None:
        """Log outside a training hook (``pl_module.log`` is not allowed in on_train_start)."""
        self.history.append((trainer.global_step, top1))
        for logger in trainer.loggers:
            logger.log_metrics({f"online_probe/{self.name}/top1": top1}, step=trainer.global_step)

    def evaluate(self, trainer: L.Trainer, pl_module: L.LightningModule) -> float:
        """Fit the probe on the current eval encoder's features; its test top-1 in %."""
        if self._loaders is None:
            self._loaders = split_loaders(self.datamodule)
        encoder = pl_module.eval_encoder
        was_training = encoder.training
        encoder.eval()
        try:
            with trainer.precision_plugin.forward_context():
                train, test = (extract_in_memory(encoder, self._loaders[split], self.pooling, pl_module.device, limit,
                                                 self.layer, self.app_ratio)
                               for split, limit in (("train", self.max_train_clips), ("test", self.max_test_clips)))
        finally:
            encoder.train(was_training)
        features = FeatureDataModule(layer=self.layer, app_ratio=self.app_ratio, pooling=self.pooling,
                                     batch_size=self.batch_size)
        features.attach(train, test, self.datamodule.num_classes)
        device = pl_module.device
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), quiet_lightning(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Total length of .* across ranks is zero.*")  # no val split
            torch.manual_seed(self.seed)
            probe = ProbeModule(self.probe, lrs=[self.lr], weight_decays=[self.weight_decay], bootstrap_samples=0,
                                embed_dim=features.embed_dim, num_classes=features.num_classes)
            inner = L.Trainer(
                accelerator="gpu" if cuda else "cpu", devices=cuda or 1, max_epochs=self.epochs,
                logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                num_sanity_val_steps=0,
            )
            inner.fit(probe, datamodule=features)
            inner.test(probe, datamodule=features, verbose=False)
        return float(probe.results["metrics"]["top1"])
