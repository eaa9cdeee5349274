"""What a DataLoader worker sets up: one thread each for torch, OpenCV and (by default) the video decoder, and
SIGTERM taken only from its own rank (``ignore_sigterm``).

A GPU is fed by many loader workers (the study's configs: 8 per GPU, 32 on a 4-GPU node), and the
parallelism is the workers themselves. Left alone, every worker would also start its own thread pools:
OpenCV (albumentations' crop and resize) one thread per core, FFmpeg's decoder one per core as well
(``thread_count`` 0). On a 32-core node that is ~2,000 threads competing for 32 cores, plus their
start-up and hand-over costs in every clip. So a worker runs single-threaded libraries, and
``decoder_threads`` (a DataModule setting) lets a machine with far more cores than workers give the
decoder some back.

``loader_worker_init`` is the loaders' ``worker_init_fn`` (jepa_lit.data.resumable). Lightning only seeds
workers through its own ``worker_init_fn`` when a loader has none (``seed_everything(workers=True)``), so
this one calls Lightning's seeding in that case.
"""

from __future__ import annotations

import functools
import os
import signal
import threading

import cv2
import torch

from jepa_lit.data import decode

# FFmpeg threads per decoder in a loader worker: 1 = none besides the worker's own (the study's 8 workers
# per GPU fill the cores); 0 = FFmpeg's choice (one per core, what PyAV does when nothing is set).
DEFAULT_DECODER_THREADS = 1


def check_decoder_threads(decoder_threads: int) -> int:
    """The setting as given, or a clear error for a value FFmpeg cannot take."""
    if isinstance(decoder_threads, bool) or not isinstance(decoder_threads, int) or decoder_threads < 0:
        raise ValueError(f"data.decoder_threads={decoder_threads!r}; expected an integer >= 0 "
                         "(FFmpeg threads per loader worker; 0 = one per core)")
    return decoder_threads


def configure_worker_threads(decoder_threads: int = DEFAULT_DECODER_THREADS) -> None:
    """Set this process's thread pools as a loader worker's: torch 1, OpenCV 1, FFmpeg ``decoder_threads``."""
    torch.set_num_threads(1)  # the DataLoader does this too; said here so that all three are in one place
    cv2.setNumThreads(1)  # albumentations' resize and crop run on the calling thread only
    decode.set_decoder_threads(check_decoder_threads(decoder_threads))


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


def _init_worker(worker_id: int, decoder_threads: int) -> None:
    ignore_sigterm(worker_id)
    configure_worker_threads(decoder_threads)
    if int(os.environ.get("PL_SEED_WORKERS", 0)):  # what Lightning would have installed without ours
        from lightning.fabric.utilities.seed import pl_worker_init_function

        pl_worker_init_function(worker_id)


def loader_worker_init(decoder_threads: int = DEFAULT_DECODER_THREADS):
    """A picklable ``worker_init_fn`` (spawned workers too) that configures the worker's threads."""
    return functools.partial(_init_worker, decoder_threads=check_decoder_threads(decoder_threads))
