"""FeatureDataModule: cached frozen features as a DataModule, for training probes with a Trainer.

Built empty from its settings (so LightningCLI can show and override them), then given the train and
test FeatureSets with ``attach``. With ``val_fraction > 0`` a class-agnostic random part of the
training clips (fixed by ``split_seed``) is held out as a validation split, used to select a probe head.
"""

from __future__ import annotations

from typing import Optional

import lightning as L
import torch
from torch.utils.data import DataLoader, Subset

from jepa_lit.eval.features import FeatureSet, Pooling


class FeatureDataModule(L.LightningDataModule):
    """Args:
        pooling: what is cached per clip: all final-layer tokens, or their mean (one token).
        batch_size: probe training batch (evaluation uses the same).
        val_fraction: part of the training clips held out for head selection (0: none).
        split_seed: seed of that hold-out draw.
        num_workers: DataLoader workers reading the cache.
        cache_dir: where features are cached (None: ``<run dir>/feature_cache``).
    """

    def __init__(
        self,
        pooling: Pooling = "tokens",
        batch_size: int = 16,
        val_fraction: float = 0.0,
        split_seed: int = 0,
        num_workers: int = 0,
        cache_dir: Optional[str] = None,
    ):
        super().__init__()
        if not 0.0 <= val_fraction < 1.0:
            raise ValueError(f"features.val_fraction={val_fraction}; expected a fraction in [0, 1)")
        self.pooling, self.batch_size, self.val_fraction = pooling, batch_size, val_fraction
        self.split_seed, self.num_workers, self.cache_dir = split_seed, num_workers, cache_dir
        self.num_classes: Optional[int] = None
        self.train_set = self.val_set = self.test_set = None

    def attach(self, train: FeatureSet, test: FeatureSet, num_classes: int) -> "FeatureDataModule":
        """Use these features; hold out the validation clips when ``val_fraction > 0``."""
        for name, split in (("train", train), ("test", test)):
            if len(split) == 0:
                raise ValueError(f"the {name} split has no clips")
        if int(torch.as_tensor(train.labels).min()) < 0 or int(torch.as_tensor(test.labels).min()) < 0:
            raise ValueError("probe features need labelled clips; found label -1 (unlabelled)")
        self.num_classes = int(num_classes)
        self.test_set = test
        if self.val_fraction > 0:
            order = torch.randperm(len(train), generator=torch.Generator().manual_seed(self.split_seed)).tolist()
            num_val = max(1, int(round(self.val_fraction * len(train))))
            if num_val >= len(train):
                raise ValueError(f"features.val_fraction={self.val_fraction} leaves no training clips")
            self.val_set, self.train_set = Subset(train, sorted(order[:num_val])), Subset(train, sorted(order[num_val:]))
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
