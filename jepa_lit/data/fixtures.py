"""Tiny, format-exact copies of each dataset's official layout, with real encoded files and a few broken ones.

For the tests, and for users who want to try the pipeline before downloading anything:

    python -m jepa_lit.data.datasets /tmp/jepa_data     # builds ucf101/ ssv2/ imagenet100/ diving48/
    jepa-lit data check --dataset ucf101 --root /tmp/jepa_data/ucf101

Videos are real encodes in each dataset's own container and codec (UCF-101: AVI / MPEG-4 part 2 at
25 fps; SSv2: WebM / VP9 at 12 fps, 48 px tall and of two widths; Diving-48: MP4 / H.264 at 30 fps),
64x48 px and 10-40 frames; ImageNet-100 gets real JPEGs of two orientations. Frame t of a video has
red level 20 + 6 t, a bar moving right and a per-video blue level, so a decoded frame can be told
apart from its neighbours. Quirks kept: UCF-101's HandstandPushups folder holding
v_HandStandPushups_* files, the string class indices of SSv2's labels.json and its bracketed
templates. With broken=True each dataset also gets bad input: zero-byte, truncated and garbage
files, files listed but missing, and annotation entries with an unknown label; `BROKEN` in each
summary names them. Each maker is named in its dataset's record (jepa_lit.data.datasets), which
builds the whole tree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Union

import av
import numpy as np
from PIL import Image

PathLike = Union[str, os.PathLike]


def frame_pattern(t: int, width: int = 64, height: int = 48, tag: int = 0) -> np.ndarray:
    """Frame t of a fixture video: uint8 [H, W, 3] (red = 20 + 6 t, a moving bar, blue = tag)."""
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0] = min(20 + 6 * t, 255)
    x = (4 * t) % max(width - 8, 1)
    frame[:, x : x + 8, 1] = 230
    frame[..., 2] = (40 * tag + 3 * np.arange(width)[None, :]) % 256
    return frame


_CODECS = {  # container suffix -> (encoder, encoder options)
    ".avi": ("mpeg4", {}),
    ".webm": ("libvpx-vp9", {"deadline": "realtime", "cpu-used": "8"}),
    ".mp4": ("libx264", {"preset": "ultrafast"}),
}


def write_video(
    path: PathLike, num_frames: int, fps: int = 25, width: int = 64, height: int = 48, tag: int = 0, gop: int = 8
) -> Path:
    """Encode `num_frames` pattern frames to `path`; the codec follows the suffix (.avi, .webm, .mp4).

    A short GOP (keyframe every `gop` frames) makes clip reads actually seek.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    codec, options = _CODECS[path.suffix]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.gop_size = gop
        stream.bit_rate = 1_000_000  # enough that a tiny frame keeps its red level (its index)
        stream.options = dict(options)
        for t in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frame_pattern(t, width, height, tag), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_jpeg(path: PathLike, width: int = 64, height: int = 48, tag: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frame_pattern(tag, width, height, tag)).save(path, "JPEG", quality=90)
    return path


def _truncate(path: Path, fraction: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def _garbage(path: Path, size: int = 2000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())


def _summary(root: Path, train: int, test: int, bad_train: int, bad_test: int, num_classes: int, bad: dict) -> dict:
    """`train` / `test`: good samples; `*_records`: what the index yields (good + bad files listed
    with a known label); `bad`: broken entry -> kind."""
    return {
        "root": str(root),
        "train": train,
        "test": test,
        "train_records": train + bad_train,
        "test_records": test + bad_test,
        "num_classes": num_classes,
        "bad": bad,
    }


# --- UCF-101 ------------------------------------------------------------------------------------
UCF_CLASSES = {1: "ApplyEyeMakeup", 37: "HandstandPushups", 101: "YoYo"}  # real classInd indices


def _ucf_file(cls: str, group: int) -> str:
    name = "HandStandPushups" if cls == "HandstandPushups" else cls  # the dataset's own quirk
    return f"{cls}/v_{name}_g{group:02d}_c01.avi"


def make_ucf101(root: PathLike, broken: bool = True) -> dict:
    """UCF-101 layout: UCF-101/<Class>/*.avi + ucfTrainTestlist/ (split 1; train groups 8-9, test group 1)."""
    root = Path(root)
    lists = root / "ucfTrainTestlist"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "classInd.txt").write_text("".join(f"{i} {c}\n" for i, c in UCF_CLASSES.items()))
    train, test = [], []
    for k, (idx, cls) in enumerate(UCF_CLASSES.items()):
        for j, group in enumerate((8, 9)):
            rel = _ucf_file(cls, group)
            write_video(root / "UCF-101" / rel, 24 + 8 * j + 4 * k, fps=25, tag=k * 2 + j)
            train.append(f"{rel} {idx}")
        rel = _ucf_file(cls, 1)
        write_video(root / "UCF-101" / rel, 40, fps=25, tag=k + 10)
        test.append(rel)
    bad = {}
    if broken:
        zero, trunc, missing = _ucf_file("YoYo", 10), _ucf_file("ApplyEyeMakeup", 10), _ucf_file("HandstandPushups", 10)
        (root / "UCF-101" / zero).write_bytes(b"")
        _truncate(write_video(root / "UCF-101" / trunc, 30))
        train += [f"{zero} 101", f"{trunc} 1", f"{missing} 37"]
        # the truncated AVI still opens but decodes 2 of the 15 frames it announces (duration x fps; its
        # header says 30): a bad sample (skipped in training, dropped in evaluation), and listed by data check
        bad = {f"UCF-101/{zero}": "zero-byte", f"UCF-101/{trunc}": "truncated", f"UCF-101/{missing}": "missing"}
    (lists / "trainlist01.txt").write_text("\r\n".join(train) + "\r\n")  # the official files use CRLF
    (lists / "testlist01.txt").write_text("\r\n".join(test) + "\r\n")
    return _summary(root, train=6, test=3, bad_train=3 if broken else 0, bad_test=0, num_classes=101, bad=bad)


