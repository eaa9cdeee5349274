"""The real datasets, one record each: the DataModule, how to index a split, the official sizes, the fixture.

`data check`, the fixture tree and the tests read this table, so a new dataset is its module
(index function, sizes, DataModule), its fixture maker (jepa_lit.data.fixtures) and one entry here.

    python -m jepa_lit.data.datasets /tmp/jepa_data   # a tiny copy of each dataset (see fixtures.py)
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from jepa_lit.data import diving48, fixtures, imagenet100, ssv2, ucf101
from jepa_lit.data.datamodule import ClipDataModule
from jepa_lit.data.records import IndexProblem, Record


@dataclass(frozen=True)
class IndexOptions:
    """What `data check` may vary when it indexes a split (each dataset reads the ones it has)."""

    ucf101_split: int = 1
    video_ext: str = "webm"


@dataclass(frozen=True)
class DatasetSpec:
    """One real dataset: its DataModule (name, classes, layout markers), its index of a split, its
    official split sizes and its tiny format-exact fixture maker."""

    datamodule: type[ClipDataModule]
    index: Callable[[str, str, IndexOptions], tuple[list[Record], list[IndexProblem]]]
    official_size: Callable[[str, IndexOptions], int]
    make_fixture: Callable[..., dict]  # (root, broken=True) -> summary (see fixtures._summary)
    problems_are_entries: bool = True  # False: the index's problems are missing class folders, not listed entries

    @property
    def name(self) -> str:
        return self.datamodule.dataset_name


DATASETS: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec(ucf101.UCF101DataModule,
                index=lambda root, split, o: ucf101.index_ucf101(root, o.ucf101_split, split),
                official_size=lambda split, o: ucf101.OFFICIAL_SIZES[o.ucf101_split][split],
                make_fixture=fixtures.make_ucf101),
    DatasetSpec(ssv2.SSv2DataModule,
                index=lambda root, split, o: ssv2.index_ssv2(root, split, o.video_ext),
                official_size=lambda split, o: ssv2.OFFICIAL_SIZES[split],
                make_fixture=fixtures.make_ssv2),
    DatasetSpec(imagenet100.ImageNet100DataModule,
                index=lambda root, split, o: imagenet100.index_imagenet100(root, split),
                official_size=lambda split, o: imagenet100.OFFICIAL_SIZES[split],
                make_fixture=fixtures.make_imagenet100, problems_are_entries=False),
    DatasetSpec(diving48.Diving48DataModule,
                index=lambda root, split, o: diving48.index_diving48(root, split),
                official_size=lambda split, o: diving48.OFFICIAL_SIZES[split],
                make_fixture=fixtures.make_diving48),
)}


def make_fixture_tree(root: fixtures.PathLike, broken: bool = True) -> dict[str, dict]:
    """Every dataset's fixture under root/<name>; returns each one's summary (root, good train / test
    counts, num_classes, and `bad`: the broken entries and their kind)."""
    return {name: spec.make_fixture(Path(root) / name, broken) for name, spec in DATASETS.items()}


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "jepa_fixture_data")
    for name, info in make_fixture_tree(out).items():
        print(f"{name:12s} {info['root']}  train {info['train']}  test {info['test']}  broken {len(info['bad'])}")
