"""Benchmark (not a test): what ``data.uint8_batches`` changes at the study's batch, 8 clips x 3 x 16 x 224 px.

For the float32 path (the transform normalises in the worker) and the uint8 path (the transform stops
after crop / resize / flip; the DataModule normalises after the copy to the device), on the same clips
and augmentation seeds:
  bytes       of the collated batch["video"] that the loader hands over and that is copied to the device
  transform   seconds per clip of the train transform in one worker (random resized crop + flip [+ norm])
  collate     seconds per batch of default_collate (stacking the 8 clips)
  normalise   seconds per batch of normalize_on_device, on this machine's CPU (on a GPU it is one small
              elementwise kernel; this script does not measure a GPU)
and checks that the uint8 batch, normalised, equals the float32 batch (torch.equal). Passes alternate
between the two paths. Run from the repository root:

    NO_ALBUMENTATIONS_UPDATE=1 OMP_NUM_THREADS=1 python bench/bench_batch_bytes.py [--passes 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import default_collate  # noqa: E402

from jepa_lit.data.transforms import VideoTrainTransform, normalize_on_device  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--crop", type=int, default=224)
    parser.add_argument("--source", default="320x240", help="WxH of the decoded frames (UCF-101's size)")
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    width, height = map(int, args.source.split("x"))
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (args.frames, height, width, 3), dtype=np.uint8) for _ in range(args.batch)]
    paths = {"float32": VideoTrainTransform(args.crop), "uint8": VideoTrainTransform(args.crop, normalize=False)}
    times = {name: {"transform": [], "collate": [], "normalise": []} for name in paths}
    batches = {}
    for _ in range(args.passes):
        for name, transform in paths.items():  # interleaved: a load change hits both paths alike
            samples, seconds = timed(lambda: [{"video": transform(c, seed=k)} for k, c in enumerate(clips)])
            times[name]["transform"].append(seconds / args.batch)
            batch, seconds = timed(lambda: default_collate(samples))
            times[name]["collate"].append(seconds)
            if name == "uint8":
                normalised, seconds = timed(lambda: normalize_on_device(batch["video"]))
                times[name]["normalise"].append(seconds)
                batch["normalised"] = normalised
            batches[name] = batch
    assert torch.equal(batches["uint8"]["normalised"], batches["float32"]["video"]), "uint8 path differs"
    shape = tuple(batches["float32"]["video"].shape)
    print(f"batch {shape}, {args.passes} interleaved passes, median; torch threads {torch.get_num_threads()}")
    for name in paths:
        video = batches[name]["video"]
        t = {k: statistics.median(v) for k, v in times[name].items() if v}
        line = (f"  {name:8s} {video.dtype}: {video.nbytes:>11,d} bytes ({video.nbytes / 2**20:6.1f} MiB)  "
                f"transform {t['transform'] * 1e3:6.1f} ms/clip  collate {t['collate'] * 1e3:6.1f} ms/batch")
        if "normalise" in t:
            line += f"  normalise (CPU) {t['normalise'] * 1e3:6.1f} ms/batch"
        print(line)
    ratio = batches["float32"]["video"].nbytes / batches["uint8"]["video"].nbytes
    print(f"  float32 / uint8 bytes: {ratio:.1f}x; normalised uint8 batch == float32 batch: True")


if __name__ == "__main__":
    main()
