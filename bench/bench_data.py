"""Benchmark (not a test): decoded + augmented clips per second in one loader worker, at the study's settings,
for each video decoder, and the loader workers a GPU needs at a given step time.

Settings (the clips of the study's configs, 224 px crops):
  train, frame step 1   16 frames at step 1 (the ucf101 regime), random resized crop + flip, uint8 out
  train, frame step 2   16 frames at step 2 (the mixed regime), the same transform
  eval, 16 uniform      16 frames spread over the whole video, resize + centre crop, normalised float32
Decoders (each opens the file, finds its length, draws the clip's indices and decodes them, as a dataset does):
  pyav                  jepa_lit's reader (jepa_lit.data.decode), 1 FFmpeg thread: the loader workers' default
                        (data.decoder_threads: 1, jepa_lit.data.worker_threads)
  pyav-ffmpeg-threads   the same with FFmpeg's own thread count (one per core): what workers used before; on a
                        machine where the workers fill the cores those threads only compete with each other
  torchcodec            torchcodec.decoders.VideoDecoder(num_ffmpeg_threads=1, seek_mode="approximate",
                        NHWC).get_frames_at(indices), when it loads here (it needs FFmpeg's shared libraries and a
                        torch build its wheel matches; docs/performance.md shows how it was run on a CPU torch with
                        PyAV's own FFmpeg); otherwise the reason is printed and written to the JSON

The decoders are interleaved clip by clip (every round times each decoder on the same video and clip, in a
rotating order), so that a machine loaded by other jobs slows them alike: the ratios are what to read.
Torch and OpenCV run 1 thread, as in a loader worker. "decoding" is the share of a clip's time spent in the
decoder (opening the file included), the rest is the transform.

The videos are generated (a camera pan over a textured scene with moving blobs and sensor noise), by default
at UCF-101's size: 320x240, 25 fps, 175 frames (7 s), as MPEG-4 part 2 / AVI (UCF-101's codec), VP9 / WebM
(SSv2's) and H.264 / MP4. Run from the repository root:

    python bench/bench_data.py                          # about a minute on 2 loaded cores
    python bench/bench_data.py --step-ms 20 --batch 8   # workers per GPU for a 20 ms step of 8 clips
    python bench/bench_data.py --quick                  # fewer clips, a few seconds

A JSON is written (default bench/results/data.json) with every decoder's figures per setting, the settings,
the time of the measurement and, as "pipeline", the clips/s of the default decoder (pyav) at frame step 2:
the figure bench/bench_step.py shows next to the step time.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Optional

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from jepa_lit.data.clip_sampling import RandomClipSampler, UniformClipSampler  # noqa: E402
from jepa_lit.data.decode import decode_frames, estimated_frame_count, open_video, set_decoder_threads  # noqa: E402
from jepa_lit.data.transforms import VideoEvalTransform, VideoTrainTransform  # noqa: E402
from jepa_lit.data.worker_threads import configure_worker_threads  # noqa: E402

CODECS = {
    "avi": ("mpeg4", {}),
    "webm": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}),
    "mp4": ("libx264", {"preset": "veryfast"}),
}
CROP_PX = 224
NUM_FRAMES = 16
PIPELINE = ("pyav", "train, frame step 2")  # the figure bench_step.py reads: the default decoder, mixed regime


def settings() -> dict[str, tuple[Callable, Callable]]:
    """setting name -> (clip sampler, transform), as the study's DataModules build them."""
    return {
        "train, frame step 1": (RandomClipSampler(NUM_FRAMES, 1), VideoTrainTransform(CROP_PX, normalize=False)),
        "train, frame step 2": (RandomClipSampler(NUM_FRAMES, 2), VideoTrainTransform(CROP_PX, normalize=False)),
        "eval, 16 uniform": (UniformClipSampler(NUM_FRAMES), VideoEvalTransform(CROP_PX)),
    }


