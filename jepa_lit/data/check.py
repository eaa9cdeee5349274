"""`jepa-lit data check --dataset NAME --root DIR`: walk a dataset before training.

Prints, per split, how many entries the annotations list, how many files are usable and how many
are bad, against the official sizes, then every bad file (or annotation entry) with the reason:
missing, zero-byte, cannot be opened, truncated (clearly fewer frames than the header or duration
announces), not decodable, unreadable image, unknown label. By default each video is opened,
demuxed (cheap, no decoding) and its first and last frames decoded; --full-decode decodes every
frame. Exit status 0 when nothing is bad, 1 otherwise, 2 for a missing or wrongly laid out root.
While it runs, a line on stderr every --progress-every seconds says how far it is: ``ucf101 train:
2,000/9,537 files, 41.3 files/s, ETA 3m02s``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, TextIO

import av

from jepa_lit.data.datasets import DATASETS, IndexOptions
from jepa_lit.data.decode import (
    BadInputError,
    announced_frame_count,
    clearly_truncated,
    error_reason,
    decode_frames,
    demux_frame_count,
    open_video,
)
from jepa_lit.data.mixed import SOURCES
from jepa_lit.data.clip_dataset import read_image
from jepa_lit.data.records import IMAGE, IndexProblem, LayoutError, Record, resolve_dataset_root
from jepa_lit.hints import format_duration, nearest

MIXED_SOURCES = SOURCES
MAX_SAME_REASON = 5  # entries printed per (split, reason); the rest are counted


def check_video(path: str, full_decode: bool = False) -> Optional[str]:
    """None when the video is usable, else the reason it is not (or why it is suspect)."""
    try:
        container = open_video(path, "NONE")
    except BadInputError as e:
        return e.reason
    try:
        stream = container.streams.video[0]
        announced = announced_frame_count(container)  # what training compares with, too
        try:
            packets = demux_frame_count(container)
        except av.FFmpegError as e:
            return f"corrupt container, demuxing failed: {error_reason(e)}"
        if packets == 0:
            return "no video frames"
        try:
            if full_decode:
                container.seek(0, stream=stream, backward=True)
                decoded = sum(1 for _ in container.decode(stream))
            else:
                clip = decode_frames(container, [0, packets - 1])
                decoded = packets if clip.num_frames_seen is None else clip.num_frames_seen
        except (av.FFmpegError, BadInputError) as e:
            return f"not decodable ({getattr(e, 'reason', e)})"
        if decoded < packets - 1:
            return f"decodes only {decoded} of its {packets} frames"
        if clearly_truncated(packets, announced):
            return f"holds {packets} frames, it announces {announced} (truncated, or a wrong header)"
        return None
    finally:
        container.close()


def check_record(record: Record, full_decode: bool = False) -> Optional[str]:
    if record.modality == IMAGE:
        try:
            read_image(record.path)
        except BadInputError as e:
            return e.reason
        return None
    return check_video(record.path, full_decode)


class Progress:
    """``<label>: n/N files, r files/s, ETA t`` lines, at most one every ``every`` seconds (0: every file),
    and a last one at N when any was printed."""

    def __init__(self, label: str, total: int, every: float = 10.0, out: Optional[TextIO] = None):
        self.label, self.total, self.every, self.out = label, total, every, out or sys.stderr
        self.start = self.last = time.perf_counter()
        self.printed = False

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if now - self.last < self.every and not (done == self.total and self.printed):
            return
        self.last, self.printed = now, True
        rate = done / max(now - self.start, 1e-9)
        eta = format_duration((self.total - done) / rate) if rate > 0 else "?"
        print(f"  {self.label}: {done:,}/{self.total:,} files, {rate:.1f} files/s, ETA {eta}",
              file=self.out, flush=True)


@dataclass
class SplitReport:
    split: str
    listed: int = 0
    ok: int = 0
    official: Optional[int] = None
    bad: list[tuple[str, str]] = field(default_factory=list)  # (file or entry, reason)
    problems: list[IndexProblem] = field(default_factory=list)


@dataclass
class CheckReport:
    dataset: str
    root: str
    splits: list[SplitReport]

    @property
    def num_bad(self) -> int:
        return sum(len(s.bad) + len(s.problems) for s in self.splits)


def index_split(dataset: str, root: str, split: str, ucf101_split: int = 1, video_ext: str = "webm"):
    """(records, problems, official size) of one split of a dataset."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {tuple(DATASETS)}")
    spec, options = DATASETS[dataset], IndexOptions(ucf101_split, video_ext)
    return (*spec.index(root, split, options), spec.official_size(split, options))


def _rel(path: str, root: str) -> str:
    try:
        return os.path.relpath(path, root)
    except ValueError:
        return path