# --- Something-Something V2 ---------------------------------------------------------------------
SSV2_TEMPLATES = {  # bracket-free template -> class index (strings, as in labels.json)
    "Approaching something with your camera": "0",
    "Holding something next to something": "60",
    "Putting something on a surface": "120",
    "Pushing something from left to right": "173",
}


def _bracketed(template: str) -> str:
    return template.replace("something", "[something]")


def make_ssv2(root: PathLike, broken: bool = True) -> dict:
    """SSv2 layout: labels/{labels,train,validation}.json + 20bn-something-something-v2/<id>.webm."""
    root = Path(root)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    videos = root / "20bn-something-something-v2"
    templates = list(SSV2_TEMPLATES)
    train, val = [], []
    for n in range(6):  # ids 1..6 train, one only 10 frames long (shorter than a 16-frame clip)
        vid = str(n + 1)
        write_video(videos / f"{vid}.webm", 10 if n == 2 else 20 + 3 * n, fps=12, width=64 if n % 2 else 86, tag=n)
        train.append(
            {"id": vid, "label": "a thing", "template": _bracketed(templates[n % 4]), "placeholders": ["a thing"]}
        )
    for n in range(3):  # ids 101..103 validation
        vid = str(101 + n)
        write_video(videos / f"{vid}.webm", 30, fps=12, tag=n + 6)
        val.append(
            {"id": vid, "label": "a thing", "template": _bracketed(templates[(n + 1) % 4]), "placeholders": ["a thing"]}
        )
    bad = {}
    if broken:
        train.append(
            {"id": "7", "label": "gone", "template": _bracketed(templates[0]), "placeholders": ["gone"]}
        )  # missing
        train.append(
            {"id": "8", "label": "x", "template": "Juggling [something] unheard of", "placeholders": ["x"]}
        )  # unknown
        write_video(videos / "8.webm", 20, fps=12)
        _truncate(write_video(videos / "104.webm", 40, fps=12, tag=9), 0.5)
        val.append({"id": "104", "label": "cut", "template": _bracketed(templates[2]), "placeholders": ["cut"]})
        bad = {
            "20bn-something-something-v2/7.webm": "missing",
            "train.json[7]": "unknown template",
            "20bn-something-something-v2/104.webm": "truncated",
        }
    (root / "labels" / "labels.json").write_text(json.dumps(SSV2_TEMPLATES, indent=1))
    (root / "labels" / "train.json").write_text(json.dumps(train, indent=1))
    (root / "labels" / "validation.json").write_text(json.dumps(val, indent=1))
    (root / "labels" / "test.json").write_text(json.dumps([{"id": "201"}]))
    # the truncated 104.webm opens but decodes 23 of the 40 frames its duration announces: the index
    # lists it (a record), loading it is a bad sample, and data check lists it
    return _summary(
        root, train=6, test=3, bad_train=1 if broken else 0, bad_test=1 if broken else 0, num_classes=174, bad=bad
    )


# --- ImageNet-100 -------------------------------------------------------------------------------
IN100_CLASSES = ("n02869837", "n01749939", "n02090622")  # labels 0, 1, 99 in the CMC list


