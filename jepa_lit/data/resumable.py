"""The DataModules' loaders, and data order that survives a crash: a per-epoch sampler and a
DataLoader that Lightning checkpoints.

``EpochSampler`` draws each epoch's order from (seed, epoch) alone, shards it over DDP ranks, and can
start part-way through an epoch. ``ResumableDataLoader`` implements Lightning's stateful-loader
interface (``state_dict`` / ``load_state_dict``): it records how many batches the training loop has
consumed in the current epoch, so a run resumed from a mid-epoch checkpoint sees exactly the batches
the interrupted run would have seen next. Subclassing ``DistributedSampler`` keeps Lightning from
replacing the sampler under DDP; the sampler shards by rank itself.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any, Callable, Iterator, Optional

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class EpochSampler(DistributedSampler):
    """Indices of one epoch: a permutation from (seed, epoch) (or the natural order without shuffle),
    padded to a multiple of the world size and dealt round-robin to the ranks.

    Subclasses change ``epoch_indices`` (e.g. weighted draws with replacement for a dataset mixture).
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int = 0, num_replicas: Optional[int] = None,
                 rank: Optional[int] = None, keyed: bool = False):
        # DistributedSampler.__init__ insists on an initialised process group; resolve ranks here instead.
        distributed = dist.is_available() and dist.is_initialized()
        self.num_replicas = num_replicas if num_replicas is not None else (dist.get_world_size() if distributed else 1)
        self.rank = rank if rank is not None else (dist.get_rank() if distributed else 0)
        self.size, self.shuffle, self.seed, self.keyed = size, shuffle, seed, keyed
        self.epoch = 0
        self.skip = 0  # indices of this rank to skip when iterating epoch ``skip_epoch`` (resume mid-epoch)
        self.skip_epoch = 0
        self.num_samples = -(-size // self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def epoch_indices(self) -> list[int]:
        if not self.shuffle:
            return list(range(self.size))
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return torch.randperm(self.size, generator=generator).tolist()

    def __iter__(self) -> Iterator[int]:
        indices = self.epoch_indices()
        indices += indices[: self.total_size - len(indices)]  # pad so every rank gets the same count
        mine = indices[self.rank : self.total_size : self.num_replicas]
        if self.keyed:
            mine = with_draw_keys(mine, self.epoch, self.total_size, self.rank, self.num_replicas)
        skip = self.skip if self.epoch == self.skip_epoch else 0  # the saved epoch only, not the next
        self.skip = 0
        return iter(mine[skip:])

    def __len__(self) -> int:
        return self.num_samples

    def resume_at(self, epoch: int, consumed: int) -> None:
        """Continue epoch ``epoch`` after the ``consumed`` indices this rank has already yielded. A
        finished epoch (a checkpoint at its last batch, or at its end) skips nothing: Lightning moves on
        to the next epoch, whose order must start from its beginning."""
        self.set_epoch(epoch)
        self.skip_epoch, self.skip = epoch, (consumed if consumed < len(self) else 0)


def with_draw_keys(indices: list[int], epoch: int, total_size: int, rank: int, num_replicas: int) -> list:
    """(index, draw) pairs: ``draw`` numbers the sample's place in the whole run (epoch x position),
    so a dataset can seed its clip choice and augmentation from it, a pure function that a resumed run
    reproduces (instead of the worker's global generator)."""
    return [(index, epoch * total_size + rank + k * num_replicas) for k, index in enumerate(indices)]


class ResumableDataLoader(DataLoader):
    """A DataLoader whose position Lightning saves in every checkpoint. Its sampler must be a pure
    function of its epoch and have ``epoch`` and ``skip`` (``EpochSampler``, ``MixtureSampler``).

    progress: returns the batches the training loop has consumed in the current epoch (the DataModule
    passes the trainer's count; batches a prefetcher has read but the loop has not used are not counted).
    """

    def __init__(self, dataset: Dataset, sampler: DistributedSampler, progress: Callable[[], int], **kwargs: Any):
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.progress = progress

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "batches": int(self.progress()), "batch_size": int(self.batch_size)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        if state["batch_size"] != self.batch_size:
            raise ValueError(
                f"cannot resume mid-epoch: the checkpoint was written with batch_size {state['batch_size']}, "
                f"this run uses {self.batch_size}"
            )
        self.sampler.resume_at(state["epoch"], state["batches"] * self.batch_size)


def training_progress(datamodule) -> Callable[[], int]:
    """Batches the trainer's fit loop has processed in the current epoch (0 without a trainer)."""

    def progress() -> int:
        trainer = getattr(datamodule, "trainer", None)
        if trainer is None:
            return 0
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed

    return progress


def ignore_sigterm(worker_id: int) -> None:
    """A loader worker's init: it ends on a SIGTERM from its rank (torch stopping its workers, or
    multiprocessing at the rank's exit) and ignores one from anyone else. ``timeout`` and SLURM signal every
    process of the rank's group; the rank then stops at a step boundary and saves (callbacks/preemption.py),
    which a worker killed by that signal would turn into a failed batch. A thread waits for the signal to
    read its sender (``sigwaitinfo``)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # threads started from here on inherit it
    rank = os.getppid()

    def wait_for_sigterm() -> None:
        while signal.sigwaitinfo({signal.SIGTERM}).si_pid != rank:
            pass
        os._exit(0)

    threading.Thread(target=wait_for_sigterm, name="sigterm-from-rank", daemon=True).start()


def training_loader(datamodule, dataset: Dataset, sampler: DistributedSampler) -> ResumableDataLoader:
    """The training loader of every jepa-lit DataModule: resumable, batches from the DataModule's
    settings, and the last partial batch dropped when this rank has at least one full batch."""
    workers = datamodule.num_workers
    return ResumableDataLoader(
        dataset, sampler, training_progress(datamodule), batch_size=datamodule.batch_size,
        drop_last=len(sampler) >= datamodule.batch_size, num_workers=workers, persistent_workers=workers > 0,
        pin_memory=getattr(datamodule, "pin_memory", False), worker_init_fn=ignore_sigterm if workers else None,
    )


def evaluation_loader(datamodule, dataset: Dataset, sampler: Optional[DistributedSampler] = None) -> DataLoader:
    """The validation / test loader of every jepa-lit DataModule: in order (or the given sampler's),
    nothing dropped."""
    workers = datamodule.num_workers
    return DataLoader(dataset, batch_size=datamodule.batch_size, sampler=sampler, num_workers=workers,
                      persistent_workers=workers > 0, pin_memory=getattr(datamodule, "pin_memory", False),
                      worker_init_fn=ignore_sigterm if workers else None)
