"""FeatureDataModule: cached frozen features as a DataModule, for training probes with a Trainer.

Built empty from its settings (so LightningCLI can show and override them), then given the train and
test FeatureSets with ``attach``. When a validation split is wanted (see ``holdout_fraction``) a random
part of the training clips, stratified by class and fixed by ``split_seed``, is held out of probe
training; the probe head is selected on it, so the test clips are only ever scored, never used to choose.
"""

from __future__ import annotations

from typing import Optional

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from jepa_lit.eval.features import FeatureLayer, FeatureSet, Pooling, check_layer

# The hold-out when more than one head is trained and val_fraction is left unset.
DEFAULT_VAL_FRACTION = 0.1


def holdout_split(labels: np.ndarray, fraction: float, seed: int, stratify: bool = True) -> tuple[list[int], list[int]]:
    """(train indices, validation indices), both sorted: round(fraction * N) clips (at least 1) drawn
    at random with ``seed``; with ``stratify`` each class gives its share (largest remainders round),
    so a class is not left out of validation, or of training, by chance."""
    labels = np.asarray(labels)
    total = len(labels)
    num_val = max(1, int(round(fraction * total)))
    if num_val >= total:
        raise ValueError(f"features.val_fraction={fraction} leaves no training clips of {total}")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed)).numpy()
    if not stratify:
        return sorted(order[num_val:].tolist()), sorted(order[:num_val].tolist())
    classes = [order[labels[order] == c] for c in np.unique(labels)]  # each class's clips, in random order
    shares = [fraction * len(members) for members in classes]
    counts = [int(share) for share in shares]
    by_remainder = sorted(range(len(classes)), key=lambda c: -(shares[c] - counts[c]))  # stable: ties by class
    for c in by_remainder[: max(0, num_val - sum(counts))]:
        counts[c] += 1
    val = np.concatenate([members[:k] for members, k in zip(classes, counts)])
    train = np.setdiff1d(np.arange(total), val)
    return sorted(train.tolist()), sorted(val.tolist())


class FeatureDataModule(L.LightningDataModule):
    """Args:
        layer: which encoder channels are cached: "last" (the last level, D wide: the study's),
            "levels" (the 4 hierarchical levels concatenated, 4D), "appearance" / "dynamics" (FWM's
            split of those 4D channels at D_app = max(1, floor(app_ratio * 4D))). See docs/reproducing.md.
        app_ratio: FWM's appearance share of the 4D channels, for "appearance" / "dynamics".
        pooling: what is cached per clip: all tokens, or their mean (one token).
        batch_size: probe training batch (evaluation uses the same).
        val_fraction: part of the training clips held out for head selection. None: DEFAULT_VAL_FRACTION
            when the probe selects among several heads on validation, else none (one head trains on all
            training clips, as the study's). 0: never.
        split_seed: seed of that hold-out draw.
        stratify: draw the hold-out per class (each class gives its share) rather than from all clips.
        num_workers: DataLoader workers reading the cache.
        cache_dir: where features are cached (None: ``<run dir>/feature_cache``).
    """

    def __init__(
        self,
        layer: FeatureLayer = "last",
        app_ratio: float = 0.5,
        pooling: Pooling = "tokens",
        batch_size: int = 16,
        val_fraction: Optional[float] = None,
        split_seed: int = 0,
        stratify: bool = True,
        num_workers: int = 0,
        cache_dir: Optional[str] = None,
    ):
        super().__init__()
        check_layer(layer, app_ratio)
        if val_fraction is not None and not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"features.val_fraction={val_fraction}; expected a fraction in [0, 1) or null (auto)")
        self.layer, self.app_ratio = layer, app_ratio
        self.pooling, self.batch_size, self.val_fraction = pooling, batch_size, val_fraction
        self.split_seed, self.stratify, self.num_workers, self.cache_dir = split_seed, stratify, num_workers, cache_dir
        self.num_classes: Optional[int] = None
        self.val_fraction_used = 0.0
        self.train_set = self.val_set = self.test_set = None

    def holdout_fraction(self, needs_validation: bool) -> float:
        """The part of the training clips held out: ``val_fraction`` when set, else DEFAULT_VAL_FRACTION
        when the probe needs a validation split to choose its head, else 0."""
        if self.val_fraction is not None:
            return self.val_fraction
        return DEFAULT_VAL_FRACTION if needs_validation else 0.0

    def attach(self, train: FeatureSet, test: FeatureSet, num_classes: int,
               needs_validation: bool = False) -> "FeatureDataModule":
        """Use these features; hold out validation clips when ``holdout_fraction(needs_validation) > 0``."""
        for name, split in (("train", train), ("test", test)):
            if len(split) == 0:
                raise ValueError(f"the {name} split has no clips")
        if int(torch.as_tensor(train.labels).min()) < 0 or int(torch.as_tensor(test.labels).min()) < 0:
            raise ValueError("probe features need labelled clips; found label -1 (unlabelled)")
        self.num_classes = int(num_classes)
        self.test_set = test
        self.val_fraction_used = self.holdout_fraction(needs_validation)
        if self.val_fraction_used > 0:
            kept, held_out = holdout_split(np.asarray(train.labels), self.val_fraction_used, self.split_seed,
                                           self.stratify)
            self.train_set, self.val_set = Subset(train, kept), Subset(train, held_out)
        else:
            self.train_set, self.val_set = train, None
        self._shape = train.shape
        return self

    @property
    def embed_dim(self) -> int:
        return int(self._shape[-1])

    @property
    def tokens_per_clip(self) -> int:
        return int(self._shape[-2])

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train_set), "val": len(self.val_set) if self.val_set is not None else 0,
                "test": len(self.test_set)}

    def _loader(self, dataset, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError("FeatureDataModule has no features yet: call attach(train, test, num_classes)")
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self):
        return self._loader(self.val_set, shuffle=False) if self.val_set is not None else []

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