def make_video(path: Path, frames: int, width: int, height: int, gop: int, seed: int) -> Path:
    """A camera pan over a smooth random texture, with moving blobs and per-frame noise."""
    rng = np.random.default_rng(seed)
    scene = cv2.resize(
        rng.integers(0, 256, (height // 8, (width + frames * 2) // 8, 3), dtype=np.uint8),
        (width + frames * 2, height),
        interpolation=cv2.INTER_CUBIC,
    )
    codec, options = CODECS[path.suffix[1:]]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.bit_rate = width * height * 4  # about 0.3 Mbit/s at 320x240, 25 fps
        stream.options = dict(options)
        for t in range(frames):
            frame = scene[:, 2 * t : 2 * t + width].copy()
            for k in range(3):
                cx, cy = int((t * (3 + k) + 80 * k) % width), int(height / 2 + height / 3 * np.sin(t / (10 + k)))
                cv2.circle(frame, (cx, cy), max(4, height // 12) + 5 * k, (255 - 80 * k, 60 * k, 120), -1)
            frame = np.clip(frame.astype(np.int16) + rng.integers(-6, 7, frame.shape), 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


# ----- the decoders: path, sampler, rng -> uint8 [T, H, W, 3] ---------------------------------------------
def pyav_clip(path: Path, sampler, rng, threads: int) -> np.ndarray:
    """As ClipDataset does: open, the announced length (else a demux), the sampler's window, decode it."""
    set_decoder_threads(threads)
    container = open_video(path)
    try:
        indices = sampler(estimated_frame_count(container), rng)[0]
        return decode_frames(container, indices).frames
    finally:
        container.close()


def torchcodec_clip(path: Path, sampler, rng, threads: int) -> np.ndarray:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), dimension_order="NHWC", num_ffmpeg_threads=threads, seek_mode="approximate")
    indices = sampler(decoder.metadata.num_frames, rng)[0]
    return decoder.get_frames_at([int(i) for i in indices]).data.numpy()


def torchcodec_unavailable() -> Optional[str]:
    """None when torchcodec's video decoder loads here, else why not (its error's first line)."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads its FFmpeg and torch libraries)
    except Exception as error:  # ImportError, OSError (a library not found), RuntimeError (no FFmpeg)
        return f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"[:300]
    return None


DECODERS: dict[str, tuple[Callable, int]] = {  # name -> (clip function, FFmpeg threads)
    "pyav": (pyav_clip, 1),
    "pyav-ffmpeg-threads": (pyav_clip, 0),
    "torchcodec": (torchcodec_clip, 1),
}


# ----- arithmetic ------------------------------------------------------------------------------------------
def clips_per_s(times: list[float]) -> float:
    """A worker's sustained rate: clips over the total time (1 / mean), not 1 / median."""
    return len(times) / sum(times)


def workers_needed(clips_per_s_per_worker: float, step_ms: float, batch: int) -> int:
    """Loader workers per GPU that keep up with a step of `batch` clips every `step_ms` milliseconds, each
    worker on a core of its own at the measured rate."""
    return math.ceil(batch / (step_ms / 1000) / clips_per_s_per_worker)


def rotated(items: list, k: int) -> list:
    k %= len(items)
    return items[k:] + items[:k]


# ----- measurement -----------------------------------------------------------------------------------------
def measure(videos: dict[str, Path], decoders: list[str], rounds: int) -> tuple[dict, dict]:
    """times[decoder][setting]: seconds per clip (decode + transform), interleaved clip by clip; and the same
    for the decoding alone."""
    pipelines = settings()
    times = {d: {s: [] for s in pipelines} for d in decoders}
    decode_times = {d: {s: [] for s in pipelines} for d in decoders}
    for d in decoders:  # warm up: imports, FFmpeg's first open, albumentations' first call
        for s, (sampler, transform) in pipelines.items():
            fn, threads = DECODERS[d]
            transform(fn(next(iter(videos.values())), sampler, np.random.default_rng(0), threads), 0)
    for r in range(rounds):
        for v, path in enumerate(videos.values()):
            for s_index, (s, (sampler, transform)) in enumerate(pipelines.items()):
                for d in rotated(decoders, r + v + s_index):
                    fn, threads = DECODERS[d]
                    rng = np.random.default_rng([r, v, s_index])  # the same clip for every decoder
                    start = time.perf_counter()
                    frames = fn(path, sampler, rng, threads)
                    decoded = time.perf_counter()
                    video = transform(frames, r)
                    times[d][s].append(time.perf_counter() - start)
                    decode_times[d][s].append(decoded - start)
                    assert video.shape[1] == NUM_FRAMES, (d, s, tuple(video.shape))
    set_decoder_threads(None)
    return times, decode_times


def summarise(times: dict[str, dict[str, list[float]]], step_ms: float, batch: int,
              decode_times: Optional[dict] = None) -> dict:
    out = {}
    for d, per_setting in times.items():
        out[d] = {}
        for s, ts in per_setting.items():
            rate = clips_per_s(ts)
            out[d][s] = {"clips_per_s": rate, "median_ms": 1000 * statistics.median(ts), "clips": len(ts),
                         "workers_per_gpu": workers_needed(rate, step_ms, batch)}
            if decode_times:
                out[d][s]["decode_share"] = sum(decode_times[d][s]) / sum(ts)  # of decode + transform
            if d != "pyav" and "pyav" in times:
                out[d][s]["speed_vs_pyav"] = rate / clips_per_s(times["pyav"][s])
                if decode_times:  # the decoding alone, without the transform both share
                    out[d][s]["decode_speed_vs_pyav"] = sum(decode_times["pyav"][s]) / sum(decode_times[d][s])
    return out


def print_table(doc: dict) -> None:
    print(f"clips/s per worker (1 / mean of decode + transform; torch and OpenCV 1 thread), and loader workers per GPU "
          f"for a {doc['step_ms']:g} ms step of {doc['batch']} clips ({doc['needed_clips_per_s']:.0f} clips/s):")
    print(f"{'decoder':<21}{'setting':<22}{'median ms':>10}{'decoding':>9}{'clips/s':>9}{'vs pyav':>9}"
          f"{'workers/GPU':>13}")
    for d, per_setting in doc["decoders"].items():
        for s, r in per_setting.items():
            ratio = f"{r['speed_vs_pyav']:.2f}x" if "speed_vs_pyav" in r else "-"
            share = f"{r['decode_share']:.0%}" if "decode_share" in r else "-"
            print(f"{d:<21}{s:<22}{r['median_ms']:>10.1f}{share:>9}{r['clips_per_s']:>9.1f}{ratio:>9}"
                  f"{r['workers_per_gpu']:>13}")
    for d, reason in doc["unavailable"].items():
        print(f"{d:<21}not measured: {reason}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    parser.add_argument("--frames", type=int, default=175, help="frames per video (25 fps)")
    parser.add_argument("--gop", type=int, default=32, help="keyframe interval of the generated videos")
    parser.add_argument("--clips", type=int, default=8, help="rounds: clips per video, setting and decoder")
    parser.add_argument("--formats", default="avi,webm,mp4")
    parser.add_argument("--decoders", default="pyav,pyav-ffmpeg-threads,torchcodec",
                        help=f"comma-separated, of {', '.join(DECODERS)}")
    parser.add_argument("--step-ms", type=float, default=20.0,
                        help="the GPU's step time the workers must keep up with (ViT-B, 8 clips, H100 at ~40%% MFU: "
                             "~20)")
    parser.add_argument("--batch", type=int, default=8, help="clips per GPU per step (the study's: 8)")
    parser.add_argument("--quick", action="store_true", help="2 clips per video and setting, AVI and MP4 only")
    parser.add_argument("--dir", default=None, help="where to write the videos (default: a temporary folder)")
    parser.add_argument("--json", default="bench/results/data.json", help="where to write the results")
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.formats = 2, "avi,mp4"
    unknown = [d for d in args.decoders.split(",") if d not in DECODERS]
    if unknown or "pyav" not in args.decoders.split(","):
        parser.error(f"--decoders: {unknown or 'pyav is needed (the reference)'}; expected some of "
                     f"{list(DECODERS)}, pyav among them")
    if args.step_ms <= 0 or args.batch < 1 or args.clips < 1:
        parser.error("--step-ms must be > 0, --batch and --clips >= 1")
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    configure_worker_threads(1)  # as in a loader worker; the decoders set their own FFmpeg threads
    decoders = args.decoders.split(",")
    unavailable = {}
    if "torchcodec" in decoders and (reason := torchcodec_unavailable()):
        unavailable["torchcodec"] = reason
        decoders.remove("torchcodec")
    load_average = os.getloadavg()[0]
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    print(f"videos: {args.width}x{args.height}, {args.frames} frames at 25 fps, keyframe every {args.gop}, "
          f"{args.formats}; {args.clips} clips per video, setting and decoder, interleaved; load average "
          f"{load_average:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        videos = {fmt: make_video(folder / f"bench.{fmt}", args.frames, args.width, args.height, args.gop, seed=0)
                  for fmt in args.formats.split(",")}
        sizes = {fmt: path.stat().st_size for fmt, path in videos.items()}
        times, decode_times = measure(videos, decoders, args.clips)

    results = summarise(times, args.step_ms, args.batch, decode_times)
    pipeline = results[PIPELINE[0]][PIPELINE[1]]
    doc = {
        "measured_at": started,
        "load_average_1m": load_average,
        "cpu": cpu_name(),
        "quick": args.quick,
        "video": {"width": args.width, "height": args.height, "frames": args.frames, "fps": 25, "gop": args.gop,
                  "formats": args.formats, "bytes": sizes},
        "clip": {"frames": NUM_FRAMES},
        "crop_px": CROP_PX,
        "clips_per_video": args.clips,
        "workers": 1,
        "threads": {"torch": 1, "opencv": 1},
        "step_ms": args.step_ms,
        "batch": args.batch,
        "needed_clips_per_s": args.batch / (args.step_ms / 1000),
        "decoders": results,
        "unavailable": unavailable,
        "pipeline": {"method": f"{PIPELINE[0]}, {PIPELINE[1]}", "clips_per_s": pipeline["clips_per_s"],
                     "workers_per_gpu": pipeline["workers_per_gpu"],
                     "what": "jepa_lit's reader (PyAV, 1 FFmpeg thread, as in a loader worker) + the training "
                             "transform; clips/s of one worker over all formats (1 / mean)"},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2))
    print_table(doc)
    print(f"data pipeline ({doc['pipeline']['method']}): {pipeline['clips_per_s']:.1f} clips/s per worker, "
          f"{pipeline['workers_per_gpu']} workers per GPU at {args.step_ms:g} ms x {args.batch} clips "
          f"(each on a core of its own); written {args.json}")
    return doc


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} logical CPUs"
    except OSError:
        pass
    return f"{os.cpu_count()} logical CPUs"


if __name__ == "__main__":
    main()
