"""ImageNet-100 (the CMC subset): `train/<wnid>/*.JPEG` and `val/<wnid>/*.JPEG`.

The 100 WordNet ids ship in imagenet100_classes.txt (CMC's imagenet100.txt, the same list and
order as solo-learn's). They pick the class folders and fix the labels: label = position in that
list (CMC order, 0 = n02869837), not torchvision ImageFolder's sorted order, so probe heads are
comparable only with runs that use this file. Each image becomes a static clip (repeated to
num_frames) with modality 1.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal, Optional

from jepa_lit.data.datamodule import ClipDataModule
from jepa_lit.data.records import IMAGE, IMAGE_EXTENSIONS, IndexProblem, Record, layout_error, require
from jepa_lit.data.transforms import Interpolation

log = logging.getLogger("jepa_lit.data")

NUM_CLASSES = 100
OFFICIAL_SIZES = {"train": 126689, "test": 5000}  # train: the commonly cited count (about 1,300 a class)
CLASS_LIST = Path(__file__).with_name("imagenet100_classes.txt")

EXPECTED_LAYOUT = """\
imagenet100/
├── train/
│   ├── n02869837/*.JPEG          (one folder per WordNet id of the 100 in imagenet100_classes.txt;
│   └── ...                        extra folders are ignored, e.g. a full ImageNet-1k train/)
└── val/                          (validation images sorted into class folders, 50 a class)
    ├── n02869837/*.JPEG
    └── ...
"""


def read_class_list(path: Optional[str] = None) -> list[str]:
    """The WordNet ids in label order (whitespace separated, one or many per line)."""
    wnids = Path(path or CLASS_LIST).read_text().split()
    if len(set(wnids)) != len(wnids):
        raise ValueError(f"{path or CLASS_LIST}: duplicate WordNet ids")
    return wnids


def index_imagenet100(
    root: str, subset: Literal["train", "test"] = "train", class_list: Optional[str] = None
) -> tuple[list[Record], list[IndexProblem]]:
    """Image records of train/ or val/ (the test split) for the listed classes, files in sorted order.

    A listed class without a folder is reported as an IndexProblem, and so is an image entry that is a
    link to nothing (a dangling symlink); a split folder with none of the listed classes is a layout error.
    """
    root_p = Path(root)
    split_dir = root_p / ("train" if subset == "train" else "val")
    require("ImageNet-100", root_p, [split_dir], EXPECTED_LAYOUT)
    wnids = read_class_list(class_list)
    records, problems, found = [], [], 0
    for label, wnid in enumerate(wnids):
        folder = split_dir / wnid
        if not folder.is_dir():
            problems.append(IndexProblem(f"{split_dir.name}/{wnid}", "class folder missing"))
            continue
        found += 1
        entries = [e for e in os.scandir(folder) if Path(e.name).suffix.lower() in IMAGE_EXTENSIONS]
        names = sorted(e.name for e in entries if e.is_file())
        for e in sorted(entries, key=lambda e: e.name):
            if e.is_symlink() and not e.is_file():  # is_file() follows the link: it points at nothing
                problems.append(IndexProblem(f"{split_dir.name}/{wnid}/{e.name}",
                                             f"dangling link to {os.readlink(e.path)} (no such file)"))
        records.extend(Record(str(folder / name), label, modality=IMAGE) for name in names)
    if found == 0:
        raise layout_error(
            "ImageNet-100", root, f"none of the {len(wnids)} class folders is in {split_dir}", EXPECTED_LAYOUT
        )
    return records, problems


class ImageNet100DataModule(ClipDataModule):
    """ImageNet-100 images as static clips (modality 1): train/ for training, val/ as the test split.

    Args:
        root: the dataset folder (see EXPECTED_LAYOUT), e.g. /datasets/imagenet100,
            or the folder holding it as imagenet100/ (e.g. /datasets).
        train_list, test_list: V-JEPA style `path label` list files used instead of the folders.
        class_list: a file of WordNet ids in label order; default: the packaged CMC list.
        frame_step: unused (images); kept for a uniform signature.
        Other arguments: see ClipDataModule.
    """

    num_classes = NUM_CLASSES
    dataset_name = "imagenet100"
    layout_markers = ("train", "val")

    def __init__(
        self,
        root: str = "data/imagenet100",
        train_list: Optional[str] = None,
        test_list: Optional[str] = None,
        class_list: Optional[str] = None,
        frame_step: int = 1,
        eval_interpolation: Interpolation = "bicubic",  # the study's ImageNet-100 evaluation resize
        **kwargs,
    ):
        # The shared arguments (num_frames, crop_size, batch_size, ...) are ClipDataModule's;
        # LightningCLI follows **kwargs to its signature, so --print_config still shows them all.
        super().__init__(root=root, train_list=train_list, test_list=test_list, frame_step=frame_step,
                         eval_interpolation=eval_interpolation, **kwargs)
        self.class_list = class_list
        self.save_hyperparameters()

    def index_official(self, root, split):
        records, problems = index_imagenet100(root, split, self.class_list)
        folders = [p for p in problems if p.reason == "class folder missing"]
        # Missing class folders leave the labels intact (they are list positions): warn, don't fail.
        if folders:
            log.warning(
                "imagenet100 %s: %d of %d class folders missing, e.g. %s",
                split,
                len(folders),
                NUM_CLASSES,
                folders[0].where,
            )
        # Bad files (dangling links) follow data.on_error as other bad entries: counted and skipped, or raised.
        return records, [p for p in problems if p not in folders]