def make_imagenet100(root: PathLike, broken: bool = True) -> dict:
    """ImageNet-100 layout: {train,val}/<wnid>/*.JPEG for 3 of the 100 classes (+1 class not in the list)."""
    root = Path(root)
    for k, wnid in enumerate(IN100_CLASSES):
        for i in range(3):
            w, h = (64, 48) if i % 2 == 0 else (48, 64)
            write_jpeg(root / "train" / wnid / f"{wnid}_{i + 1}.JPEG", w, h, tag=k * 3 + i)
        write_jpeg(root / "val" / wnid / f"ILSVRC2012_val_0000000{k + 1}.JPEG", tag=k)
    write_jpeg(root / "train" / "n15075141" / "n15075141_1.JPEG")  # an ImageNet-1k class not in the list
    bad = {}
    if broken:
        zero = root / "train" / IN100_CLASSES[0] / f"{IN100_CLASSES[0]}_9.JPEG"
        zero.write_bytes(b"")
        _garbage(root / "val" / IN100_CLASSES[1] / "ILSVRC2012_val_00000099.JPEG")
        bad = {
            f"train/{IN100_CLASSES[0]}/{zero.name}": "zero-byte",
            f"val/{IN100_CLASSES[1]}/ILSVRC2012_val_00000099.JPEG": "unreadable",
        }
    return _summary(
        root, train=9, test=3, bad_train=1 if broken else 0, bad_test=1 if broken else 0, num_classes=100, bad=bad
    )


# --- Diving-48 ----------------------------------------------------------------------------------
def diving48_vocab() -> list[list[str]]:
    """48 format-exact vocabulary entries [takeoff, somersault, twist, flight] (not the real list)."""
    flights = ("FREE", "PIKE", "TUCK")
    return [
        [takeoff, som, twist, flights[(a + b + c) % 3]]
        for a, takeoff in enumerate(("Back", "Forward", "Inward", "Reward"))
        for b, som in enumerate(("15som", "2som", "25som"))
        for c, twist in enumerate(("NoTwis", "05Twis", "15Twis", "25Twis"))
    ]


def make_diving48(root: PathLike, broken: bool = True) -> dict:
    """Diving-48 layout: Diving48_V2_{train,test}.json, Diving48_vocab.json, rgb/<vid_name>.mp4."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    train, test = [], []
    for n in range(6):
        vid, frames = f"_8Vy3dlHg2w_{n:05d}", 30 + 2 * n
        write_video(root / "rgb" / f"{vid}.mp4", frames, fps=30, tag=n)
        start, end = (5, 25) if n == 0 else (0, frames)  # one annotation with a trimmed range
        train.append({"vid_name": vid, "label": [0, 7, 47][n % 3], "start_frame": start, "end_frame": end})
    for n in range(3):
        vid = f"-mmq0PT-u8k_{n:05d}"
        write_video(root / "rgb" / f"{vid}.mp4", 36, fps=30, tag=n + 6)
        test.append({"vid_name": vid, "label": [3, 7, 47][n], "start_frame": 0, "end_frame": 36})
    bad = {}
    if broken:
        (root / "rgb" / "zeroBytes___00000.mp4").write_bytes(b"")
        train.append({"vid_name": "zeroBytes___00000", "label": 1, "start_frame": 0, "end_frame": 30})
        test.append({"vid_name": "notOnDisk__00000", "label": 2, "start_frame": 0, "end_frame": 30})
        test.append({"vid_name": "-mmq0PT-u8k_00000", "label": 48, "start_frame": 0, "end_frame": 36})  # unknown label
        _truncate(write_video(root / "rgb" / "truncated__00000.mp4", 30, fps=30), 0.6)
        train.append({"vid_name": "truncated__00000", "label": 5, "start_frame": 0, "end_frame": 30})
        bad = {
            "rgb/zeroBytes___00000.mp4": "zero-byte",
            "rgb/notOnDisk__00000.mp4": "missing",
            "Diving48_V2_test.json[4]": "unknown label",
            "rgb/truncated__00000.mp4": "truncated",
        }
    (root / "Diving48_V2_train.json").write_text(json.dumps(train))
    (root / "Diving48_V2_test.json").write_text(json.dumps(test))
    (root / "Diving48_vocab.json").write_text(json.dumps(diving48_vocab()))
    return _summary(
        root, train=6, test=3, bad_train=2 if broken else 0, bad_test=1 if broken else 0, num_classes=48, bad=bad
    )
