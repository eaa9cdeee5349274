"""Diving-48 (V2 labels) from its official download: the V2 split JSONs, the vocabulary and `rgb/*.mp4`.

Diving48_V2_{train,test}.json are lists of {"vid_name", "label", "start_frame", "end_frame"};
vid_name has no extension and names rgb/<vid_name>.mp4; clips are drawn from frames
[start_frame, end_frame). Diving48_vocab.json lists the 48 classes (takeoff, somersault, twist,
flight position), its index being the label. The V1 files (Diving48_train.json) are not used.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from jepa_lit.data.datamodule import ClipDataModule
from jepa_lit.data.records import IndexProblem, Record, load_json, require

NUM_CLASSES = 48
OFFICIAL_SIZES = {"train": 15027, "test": 1970}

EXPECTED_LAYOUT = """\
diving48/
├── Diving48_V2_train.json    [{"vid_name": "-mmq0PT-u8k_00155", "label": 0, "start_frame": 0, "end_frame": 48}, ...]
├── Diving48_V2_test.json
├── Diving48_vocab.json       [["Back", "15som", "05Twis", "FREE"], ...]  48 entries
└── rgb/                      (Diving48_rgb.tar.gz unpacked)
    ├── -mmq0PT-u8k_00155.mp4
    └── ...
"""

_SPLIT_FILES = {"train": "Diving48_V2_train.json", "test": "Diving48_V2_test.json"}


def read_vocab(root: Path) -> list[str]:
    """Class names 'Back+15som+05Twis+FREE' in label order."""
    path = root / "Diving48_vocab.json"
    vocab = load_json(path, list, "[[takeoff, somersault, twist, flight], ...]")
    return ["+".join(v) if isinstance(v, list) else str(v) for v in vocab]


def index_diving48(root: str, subset: Literal["train", "test"] = "train") -> tuple[list[Record], list[IndexProblem]]:
    """Records of the V2 train or test split (with frame ranges) from the official files under `root`."""
    root_p = Path(root)
    split_file = root_p / _SPLIT_FILES[subset]
    require("Diving-48", root_p, [split_file, root_p / "Diving48_vocab.json", root_p / "rgb"], EXPECTED_LAYOUT)
    num_classes = len(read_vocab(root_p))
    items = load_json(split_file, list, "[{'vid_name', 'label', 'start_frame', 'end_frame'}, ...]")
    records, problems = [], []
    for n, item in enumerate(items):
        where = f"{split_file.name}[{n}]"
        if not isinstance(item, dict) or "vid_name" not in item or "label" not in item:
            problems.append(IndexProblem(where, "expected an item with 'vid_name' and 'label'"))
            continue
        label = item["label"]
        if not isinstance(label, int) or not 0 <= label < num_classes:
            problems.append(
                IndexProblem(f"{where} {item['vid_name']}", f"unknown label {label!r} (vocabulary has {num_classes})")
            )
            continue
        start, end = item.get("start_frame"), item.get("end_frame")
        records.append(Record(str(root_p / "rgb" / f"{item['vid_name']}.mp4"), label, start, end if end else None))
    return records, problems


class Diving48DataModule(ClipDataModule):
    """Diving-48 V2 (48 classes): Diving48_V2_train.json for training, Diving48_V2_test.json as the
    test split (there is no official validation split; val_dataloader is the test split).

    Args:
        root: the dataset folder in its official layout (see EXPECTED_LAYOUT), e.g. /datasets/diving48,
            or the folder holding it as diving48/ (e.g. /datasets).
        train_list, test_list: V-JEPA style `path label` list files used instead of the JSONs.
        Other arguments: see ClipDataModule.
    """

    num_classes = NUM_CLASSES
    dataset_name = "diving48"
    layout_markers = ("Diving48_V2_train.json", "rgb")

    def __init__(
        self,
        root: str = "data/diving48",
        train_list: Optional[str] = None,
        test_list: Optional[str] = None,
        frame_step: int = 2,
        **kwargs,
    ):
        # The shared arguments (num_frames, crop_size, batch_size, ...) are ClipDataModule's;
        # LightningCLI follows **kwargs to its signature, so --print_config still shows them all.
        super().__init__(root=root, train_list=train_list, test_list=test_list, frame_step=frame_step, **kwargs)
        self.save_hyperparameters()

    def index_official(self, root, split):
        return index_diving48(root, split)
