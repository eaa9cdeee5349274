"""ProbeModule: several probe heads, one per (lr, weight decay) pair, trained in one pass over frozen features.

Every head sees the same batches (as V-JEPA 2's multi-head probe training does); each has its own
AdamW parameter group, so the heads train independently although their losses are summed. Test
clips with several views (segments x spatial crops) are scored by averaging the softmax
probabilities over the views. Each head gets top-1, top-5 and mean per-class accuracy (torchmetrics,
in %). With more than one head, the reported head is chosen by the ``selection`` rule: by default on
the validation split held out of the training clips (after the last epoch), and only that head is then
scored on the test clips, so test labels never take part in the choice; ``test_top1`` (the test-set
maximum over heads, V-JEPA 2's rule) scores every head on the test clips and is labelled optimistic.
The reported head's top-1 gets a bootstrap 95 % interval over the test clips. Its confusion matrix
(torchmetrics; rows: true class, columns: predicted class, clip counts) goes into the results as a
list of lists and, when the test Trainer has a TensorBoardLogger, into TensorBoard as the image
``test/confusion_matrix``.

Batches are dicts {"features": [B, V, L, D] (any float dtype), "label": [B]}; training uses view 0.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal, Optional

import lightning as L
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from jepa_lit.models.probes import ProbeType, build_probe

Selection = Literal["test_top1", "val_top1"]

SELECTION_RULES = {
    "test_top1": "OPTIMISTIC: the head with the highest test top-1 (V-JEPA 2's rule: max over heads; the "
                 "test set picks the head, so the reported top-1 is biased upwards)",
    "val_top1": "the head with the highest top-1 on a validation split held out of the training clips, "
                "after the last epoch; only that head is scored on the test clips",
}
SINGLE_HEAD = "one head trained: nothing to select; it is scored on the test clips"


def bootstrap_interval(correct: Tensor, samples: int = 1000, seed: int = 0, level: float = 0.95,
                       chunk: int = 100) -> tuple[float, float]:
    """Percentile bootstrap interval (in %) of the mean of ``correct`` ([N] bools), resampling clips.

    Returns (lower, upper); (nan, nan) for an empty set or ``samples == 0``.
    """
    correct = correct.flatten().double().cpu()
    n = correct.numel()
    if n == 0 or samples <= 0:
        return math.nan, math.nan
    generator = torch.Generator().manual_seed(seed)
    means = []
    for start in range(0, samples, chunk):
        rows = min(chunk, samples - start)
        index = torch.randint(0, n, (rows, n), generator=generator)
        means.append(correct[index].mean(dim=1))
    means = torch.cat(means)
    tail = (1.0 - level) / 2
    lower, upper = torch.quantile(means, torch.tensor([tail, 1.0 - tail], dtype=means.dtype)).tolist()
    return round(100.0 * lower, 4), round(100.0 * upper, 4)


class ProbeModule(L.LightningModule):
    """Args:
        probe: "attentive" (the study's), "attentive_mean" (the study's SSv2 variant, tokens averaged
            first), "linear" (on mean-pooled tokens), "linear_bn" (the same, standardised
            first by a BatchNorm without affine, MAE's protocol), "vjepa2_attentive" (V-JEPA 2's).
        lrs, weight_decays: the grid; one head per (lr, weight decay) pair.
        attn_heads: attention heads of the probe (None: 8 for the study's probe, 16 for V-JEPA 2's).
        vjepa2_depth: blocks of V-JEPA 2's probe (3 self-attention + 1 cross-attention).
        betas: AdamW betas.
        lr_schedule: "constant" (the study) or "cosine" (decay to 0 over the run's steps).
        selection: how the reported head is chosen among several (SELECTION_RULES): "val_top1" (the
            default; needs a validation split, which FeatureDataModule holds out by default when more
            than one head trains) or "test_top1" (the test-set maximum, labelled optimistic).
        bootstrap_samples, bootstrap_seed: the bootstrap interval on the selected head's top-1.
        embed_dim, num_classes: taken from the feature DataModule at ``configure_model`` when None.
    """

    def __init__(
        self,
        probe: ProbeType = "attentive",
        lrs: list[float] = [1e-3],
        weight_decays: list[float] = [0.01],
        attn_heads: Optional[int] = None,
        vjepa2_depth: int = 4,
        betas: tuple[float, float] = (0.9, 0.999),
        lr_schedule: Literal["constant", "cosine"] = "constant",
        selection: Selection = "val_top1",
        bootstrap_samples: int = 1000,
        bootstrap_seed: int = 0,
        embed_dim: Optional[int] = None,
        num_classes: Optional[int] = None,
    ):
        super().__init__()
        if not lrs or not weight_decays:
            raise ValueError("model.lrs and model.weight_decays need at least one value each")
        if selection not in SELECTION_RULES:
            raise ValueError(f"model.selection={selection!r}; expected one of {sorted(SELECTION_RULES)}")
        self.save_hyperparameters()
        self.grid = [(float(lr), float(wd)) for lr, wd in itertools.product(lrs, weight_decays)]
        self.heads: Optional[nn.ModuleList] = None
        self.val_metrics: Optional[nn.ModuleList] = None
        self.test_metrics: Optional[nn.ModuleList] = None
        self.val_top1: list[float] = []
        self.tested_heads: list[int] = []  # the heads scored on the test clips
        self.results: dict[str, Any] = {}
        self._test_correct: list[list[Tensor]] = []
        if embed_dim is not None and num_classes is not None:
            self.build(embed_dim, num_classes)

    # ----- construction ------------------------------------------------------------------------
    def build(self, embed_dim: int, num_classes: int) -> None:
        """Create the heads and their metrics for D-wide tokens and C classes."""
        h = self.hparams
        self.embed_dim, self.num_classes = embed_dim, num_classes
        self.heads = nn.ModuleList(
            [build_probe(h.probe, embed_dim, num_classes, h.attn_heads, h.vjepa2_depth) for _ in self.grid]
        )
        self.top_k = min(5, num_classes)

        def metrics() -> MetricCollection:
            return MetricCollection({
                "top1": MulticlassAccuracy(num_classes, top_k=1, average="micro"),
                "top5": MulticlassAccuracy(num_classes, top_k=self.top_k, average="micro"),
                "mean_class_acc": MulticlassAccuracy(num_classes, top_k=1, average="macro"),
            })

        self.val_metrics = nn.ModuleList([metrics() for _ in self.grid])
        self.test_metrics = nn.ModuleList([metrics() for _ in self.grid])
        self.test_confusion = nn.ModuleList([MulticlassConfusionMatrix(num_classes) for _ in self.grid])

    def configure_model(self) -> None:
        if self.heads is not None:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        embed_dim = self.hparams.embed_dim or getattr(datamodule, "embed_dim", None)
        num_classes = self.hparams.num_classes or getattr(datamodule, "num_classes", None)
        if not embed_dim or not num_classes:
            raise ValueError("ProbeModule needs embed_dim and num_classes: pass them, or fit with a "
                             "FeatureDataModule that provides them")
        self.build(int(embed_dim), int(num_classes))

    @property
    def needs_validation(self) -> bool:
        """Whether choosing the reported head needs a validation split."""
        return self.hparams.selection == "val_top1" and len(self.grid) > 1

    # ----- forward -----------------------------------------------------------------------------
    def head_probabilities(self, features: Tensor, heads: Optional[list[int]] = None) -> list[Tensor]:
        """[B, V, L, D] features -> per head (all, or those listed) [B, C] class probabilities averaged
        over the V views."""
        views = features.shape[1]
        tokens = rearrange(features.float(), "b v l d -> (b v) l d")
        return [
            rearrange(self.heads[i](tokens).softmax(dim=-1), "(b v) c -> b v c", v=views).mean(dim=1)
            for i in (range(len(self.heads)) if heads is None else heads)
        ]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> Tensor:
        tokens, labels = batch["features"][:, 0].float(), batch["label"]
        losses = torch.stack([F.cross_entropy(head(tokens), labels) for head in self.heads])
        self.log("train/loss", losses.mean(), prog_bar=True, batch_size=labels.shape[0])
        return losses.sum()  # each head's gradient is that of its own loss

    def validation_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        for probabilities, metrics in zip(self.head_probabilities(batch["features"]), self.val_metrics):
            metrics.update(probabilities, batch["label"])

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:  # a few batches through untrained heads: not a basis for selection
            for metrics in self.val_metrics:
                metrics.reset()
            return
        self.val_top1 = []
        for i, metrics in enumerate(self.val_metrics):
            values = metrics.compute()
            self.val_top1.append(round(100.0 * float(values["top1"]), 4))
            self.log(f"val/head{i}/top1", 100.0 * values["top1"])
            metrics.reset()

    def on_test_epoch_start(self) -> None:
        self._test_correct = [[] for _ in self.grid]
        # chosen before any test clip is seen, unless the (optimistic) rule is to choose on the test clips
        self.tested_heads = list(range(len(self.grid))) if self.hparams.selection == "test_top1" else [self.select([])]

    def test_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        labels = batch["label"]
        for i, probabilities in zip(self.tested_heads, self.head_probabilities(batch["features"], self.tested_heads)):
            self.test_metrics[i].update(probabilities, labels)
            self.test_confusion[i].update(probabilities, labels)
            self._test_correct[i].append(probabilities.argmax(dim=-1) == labels)

    def on_test_epoch_end(self) -> None:
        heads = []
        for i, ((lr, wd), metrics) in enumerate(zip(self.grid, self.test_metrics)):
            values = dict.fromkeys(("top1", "top5", "mean_class_acc"))  # None: a head not scored on the test clips
            if i in self.tested_heads:
                values = {k: round(100.0 * float(v), 4) for k, v in metrics.compute().items()}
                for name, value in values.items():
                    self.log(f"test/head{i}/{name}", value)
            metrics.reset()
            heads.append({"head": i, "lr": lr, "weight_decay": wd, **values,
                          "val_top1": self.val_top1[i] if self.val_top1 else None})
        best = self.select(heads) if len(self.tested_heads) > 1 else self.tested_heads[0]
        correct = torch.cat(self._test_correct[best]) if self._test_correct[best] else torch.zeros(0, dtype=torch.bool)
        correct = self.all_gather(correct).flatten() if self.trainer.world_size > 1 else correct
        lower, upper = bootstrap_interval(correct, self.hparams.bootstrap_samples, self.hparams.bootstrap_seed)
        confusion = self.test_confusion[best].compute().long().cpu()
        for metric in self.test_confusion:
            metric.reset()
        self.log_confusion_image(confusion)
        chosen = heads[best]
        self.log("test/top1", chosen["top1"])
        self.results = {
            "heads": heads,
            "selection": self.selection_record(heads, best),
            "metrics": {
                "top1": chosen["top1"],
                "top1_ci95": [lower, upper],
                "top1_ci_method": f"percentile bootstrap over test clips, {self.hparams.bootstrap_samples} "
                                  f"resamples, seed {self.hparams.bootstrap_seed}",
                "top5": chosen["top5"],
                "top_k": self.top_k,
                "mean_class_acc": chosen["mean_class_acc"],
                "num_test_clips": int(correct.numel()),
                # the selected head per test clip, in the test set's order ("1" right): paired comparisons of two
                # encoders on the same clips (the demo's McNemar test)
                "test_correct": "".join("1" if c else "0" for c in correct.tolist()),
                "confusion_matrix": confusion.tolist(),
                "confusion_matrix_layout": "rows: true class, columns: predicted class; test clips of the "
                                           "selected head",
            },
        }
        self._test_correct = []

    def log_confusion_image(self, confusion: Tensor) -> None:
        """The row-normalised confusion matrix as an image (white 0 -> dark blue 1, each cell at least
        ``256 // C`` pixels wide) to the test Trainer's TensorBoardLogger, if it has one."""
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers = [lg for lg in (self.trainer.loggers if self._trainer else []) if isinstance(lg, TensorBoardLogger)]
        if not loggers or not self.trainer.is_global_zero:
            return
        rates = confusion.float() / confusion.sum(dim=1, keepdim=True).clamp_min(1)
        low, high = torch.tensor([1.0, 1.0, 1.0]), torch.tensor([0.03, 0.19, 0.42])
        image = low.view(3, 1, 1) + (high - low).view(3, 1, 1) * rates.unsqueeze(0)  # [3, C, C]
        cell = max(1, 256 // rates.shape[0])
        image = image.repeat_interleave(cell, dim=1).repeat_interleave(cell, dim=2)
        for logger in loggers:
            logger.experiment.add_image("test/confusion_matrix", image, global_step=self.global_step,
                                        dataformats="CHW")

    def select(self, heads: list[dict[str, Any]]) -> int:
        """Index of the reported head under ``selection`` (ties go to the first head of the grid);
        ``heads``: each head's test metrics, read by the optimistic "test_top1" rule only."""
        if len(self.grid) == 1:
            return 0
        if self.hparams.selection == "val_top1":
            if not self.val_top1:
                raise ValueError(
                    f"model.selection='val_top1' chooses among {len(self.grid)} heads on a validation split, "
                    "but none was scored: set features.val_fraction > 0 (or leave it unset) and keep validation "
                    "on (trainer.limit_val_batches > 0); or model.selection: test_top1 (optimistic)")
            scores = self.val_top1
        else:
            scores = [h["top1"] for h in heads]
        return max(range(len(scores)), key=lambda i: (scores[i], -i))

    def selection_record(self, heads: list[dict[str, Any]], best: int) -> dict[str, Any]:
        """How the reported head was chosen, for the results JSON."""
        rule = self.hparams.selection
        several = len(heads) > 1
        record = {"rule": rule, "description": SELECTION_RULES[rule] if several else SINGLE_HEAD,
                  "optimistic": several and rule == "test_top1", "selected_head": best, "num_heads": len(heads),
                  "tested_heads": list(self.tested_heads)}
        if several and self.val_top1:  # what the validation split chose, also beside the optimistic rule
            record["val_selected_head"] = max(range(len(heads)), key=lambda i: (self.val_top1[i], -i))
        return record

    # ----- optimisation ------------------------------------------------------------------------
    def configure_optimizers(self):
        groups = [
            {"params": list(head.parameters()), "lr": lr, "weight_decay": wd}
            for head, (lr, wd) in zip(self.heads, self.grid)
        ]
        optimizer = torch.optim.AdamW(groups, betas=tuple(self.hparams.betas))
        if self.hparams.lr_schedule == "constant":
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
