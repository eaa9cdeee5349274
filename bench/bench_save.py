"""What one checkpoint save costs: torch.save + SHA-256 + fsync of a state dict the size of the study's
ViT-B checkpoint (1.505 GB, docs/checkpoints.md), through the writer the runs use (jepa_lit.atomic.atomic_write
with its integrity record), and the parts alone: serialising to memory, hashing, writing + fsync.

    python bench/bench_save.py [--gigabytes 1.505] [--dir runs/bench_save] [--repeats 2]

Prints bytes/s per part and the seconds per save; docs/performance.md turns them into a share of a run.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import time
from pathlib import Path

import torch

from jepa_lit.atomic import atomic_write, remove_with_sidecar


def state_dict(gigabytes: float) -> dict[str, torch.Tensor]:
    """float32 tensors of ViT-B-like sizes (768 x 3072 MLP weights) adding up to ``gigabytes``."""
    values = int(gigabytes * 1e9 / 4)
    block = 768 * 3072
    state = {f"w{i}": torch.randn(block) for i in range(values // block)}
    state["rest"] = torch.randn(values - block * (values // block))
    return state


def timed(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.505)
    parser.add_argument("--dir", type=Path, default=Path("runs/bench_save"))
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    state = {"state_dict": state_dict(args.gigabytes)}
    args.dir.mkdir(parents=True, exist_ok=True)
    target = args.dir / "bench.ckpt"
    for repeat in range(args.repeats):
        buffer = io.BytesIO()
        serialise = timed(lambda: torch.save(state, buffer))
        data = buffer.getbuffer()
        size = data.nbytes
        hash_only = timed(lambda: hashlib.sha256(data).hexdigest())
        raw = args.dir / "raw.bin"

        def write_fsync():
            with open(raw, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())

        write = timed(write_fsync)
        raw.unlink()
        del data
        buffer.close()
        whole = timed(lambda: atomic_write(target, lambda f: torch.save(state, f), integrity=True))
        remove_with_sidecar(target)
        rate = lambda seconds: f"{size / seconds / 1e9:.2f} GB/s ({seconds:.2f} s)"  # noqa: E731
        print(f"pass {repeat}: {size / 1e9:.3f} GB  serialise {rate(serialise)}  sha256 {rate(hash_only)}  "
              f"write+fsync {rate(write)}  atomic save (all three) {rate(whole)}", flush=True)


if __name__ == "__main__":
    main()
