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