def run_check(
    dataset: str,
    root: str,
    ucf101_split: int = 1,
    video_ext: str = "webm",
    full_decode: bool = False,
    jobs: Optional[int] = None,
    out: Optional[TextIO] = None,
    progress_every: float = 10.0,
    progress_out: Optional[TextIO] = None,
) -> CheckReport:
    """Walk both splits of `dataset` under `root`, print the report to `out` and return it; progress
    lines (counts, rate, ETA) go to `progress_out` (stderr) every `progress_every` seconds.

    Raises LayoutError (its message shows the expected tree) for a missing or wrongly laid out root.
    """
    splits = []
    jobs = jobs or min(8, os.cpu_count() or 1)
    root = resolve_dataset_root(root, dataset, DATASETS[dataset].datamodule.layout_markers)
    for split in ("train", "test"):
        records, problems, official = index_split(dataset, root, split, ucf101_split, video_ext)
        # an index whose problems are missing class folders (ImageNet-100) lists no entry for them
        listed = len(records) + (len(problems) if DATASETS[dataset].problems_are_entries else 0)
        report = SplitReport(split, listed=listed, official=official, problems=problems)
        progress = Progress(f"{dataset} {split}", len(records), progress_every, progress_out)
        with ThreadPoolExecutor(jobs) as pool:
            reasons = pool.map(lambda r: check_record(r, full_decode), records)
            for n, (record, reason) in enumerate(zip(records, reasons), 1):
                if reason is None:
                    report.ok += 1
                else:
                    report.bad.append((_rel(record.path, root), reason))
                progress.update(n)
        splits.append(report)
    result = CheckReport(dataset, root, splits)
    print_report(result, out)
    return result


def print_report(report: CheckReport, out: Optional[TextIO] = None) -> None:
    out = out or sys.stdout
    print(f"{report.dataset} at {report.root}", file=out)
    print(f"  {'split':6s} {'listed':>9s} {'usable':>9s} {'bad':>7s} {'official':>9s}", file=out)
    for s in report.splits:
        official = f"{s.official:,}" if s.official else "-"
        note = "" if s.official is None or s.listed == s.official else "   (differs from the official size)"
        print(
            f"  {s.split:6s} {s.listed:>9,} {s.ok:>9,} {len(s.bad) + len(s.problems):>7,} {official:>9s}{note}",
            file=out,
        )
    rows = [(s.split, p.where, p.reason) for s in report.splits for p in s.problems]
    rows += [(s.split, where, reason) for s in report.splits for where, reason in s.bad]
    if rows:
        print(f"bad entries ({len(rows)}):", file=out)
        shown: dict[tuple[str, str], int] = {}  # (split, reason) -> entries printed
        for split, where, reason in rows:
            shown[split, reason] = shown.get((split, reason), 0) + 1
            if shown[split, reason] <= MAX_SAME_REASON:
                print(f"  {split:6s} {where}: {reason}", file=out)
        for (split, reason), n in shown.items():
            if n > MAX_SAME_REASON:
                print(f"  {split:6s} ... and {n - MAX_SAME_REASON} more: {reason}", file=out)
    else:
        print("no bad entries", file=out)


def dataset_name(value: str) -> str:
    """--dataset's type: one of the datasets or "mixed", else an error naming the nearest one."""
    names = (*DATASETS, "mixed")
    if value in names:
        return value
    near = nearest(value, names, cutoff=0.4)
    raise argparse.ArgumentTypeError(f"unknown dataset {value!r}; expected one of {', '.join(names)}"
                                     + (f"; did you mean {near!r}?" if near else ""))


def main(argv: Optional[Sequence[str]] = None) -> int:
    """CLI entry: `[check] --dataset NAME --root DIR [...]`; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check":
        argv = argv[1:]
    parser = argparse.ArgumentParser(prog="jepa-lit data check", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset",
        required=True,
        type=dataset_name,
        metavar="{" + ",".join((*DATASETS, "mixed")) + "}",
        help="mixed: ucf101/, ssv2/ and imagenet100/ under --root",
    )
    parser.add_argument("--root", required=True, help="the dataset folder in its official layout")
    parser.add_argument("--split", type=int, default=1, choices=(1, 2, 3), help="UCF-101 split (default 1)")
    parser.add_argument("--video-ext", default="webm", help="SSv2 video extension (default webm)")
    parser.add_argument("--full-decode", action="store_true", help="decode every frame of every video (slow)")
    parser.add_argument("--jobs", type=int, default=None, help="files checked in parallel (default: cores, at most 8)")
    parser.add_argument("--progress-every", type=float, default=10.0, metavar="SECONDS",
                        help="print 'n/N files, rate, ETA' on stderr this often (default 10; 0: after every file)")
    args = parser.parse_args(argv)
    names = MIXED_SOURCES if args.dataset == "mixed" else (args.dataset,)
    status = 0
    for name in names:
        root = str(Path(args.root) / name) if args.dataset == "mixed" else args.root
        try:
            report = run_check(name, root, args.split, args.video_ext, args.full_decode, args.jobs,
                               progress_every=args.progress_every)
        except LayoutError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 2
            continue
        status = max(status, 1 if report.num_bad else 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
