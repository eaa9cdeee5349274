"""Benchmark (not a test): decoded + augmented clips per second in one worker, 16 frames at 224 px.

Compares, on the same longer videos and the same clip indices (16 frames at step 2, the mixed
regime), then the same random-resized-crop + flip + normalisation:
  seek        jepa_lit's reader: seek to the keyframe before the clip, decode only up to its end
              (once per decoder thread type given with --thread-types)
  decode-all  decode every frame of the video, then take the clip's frames
  decord2     decord.VideoReader(...).get_batch(indices), if `decord` is importable
              (pip install decord2; a benchmark-only dependency, skipped with a note otherwise)

The videos are generated: a camera pan over a textured scene with moving blobs and sensor noise,
encoded as H.264/MP4, VP9/WebM and MPEG-4/AVI. Run from the repository root:

    NO_ALBUMENTATIONS_UPDATE=1 python bench/bench_data.py                  # 640x480, 300 frames
    NO_ALBUMENTATIONS_UPDATE=1 python bench/bench_data.py --quick          # smaller, a few seconds

A JSON is written (default bench/results/data.json) with every method's figures, the settings, the time
of the measurement and, as "pipeline", the clips/s of jepa_lit's reader with the datasets' default decoder
thread type: the figure bench/bench_step.py shows next to the step time.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from jepa_lit.data.clip_sampling import RandomClipSampler  # noqa: E402
from jepa_lit.data.decode import DEFAULT_THREAD_TYPE, count_frames, decode_all, decode_frames, open_video  # noqa: E402
from jepa_lit.data.transforms import VideoTrainTransform  # noqa: E402

CODECS = {
    "mp4": ("libx264", {"preset": "veryfast"}),
    "webm": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}),
    "avi": ("mpeg4", {}),
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
        stream.bit_rate = width * height * 4  # about 1.2 Mbit/s at 640x480, 25 fps
        stream.options = dict(options)
        for t in range(frames):
            frame = scene[:, 2 * t : 2 * t + width].copy()
            for k in range(3):
                cx, cy = int((t * (3 + k) + 80 * k) % width), int(height / 2 + height / 3 * np.sin(t / (10 + k)))
                cv2.circle(frame, (cx, cy), 20 + 10 * k, (255 - 80 * k, 60 * k, 120), -1)
            frame = np.clip(frame.astype(np.int16) + rng.integers(-6, 7, frame.shape), 0, 255).astype(np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def clip_seek(path, indices, thread_type):
    container = open_video(path, thread_type)
    try:
        count_frames(container)  # as the dataset does (header, or demux)
        return decode_frames(container, indices).frames
    finally:
        container.close()


def clip_decode_all(path, indices, thread_type):
    frames = decode_all(path, thread_type)
    return frames[np.minimum(indices, len(frames) - 1)]


def clip_decord(path, indices, _):
    import decord

    reader = decord.VideoReader(str(path), num_threads=1)
    len(reader)
    return reader.get_batch(list(indices)).asnumpy()


def bench(method, path, clips, transform, thread_type) -> list[float]:
    times = []
    for k, indices in enumerate(clips):
        start = time.perf_counter()
        frames = method(path, indices, thread_type)
        video = transform(frames, seed=k)
        times.append(time.perf_counter() - start)
        assert video.shape[1] == len(indices)
    return times


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--frames", type=int, default=300, help="frames per video")
    parser.add_argument("--gop", type=int, default=32, help="keyframe interval of the generated videos")
    parser.add_argument("--clips", type=int, default=12, help="clips per video and method")
    parser.add_argument("--formats", default="mp4,webm,avi")
    parser.add_argument("--thread-types", default="AUTO,SLICE", help="PyAV decoder thread types to compare")
    parser.add_argument("--quick", action="store_true", help="320x240, 150 frames, 6 clips")
    parser.add_argument("--dir", default=None, help="where to write the videos (default: a temporary folder)")
    parser.add_argument("--json", default="bench/results/data.json", help="where to write the results")
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.height, args.frames, args.clips = 320, 240, 150, 6

    torch.set_num_threads(1)  # one DataLoader worker
    cv2.setNumThreads(1)
    transform = VideoTrainTransform(224)
    sampler = RandomClipSampler(16, frame_step=2)
    methods = [(f"seek {t}", clip_seek, t) for t in args.thread_types.split(",")]
    methods.append(("decode-all", clip_decode_all, args.thread_types.split(",")[0]))
    try:
        importlib.import_module("decord")
        methods.append(("decord2", clip_decord, None))
    except ImportError:
        print("note: decord is not importable (pip install decord2); skipping the decord2 comparison")

    load_average = os.getloadavg()[0]
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(
            f"videos: {args.width}x{args.height}, {args.frames} frames at 25 fps, keyframe every {args.gop}; "
            f"clips: 16 frames at step 2 -> 224 px crop; {args.clips} clips per video; 1 worker "
            f"(torch and OpenCV 1 thread)"
        )
        results: dict[str, list[float]] = {name: [] for name, _, _ in methods}
        for fmt in args.formats.split(","):
            path = make_video(folder / f"bench.{fmt}", args.frames, args.width, args.height, args.gop, seed=0)
            rng = np.random.default_rng(0)
            clips = [sampler(args.frames, rng)[0] for _ in range(args.clips)]
            row = []
            for name, method, thread_type in methods:
                method(path, clips[0], thread_type)  # warm up (imports, caches)
                times = bench(method, path, clips, transform, thread_type)
                results[name] += times
                row.append(f"{name} {1000 * statistics.median(times):6.1f} ms")
            size = path.stat().st_size / 1e6
            print(f"  {fmt:5s} ({size:4.1f} MB): " + " | ".join(row))
        print("median ms per clip over all videos, clips/s per worker (1 / mean), speed-up vs decode-all:")
        ref = statistics.median(results["decode-all"])
        for name, times in results.items():
            med = statistics.median(times)
            print(f"  {name:12s} {1000 * med:7.1f} ms   {len(times) / sum(times):6.1f} clips/s   x{ref / med:4.1f}")

    methods_json = {
        name: {"median_ms": 1000 * statistics.median(times), "clips_per_s": len(times) / sum(times), "clips": len(times)}
        for name, times in results.items()
    }
    pipeline = f"seek {DEFAULT_THREAD_TYPE}" if f"seek {DEFAULT_THREAD_TYPE}" in results else methods[0][0]
    doc = {
        "measured_at": started,
        "load_average_1m": load_average,
        "quick": args.quick,
        "video": {"width": args.width, "height": args.height, "frames": args.frames, "fps": 25, "gop": args.gop,
                  "formats": args.formats},
        "clip": {"frames": 16, "frame_step": 2},
        "crop_px": 224,
        "clips_per_video": args.clips,
        "workers": 1,
        "threads": {"torch": 1, "opencv": 1},
        "methods": methods_json,
        "pipeline": {"method": pipeline, "clips_per_s": methods_json[pipeline]["clips_per_s"],
                     "what": "jepa_lit's reader (seek) with the datasets' default decoder thread type, "
                             "+ the training transform; clips/s of one worker over all formats (1 / mean)"},
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2))
    print(f"data pipeline ({pipeline}): {doc['pipeline']['clips_per_s']:.1f} clips/s per worker; written {args.json}")


if __name__ == "__main__":
    main()
