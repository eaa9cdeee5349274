"""The frozen-encoder benchmarks and their protocols (the study's evaluation protocol, experiments/probes/; the study's scripts).

Each Benchmark gives the defaults of ``jepa-lit test --probe <name>``: the DataModule and its clip
protocol, the probe, the cached feature pooling, and the probe's optimisation. Every value can be
overridden from a YAML (experiments/probes/<name>.yaml holds these defaults written out) or a flag.

| benchmark   | probe                      | features         | study split       | AdamW lr / wd, batch, epochs |
|-------------|----------------------------|------------------|-------------------|------------------------------|
| diving48    | attentive (8 heads)        | all tokens       | 15,027 / 1,970    | 1e-3 / 0.01, 16, 100         |
| ssv2        | attentive over mean token  | mean of tokens   | 168,913 / 24,777  | 1e-3 / 0.01, 16, 100         |
| imagenet100 | linear                     | mean of tokens   | ~126,689 / 5,000  | 1e-3 / 0.01, 256, 50         |
| ucf101      | attentive                  | all tokens       | 9,537 / 3,783     | 3e-4 / 0.01, 16, 100         |
| synthetic   | attentive                  | all tokens       | 160 / 40          | 3e-4 / 0.01, 32, 100         |
| synthetic_appearance | as synthetic      | all tokens       | 160 / 40          | 3e-4 / 0.01, 32, 100         |

Clips: 16 frames spread uniformly over the whole video, short side resized to 224 (bilinear; bicubic
for ImageNet-100, as the study), centre crop (the ImageNet-100 image repeated to 16 frames); synthetic: the first 8 of 32 frames at 160 px, no resize
(synthetic_appearance: the same clips labelled by the disc's size band, jepa-lit's appearance probe).
The train split is read through the evaluation pipeline (uniform frames, no augmentation): features
are cached once, so the probe never sees augmented clips, as in the study.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional, Union

from lightning.pytorch.loggers import TensorBoardLogger

# The study's eval pipeline on the train split: uniform frames, no augmentation.
_EVAL_TRAIN = {"train_sampling": "uniform", "train_augment": False}


class ProbeLogger(TensorBoardLogger):
    """The probe Trainer's default logger: TensorBoard (the confusion matrix image ``test/confusion_matrix``
    and the probe's losses) next to the results JSON, in ``<results folder>/tb/<benchmark>/version_N``
    (``RUN/probes/tb/<benchmark>/...`` by default).

    That folder follows ``--output`` and the checkpoint, so it is known only when the probe runs:
    ``place_probe_logger`` then swaps this placeholder for a TensorBoardLogger there. A ``save_dir`` or
    ``name`` given here is kept. ``trainer.logger: false`` turns logging off; any other logger is used as given.
    """

    def __init__(self, save_dir: Optional[str] = None, name: Optional[str] = None,
                 version: Optional[Union[int, str]] = None):
        self.placement = {"save_dir": save_dir, "name": name, "version": version}
        # a usable logger even outside jepa-lit test --probe (nothing is written until it logs)
        super().__init__(save_dir=save_dir or "probe_logs", name=name or "probe", version=version,
                         default_hp_metric=False)


def place_probe_logger(trainer, results_dir: Path, benchmark: str) -> Optional[str]:
    """Swap a ProbeLogger of ``trainer`` for a TensorBoardLogger in ``results_dir/tb/<benchmark>`` (its own
    save_dir / name when it was given them); returns the log folder of the Trainer's first TensorBoard
    logger, for the results JSON (None when it has none, e.g. ``trainer.logger: false``)."""
    loggers = []
    for logger in trainer.loggers:
        if isinstance(logger, ProbeLogger):
            where = logger.placement
            logger = TensorBoardLogger(save_dir=where["save_dir"] or str(Path(results_dir) / "tb"),
                                       name=where["name"] or benchmark, version=where["version"],
                                       default_hp_metric=False)
        loggers.append(logger)
    trainer.loggers = loggers
    folders = [logger.log_dir for logger in loggers if isinstance(logger, TensorBoardLogger)]
    return folders[0] if folders else None


@dataclass(frozen=True)
class Benchmark:
    name: str
    title: str
    short_title: str  # the column heading of the study's report tables
    datamodule: str  # class path
    data_args: dict[str, Any]
    probe: str
    pooling: str
    lr: float
    weight_decay: float
    batch_size: int
    epochs: int
    chance: float  # top-1 % of a uniform guess
    study_split: str
    notes: str = ""
    model_args: dict[str, Any] = field(default_factory=dict)

    def defaults(self) -> dict[str, Any]:
        """The benchmark's config, in the shape the probe CLI parses (data / model / features / trainer)."""
        return {
            "seed_everything": 0,
            "data": {"class_path": self.datamodule, "init_args": dict(self.data_args)},
            "model": {"probe": self.probe, "lrs": [self.lr], "weight_decays": [self.weight_decay], **self.model_args},
            "features": {"pooling": self.pooling, "batch_size": self.batch_size},
            "trainer": {
                "max_epochs": self.epochs,
                "accelerator": "auto",
                "devices": 1,
                "precision": "32-true",
                # TensorBoard next to the results JSON, placed when the probe runs (ProbeLogger); false: none
                "logger": {"class_path": "jepa_lit.eval.benchmarks.ProbeLogger"},
                "enable_checkpointing": False,
                "enable_model_summary": False,
            },
        }


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            name="diving48",
            title="Diving-48 (V2 labels, 48 classes)",
            short_title="Diving-48",
            datamodule="jepa_lit.data.diving48.Diving48DataModule",
            data_args={"root": "data/diving48", "num_frames": 16, "crop_size": 224, **_EVAL_TRAIN},
            probe="attentive", pooling="tokens", lr=1e-3, weight_decay=0.01, batch_size=16, epochs=100,
            chance=100 / 48, study_split="15,027 train / 1,970 test",
        ),
        Benchmark(
            name="ssv2",
            title="Something-Something V2 (174 classes)",
            short_title="SSv2",
            datamodule="jepa_lit.data.ssv2.SSv2DataModule",
            data_args={"root": "data/ssv2", "num_frames": 16, "crop_size": 224, **_EVAL_TRAIN},
            probe="attentive_mean", pooling="mean", lr=1e-3, weight_decay=0.01, batch_size=16, epochs=100,
            chance=100 / 174, study_split="168,913 train / 24,777 validation",
            notes="the study's probe: tokens mean-pooled to one, attention over [cls, mean token]",
        ),
        Benchmark(
            name="imagenet100",
            title="ImageNet-100 (100 classes)",
            short_title="IN-100",
            datamodule="jepa_lit.data.imagenet100.ImageNet100DataModule",
            data_args={"root": "data/imagenet100", "num_frames": 16, "crop_size": 224, "eval_interpolation": "bicubic",
                       **_EVAL_TRAIN},
            probe="linear", pooling="mean", lr=1e-3, weight_decay=0.01, batch_size=256, epochs=50,
            chance=1.0, study_split="~126,689 train / 5,000 validation",
            notes="each image repeated to 16 frames; linear probe on the mean token",
        ),
        Benchmark(
            name="ucf101",
            title="UCF-101 split 1 (101 classes)",
            short_title="UCF-101",
            datamodule="jepa_lit.data.ucf101.UCF101DataModule",
            data_args={"root": "data/ucf101", "split": 1, "num_frames": 16, "crop_size": 224, **_EVAL_TRAIN},
            probe="attentive", pooling="tokens", lr=3e-4, weight_decay=0.01, batch_size=16, epochs=100,
            chance=100 / 101, study_split="9,537 train / 3,783 test",
        ),
        Benchmark(
            name="synthetic",
            title="Synthetic Motion Discrimination (8 directions)",
            short_title="Synthetic",
            datamodule="jepa_lit.data.synthetic.SyntheticMotionDataModule",
            data_args={"num_clips": 200, "num_frames": 8, "total_frames": 32, "crop_size": 160,
                       "val_fraction": 0.2, "seed": 42, "batch_size": 8},
            probe="attentive", pooling="tokens", lr=3e-4, weight_decay=0.01, batch_size=32, epochs=100,
            chance=12.5, study_split="160 train / 40 test (clips 0-159 / 160-199, seed 42)",
            notes="200 moving-disc clips of 32 frames at 160 px, first 8 frames, no resize",
        ),
    )
}
# The same clips labelled by the disc's size band: what an objective does to appearance on the motion benchmark.
BENCHMARKS["synthetic_appearance"] = replace(
    BENCHMARKS["synthetic"], name="synthetic_appearance", short_title="Synth. size",
    title="Synthetic appearance (the moving disc's size band, 2 classes)",
    data_args={**BENCHMARKS["synthetic"].data_args, "label": "size"}, chance=50.0,
    study_split="not in the study: jepa-lit's appearance probe on the motion benchmark's clips",
    notes="the same clips as `synthetic`, labelled by the disc's radius (lower / upper half of its range)")


def get_benchmark(name: str) -> Benchmark:
    """The benchmark called ``name``; a ValueError listing the valid names otherwise."""
    if name not in BENCHMARKS:
        from jepa_lit.hints import nearest

        near = nearest(name, BENCHMARKS, cutoff=0.4)
        raise ValueError(f"--probe {name!r} is not a benchmark; expected one of: {', '.join(sorted(BENCHMARKS))}"
                         + (f"; did you mean {near!r}?" if near else ""))
    return BENCHMARKS[name]
