"""Something-Something V2 from its official download: label JSONs and `<id>.webm` videos.

labels.json maps a template (without brackets) to its class index as a string; train.json and
validation.json are lists of {"id", "template", ...} whose template has its objects in square
brackets ("Holding [something] next to [something]"), stripped before the lookup. Validation is the
test split (test.json has no labels). Both the current file names (labels/labels.json, ...) and the
older 20BN ones (something-something-v2-labels.json, ...) are accepted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from jepa_lit.data.datamodule import ClipDataModule
from jepa_lit.data.records import IndexProblem, Record, check_label, layout_error, load_json, require
from jepa_lit.errors import DataError

NUM_CLASSES = 174
OFFICIAL_SIZES = {"train": 168913, "test": 24777}

EXPECTED_LAYOUT = """\
ssv2/
├── labels/                           (or the same files directly under the root)
│   ├── labels.json                   {"Approaching something with your camera": "0", ...}  174 templates
│   ├── train.json                    [{"id": "78687", "template": "Holding [something] next to [something]", ...}, ...]
│   └── validation.json               (older 20BN names: something-something-v2-{labels,train,validation}.json)
└── 20bn-something-something-v2/      (cat 20bn-something-something-v2-?? | tar zx; or a folder named videos/)
    ├── 1.webm
    └── ... (<id>.webm)
"""

_NAMES = {
    "labels": ("labels.json", "something-something-v2-labels.json"),
    "train": ("train.json", "something-something-v2-train.json"),
    "test": ("validation.json", "something-something-v2-validation.json"),
}
_VIDEO_DIRS = ("20bn-something-something-v2", "videos")


def find_annotation(root: Path, kind: str) -> Optional[Path]:
    """The annotation file of `kind` ("labels", "train", "test") under root/labels or root, or None."""
    for folder in (root / "labels", root):
        for name in _NAMES[kind]:
            if (folder / name).is_file():
                return folder / name
    return None


def find_video_dir(root: Path) -> Optional[Path]:
    for name in _VIDEO_DIRS:
        if (root / name).is_dir():
            return root / name
    return None


def strip_template(template: str) -> str:
    """'Putting [something] on [something]' -> 'Putting something on something' (the labels.json key)."""
    return template.replace("[", "").replace("]", "")


def read_labels(labels_file: Path) -> dict[str, int]:
    """labels.json: {template: class index as a string}, every index one of the 174 classes."""
    labels = {}
    for template, value in load_json(labels_file, dict, '{"Approaching something with your camera": "0", ...}').items():
        if not str(value).strip().isdigit():
            raise DataError(f"{labels_file}: {template!r}: {value!r} is not a class index; expected \"0\" to "
                            f"\"{NUM_CLASSES - 1}\"")
        labels[template] = int(value)
        check_label(labels[template], NUM_CLASSES, f"{labels_file}: {template!r}")
    return labels


def index_ssv2(
    root: str, subset: Literal["train", "test"] = "train", video_ext: str = "webm"
) -> tuple[list[Record], list[IndexProblem]]:
    """Records of SSv2 train or validation (= test) from the official files under `root`."""
    root_p = Path(root)
    require("Something-Something V2", root_p, [], EXPECTED_LAYOUT)
    labels_file, split_file = find_annotation(root_p, "labels"), find_annotation(root_p, subset)
    videos = find_video_dir(root_p)
    for found, what in (
        (labels_file, "labels.json"),
        (split_file, _NAMES[subset][0]),
        (videos, "the video folder 20bn-something-something-v2/"),
    ):
        if found is None:
            raise layout_error("Something-Something V2", root, f"missing {what}", EXPECTED_LAYOUT)
    labels = read_labels(labels_file)
    items = load_json(split_file, list, "[{'id', 'template', ...}, ...]")
    records, problems = [], []
    for n, item in enumerate(items):
        where = f"{split_file.name}[{n}]"
        if not isinstance(item, dict) or "id" not in item or not isinstance(item.get("template"), str):
            problems.append(IndexProblem(where, "expected an item with 'id' and 'template'"))
            continue
        label = labels.get(strip_template(item["template"]))
        if label is None:
            problems.append(
                IndexProblem(
                    f"{where} id {item['id']}", f"unknown template {item['template']!r} (not in {labels_file.name})"
                )
            )
            continue
        records.append(Record(str(videos / f"{item['id']}.{video_ext}"), label))
    return records, problems


class SSv2DataModule(ClipDataModule):
    """Something-Something V2 (174 classes): train.json for training, validation.json as the test split.

    Args:
        root: the dataset folder in its official layout (see EXPECTED_LAYOUT), e.g. /datasets/ssv2,
            or the folder holding it as ssv2/ (e.g. /datasets).
        train_list, test_list: V-JEPA style `path label` list files used instead of the JSONs.
        video_ext: extension of the video files (webm as downloaded; mp4 for a transcoded copy).
        Other arguments: see ClipDataModule.
    """

    num_classes = NUM_CLASSES
    dataset_name = "ssv2"
    layout_markers = ("labels", "labels.json", "something-something-v2-labels.json")

    def __init__(
        self,
        root: str = "data/ssv2",
        train_list: Optional[str] = None,
        test_list: Optional[str] = None,
        video_ext: str = "webm",
        frame_step: int = 2,
        **kwargs,
    ):
        # The shared arguments (num_frames, crop_size, batch_size, ...) are ClipDataModule's;
        # LightningCLI follows **kwargs to its signature, so --print_config still shows them all.
        super().__init__(root=root, train_list=train_list, test_list=test_list, frame_step=frame_step, **kwargs)
        self.video_ext = video_ext
        self.save_hyperparameters()

    def index_official(self, root, split):
        return index_ssv2(root, split, self.video_ext)
