"""The dataset registry (jepa_lit.data.datasets) is complete: every real DataModule is in it, and each
record's index, official sizes and fixture agree with one another."""

import importlib
import inspect
import pkgutil

import pytest

import jepa_lit.data
from jepa_lit.data.datamodule import ClipDataModule
from jepa_lit.data.datasets import DATASETS, IndexOptions


def clip_datamodules() -> dict[str, type]:
    """Every ClipDataModule subclass defined in a jepa_lit.data module, by its dataset_name."""
    found = {}
    for info in pkgutil.iter_modules(jepa_lit.data.__path__, "jepa_lit.data."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, ClipDataModule) and cls is not ClipDataModule and cls.__module__ == info.name:
                found[cls.dataset_name] = cls
    return found


def test_every_datamodule_is_registered():
    modules = clip_datamodules()
    missing = sorted(f"{cls.__module__}.{cls.__name__}" for name, cls in modules.items()
                     if name not in DATASETS or DATASETS[name].datamodule is not cls)
    assert not missing, (f"add a DatasetSpec (DataModule, index, official_size, make_fixture) to DATASETS in "
                         f"jepa_lit/data/datasets.py for: {missing}")
    assert len(modules) >= 4 and set(DATASETS) == set(modules)


@pytest.mark.parametrize("name", list(DATASETS))
def test_a_records_fixture_index_and_sizes_agree(name, tmp_path):
    spec = DATASETS[name]
    assert spec.name == name and spec.datamodule.num_classes > 1
    summary = spec.make_fixture(tmp_path / name, broken=False)
    options = IndexOptions()
    for split in ("train", "test"):
        records, _ = spec.index(summary["root"], split, options)
        assert len(records) == summary[f"{split}_records"] == summary[split] > 0
        assert all(0 <= r.label < spec.datamodule.num_classes for r in records)
        official = spec.official_size(split, options)
        assert isinstance(official, int) and official > len(records)
