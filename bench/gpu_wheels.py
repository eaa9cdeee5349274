"""The wheels `make gpu-check` installs on a GPU machine without network: what jepa-lit needs that its image lacks.

Run on a machine that reaches the package index (`make gpu-wheels`). The packages are jepa-lit's
dependencies and theirs, walked from this environment's installed metadata (the versions our tests ran
with), less what the GPU image already has (GPU_IMAGE_HAS below: this workplace's CUDA image as read on
2026-11-17, with torch 2.11, Lightning, OpenCV, SciPy, TensorBoard, matplotlib; or the names in `--present`,
e.g. the output of `python3 -m pip list --format=freeze` there). Each is downloaded alone, as a binary wheel
for the GPU machine's Python and platform, without resolving dependencies here:

    pip download --only-binary=:all: --no-deps --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 ... --platform manylinux2014_x86_64 -d gpu-wheels NAME==VERSION ...

The folder must stay within 64 MiB (what travels to a lent GPU machine with the working tree); the script
fails when it does not. It writes gpu-wheels/wheels.txt (name==version per line) next to the wheels.

    python bench/gpu_wheels.py                      # gpu-wheels/, Python 3.12
    python bench/gpu_wheels.py --print              # the package list and the pip command only
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

MAX_BYTES = 64 * 2**20
# Never downloaded: the GPU machine's own torch (another version, a CUDA build) must stay as it is.
NEVER = {"torch", "triton"}
# The CUDA image's Python packages that jepa-lit's dependencies reach (read 2026-11-17; see the docstring).
GPU_IMAGE_HAS = {
    "absl-py", "aiohappyeyeballs", "aiohttp", "aiosignal", "attrs", "frozenlist", "idna", "multidict", "propcache",
    "yarl", "contourpy", "cycler", "einops", "filelock", "fonttools", "fsspec", "grpcio", "jinja2", "kiwisolver",
    "lightning", "lightning-utilities", "markdown", "markupsafe", "matplotlib", "mpmath", "networkx", "numpy",
    "opencv-python-headless", "packaging", "pillow", "protobuf", "pyparsing", "python-dateutil",
    "pytorch-lightning", "pyyaml", "scipy", "setuptools", "six", "sympy", "tensorboard", "tensorboard-data-server",
    "torch", "torchmetrics", "tqdm", "typing-extensions", "werkzeug", "pytest", "pluggy", "iniconfig",
}
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def dependency_versions(root: str = "jepa-lit", extras: tuple[str, ...] = ()) -> dict[str, str]:
    """name -> installed version of `root`'s runtime dependencies, transitively (extras as requested by each
    requirement, e.g. jsonargparse[signatures]); `root` itself left out. Missing distributions are skipped."""
    found: dict[str, str] = {}

    def walk(name: str, extras: tuple[str, ...]) -> None:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            return
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in (extras or ("",))):
                continue
            key = canonical(req.name)
            if key not in found:
                try:
                    found[key] = metadata.version(req.name)
                except metadata.PackageNotFoundError:
                    continue
                walk(req.name, tuple(req.extras))
            elif req.extras:
                walk(req.name, tuple(req.extras))  # a second path asks for an extra the first did not

    walk(root, extras)
    found.pop(canonical(root), None)
    return found


def missing_on_gpu(versions: dict[str, str], present: set[str]) -> dict[str, str]:
    """The dependencies the GPU machine lacks (and never torch)."""
    skip = {canonical(n) for n in present} | NEVER
    return {name: version for name, version in sorted(versions.items()) if name not in skip}


def download_command(packages: dict[str, str], dest: str, python_version: str, pip: list[str]) -> list[str]:
    command = [*pip, "download", "--only-binary=:all:", "--no-deps", "--python-version", python_version,
               "--implementation", "cp", "-d", dest]
    for platform in PLATFORMS:
        command += ["--platform", platform]
    # A local version label (torch's +cpu) is no part of a PyPI release's version.
    return command + [f"{name}=={version.split('+')[0]}" for name, version in packages.items()]


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.glob("*.whl"))


def read_present(path: str) -> set[str]:
    """Package names from `pip list --format=freeze` output (or one name per line)."""
    names = set()
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            names.add(canonical(re.split(r"[=<>@ ]", line, maxsplit=1)[0]))
    return names


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", default="gpu-wheels", help="the wheels folder (default: gpu-wheels/)")
    parser.add_argument("--python-version", default="3.12", help="the GPU machine's python3 (the CUDA image: 3.12)")
    parser.add_argument("--present", help="a file of the package names the GPU machine has (pip list --format=freeze)")
    parser.add_argument("--print", action="store_true", help="print the packages and the command, download nothing")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    present = read_present(args.present) if args.present else GPU_IMAGE_HAS
    packages = missing_on_gpu(dependency_versions(), present)
    command = download_command(packages, args.dest, args.python_version, [sys.executable, "-m", "pip"])
    print("packages the GPU machine lacks: " + ", ".join(f"{n}=={v}" for n, v in packages.items()))
    print(" ".join(command))
    if args.print:
        return 0
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):  # one version of each package: two would stop the install there
        old.unlink()
    subprocess.run(command, check=True)
    (dest / "wheels.txt").write_text("".join(f"{n}=={v.split('+')[0]}\n" for n, v in packages.items()))
    size = folder_bytes(dest)
    for wheel in sorted(dest.glob("*.whl"), key=lambda p: -p.stat().st_size):
        print(f"  {wheel.stat().st_size / 2**20:6.1f} MiB  {wheel.name}")
    print(f"{dest}: {len(list(dest.glob('*.whl')))} wheels, {size / 2**20:.1f} MiB (limit {MAX_BYTES / 2**20:.0f} MiB)")
    if size > MAX_BYTES:
        print(f"gpu_wheels.py: {dest} is over {MAX_BYTES / 2**20:.0f} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
