"""Loader workers run torch, OpenCV and the video decoder with the threads jepa_lit.data.worker_threads sets,
and still get Lightning's worker seeding under seed_everything(workers=True)."""

from __future__ import annotations

import types

import av
import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from jepa_lit.data import decode
from jepa_lit.data.resumable import evaluation_loader, training_loader, EpochSampler
from jepa_lit.data.ucf101 import UCF101DataModule
from jepa_lit.data.worker_threads import DEFAULT_DECODER_THREADS, configure_worker_threads, loader_worker_init


def write_video(path, frames: int = 4, size: int = 32) -> str:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for t in range(frames):
            image = np.full((size, size, 3), 20 * t, dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode())
    return str(path)


class ThreadReport(Dataset):
    """Each item: the thread settings the process loading it sees, and a torch draw (to check seeding)."""

    def __init__(self, video: str):
        self.video = video

    def __len__(self):
        return 2

    def __getitem__(self, i):
        container = decode.open_video(self.video)
        try:
            decoder = container.streams.video[0].codec_context.thread_count
        finally:
            container.close()
        return {"torch": torch.get_num_threads(), "opencv": cv2.getNumThreads(), "decoder": decoder,
                "setting": -1 if decode.decoder_threads() is None else decode.decoder_threads(),
                "draw": float(torch.rand(()))}


def fake_datamodule(**settings):
    return types.SimpleNamespace(**{"num_workers": 1, "batch_size": 1, "pin_memory": False, **settings})


@pytest.mark.parametrize("decoder_threads", [1, 3])
def test_a_loader_worker_sees_the_thread_settings(tmp_path, decoder_threads):
    video = write_video(tmp_path / "v.avi")
    datamodule = fake_datamodule(decoder_threads=decoder_threads)
    loaders = [evaluation_loader(datamodule, ThreadReport(video)),
               training_loader(datamodule, ThreadReport(video), EpochSampler(2, shuffle=False))]
    for loader in loaders:
        for batch in loader:
            assert batch["torch"].tolist() == [1]
            assert batch["opencv"].tolist() == [1]
            assert batch["setting"].tolist() == [decoder_threads]
            assert batch["decoder"].tolist() == [decoder_threads]  # what FFmpeg's codec context holds
    # The training process itself is left as it was: PyAV's default (FFmpeg's choice) when it decodes.
    assert decode.decoder_threads() is None
    container = decode.open_video(video)
    assert container.streams.video[0].codec_context.thread_count == 0
    container.close()


def test_without_workers_no_worker_init_is_installed():
    loader = evaluation_loader(fake_datamodule(num_workers=0, decoder_threads=1), ThreadReport("unused"))
    assert loader.worker_init_fn is None


def test_a_datamodule_without_the_setting_gets_the_default(tmp_path):
    video = write_video(tmp_path / "v.avi")
    (batch,) = list(evaluation_loader(fake_datamodule(), ThreadReport(video)))[:1]
    assert batch["decoder"].tolist() == [DEFAULT_DECODER_THREADS]


def test_lightning_worker_seeding_still_applies(tmp_path, monkeypatch):
    """With seed_everything(workers=True) Lightning adds its worker seeding only to loaders without a
    worker_init_fn; ours calls it, so a worker's random draws are Lightning's (its torch seed differs from
    the DataLoader's own, base seed + worker id)."""
    from lightning.fabric.utilities.seed import pl_worker_init_function, seed_everything

    video = write_video(tmp_path / "v.avi")
    monkeypatch.setenv("PL_SEED_WORKERS", "0")  # seed_everything sets it; restored after the test

    def draws(worker_init_fn, workers=True):
        seed_everything(7, workers=workers, verbose=False)
        loader = DataLoader(ThreadReport(video), batch_size=1, num_workers=1, worker_init_fn=worker_init_fn)
        return [float(b["draw"]) for b in loader]

    ours, lightnings = draws(loader_worker_init(1)), draws(pl_worker_init_function)
    assert ours == lightnings
    assert draws(loader_worker_init(1), workers=False) != lightnings  # the DataLoader's seeding alone


def test_configure_worker_threads_in_this_process_and_back():
    previous_torch, previous_opencv = torch.get_num_threads(), cv2.getNumThreads()
    try:
        configure_worker_threads(2)
        assert (torch.get_num_threads(), cv2.getNumThreads(), decode.decoder_threads()) == (1, 1, 2)
    finally:
        torch.set_num_threads(previous_torch)
        cv2.setNumThreads(previous_opencv)
        decode.set_decoder_threads(None)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "auto"])
def test_a_bad_decoder_threads_value_is_refused_naming_the_key(bad):
    with pytest.raises(ValueError, match="data.decoder_threads"):
        UCF101DataModule(root="unused", decoder_threads=bad)
    with pytest.raises(ValueError, match="data.decoder_threads"):
        loader_worker_init(bad)
