"""UCF-101 from its official download: `UCF-101/<Class>/*.avi` and `ucfTrainTestlist/`.

classInd.txt maps a 1-based index to a class name; trainlist0N.txt lines are `<Class>/<file>.avi
<1-based label>`, testlist0N.txt lines `<Class>/<file>.avi` (the class comes from the folder part).
Labels are 0-based. Class names are matched case-insensitively, and so are the class folders on
disk, because of the HandstandPushups folder whose files are named v_HandStandPushups_*: the class
is always taken from the folder component, never from the file name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from jepa_lit.data.datamodule import ClipDataModule
from jepa_lit.data.records import IndexProblem, Record, check_label, layout_error, require
from jepa_lit.errors import DataError

NUM_CLASSES = 101
OFFICIAL_SIZES = {1: {"train": 9537, "test": 3783}, 2: {"train": 9586, "test": 3734}, 3: {"train": 9624, "test": 3696}}

EXPECTED_LAYOUT = """\
ucf101/
├── UCF-101/                      (UCF101.rar unpacked; class folders directly under the root also work)
│   ├── ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi ...
│   ├── HandstandPushups/v_HandStandPushups_g01_c01.avi ...
│   └── ... (101 class folders)
└── ucfTrainTestlist/             (UCF101TrainTestSplits-RecognitionTask.zip unpacked)
    ├── classInd.txt              "1 ApplyEyeMakeup" ... "101 YoYo"
    ├── trainlist01.txt ... 03    "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1"
    └── testlist01.txt ... 03     "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
"""


def read_class_index(path: Path) -> dict[str, int]:
    """classInd.txt -> {lower-case class name: 0-based label}."""
    classes = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise ValueError(f"{path}:{n}: expected '<1-based index> <ClassName>', got {line!r}")
        classes[parts[1].lower()] = int(parts[0]) - 1
        check_label(int(parts[0]) - 1, NUM_CLASSES, f"{path}:{n} (1-based {parts[0]})")
    return classes


def list_entries(list_file: Path) -> dict[str, int]:
    """The clips a split list names (lower case, ``/`` separators) -> the line of each; a clip listed twice
    is a DataError naming both lines (it would be trained on, or tested, twice as often)."""
    seen: dict[str, int] = {}
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        clip = parts[0].replace("\\", "/").lower()
        if clip in seen:
            raise DataError(f"{list_file}:{n}: {parts[0]} is listed again (first at line {seen[clip]}); "
                            "expected each clip once (a damaged or hand-edited split list?)")
        seen[clip] = n
    return seen


def video_dir(root: Path) -> Path:
    """The folder holding the class folders: root/UCF-101 when present, else the root itself."""
    return root / "UCF-101" if (root / "UCF-101").is_dir() else root


def index_ucf101(
    root: str, split: int = 1, subset: Literal["train", "test"] = "train"
) -> tuple[list[Record], list[IndexProblem]]:
    """Records of UCF-101 split `split` (1-3), train or test, from the official files under `root`."""
    root_p = Path(root)
    if split not in (1, 2, 3):
        raise ValueError(f"UCF-101 split must be 1, 2 or 3, got {split}")
    lists = root_p / "ucfTrainTestlist"
    list_file = lists / f"{'trainlist' if subset == 'train' else 'testlist'}0{split}.txt"
    require("UCF-101", root_p, [lists / "classInd.txt", list_file], EXPECTED_LAYOUT)
    classes = read_class_index(lists / "classInd.txt")
    videos = video_dir(root_p)
    folders = {p.name.lower(): p.name for p in videos.iterdir() if p.is_dir()}
    if not folders:
        raise layout_error("UCF-101", root, f"no class folders in {videos}", EXPECTED_LAYOUT)
    entries = list_entries(list_file)
    test_list = lists / f"testlist0{split}.txt"
    if subset == "train" and test_list.is_file():  # a test clip trained on would inflate every probe result
        tested = list_entries(test_list)
        for clip, n in entries.items():
            if clip in tested:
                raise DataError(f"{list_file}:{n}: {clip} is a test clip of split {split} ({test_list}:"
                                f"{tested[clip]}); expected the train list to hold no test clips")
    records, problems = [], []
    for n, line in enumerate(list_file.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        where = f"{list_file.name}:{n}"
        rel = parts[0].replace("\\", "/")
        if "/" not in rel:
            problems.append(IndexProblem(where, f"expected '<Class>/<file>.avi', got {rel!r}"))
            continue
        folder, filename = rel.split("/", 1)
        label = classes.get(folder.lower())
        if label is None:
            problems.append(IndexProblem(where, f"unknown class {folder!r} (not in classInd.txt)"))
            continue
        if len(parts) > 1 and (not parts[1].isdigit() or int(parts[1]) - 1 != label):
            problems.append(
                IndexProblem(where, f"label {parts[1]} disagrees with class {folder!r} = {label + 1} in classInd.txt")
            )
            continue
        path = videos / folders.get(folder.lower(), folder) / filename
        records.append(Record(str(path), label))
    return records, problems


class UCF101DataModule(ClipDataModule):
    """UCF-101 (101 classes). Pretraining regime: split-1 train videos, one random clip of 16
    consecutive frames per video (frame_step 1). Test / val: the split's test list.

    Args:
        root: the dataset folder in its official layout (see EXPECTED_LAYOUT), e.g. /datasets/ucf101,
            or the folder holding it as ucf101/ (e.g. /datasets).
        train_list, test_list: V-JEPA style `path label` list files used instead of the official
            split files (relative paths are taken from `root`).
        split: official split 1, 2 or 3.
        Other arguments: see ClipDataModule.
    """

    num_classes = NUM_CLASSES
    dataset_name = "ucf101"
    layout_markers = ("ucfTrainTestlist",)

    def __init__(
        self,
        root: str = "data/ucf101",
        train_list: Optional[str] = None,
        test_list: Optional[str] = None,
        split: int = 1,
        frame_step: int = 1,
        **kwargs,
    ):
        # The shared arguments (num_frames, crop_size, batch_size, ...) are ClipDataModule's;
        # LightningCLI follows **kwargs to its signature, so --print_config still shows them all.
        super().__init__(root=root, train_list=train_list, test_list=test_list, frame_step=frame_step, **kwargs)
        self.split = split
        self.save_hyperparameters()

    def index_official(self, root, split):
        return index_ucf101(root, self.split, split)
