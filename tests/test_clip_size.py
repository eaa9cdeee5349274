"""The clip size is one fact, the data's: the encoder's num_frames / img_size follow data.init_args.num_frames /
crop_size (the CLI links them; the study's merged configs apply the same links), and one check with one
message says when the clips cannot be cut into the encoder's tubelets and patches."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from jepa_lit.config import CLIP_SIZE_LINKS, link_clip_size
from jepa_lit.errors import ConfigError
from jepa_lit.masks import BlockGenerator, MultiBlock3D
from jepa_lit.models import VisionTransformer
from jepa_lit.module import JEPAModule

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "experiments" / "smoke.yaml")


def module(**encoder):
    masks = MultiBlock3D(generators=[BlockGenerator(1, (0.5, 0.5))])
    vit = VisionTransformer(size="tiny", depth=1, num_frames=8, img_size=32, **encoder)
    return JEPAModule(vit, masks, predictor_width=16, predictor_depth=1, predictor_heads=2)


def test_no_shipped_config_sets_the_encoders_clip_size():
    def keys(node):
        if isinstance(node, dict):
            for key, value in node.items():
                yield key
                yield from keys(value)
        elif isinstance(node, list):
            for value in node:
                yield from keys(value)

    for path in sorted((REPO / "experiments").rglob("*.yaml")):
        assert "img_size" not in set(keys(yaml.safe_load(path.read_text()))), (
            f"{path}: the encoder's img_size is data.init_args.crop_size's")


def test_merged_configs_take_the_encoders_clip_size_from_the_data():
    merged = {"model": {"init_args": {"encoder": {"class_path": "jepa_lit.models.VisionTransformer",
                                                  "init_args": {"size": "tiny", "img_size": 224}}}},
              "data": {"init_args": {"num_frames": 8, "crop_size": 64}}}
    assert link_clip_size(merged)["model"]["init_args"]["encoder"]["init_args"] == {
        "size": "tiny", "num_frames": 8, "img_size": 64}
    unset = {"model": {"init_args": {"encoder": {"init_args": {"size": "tiny"}}}}, "data": {"init_args": {}}}
    assert link_clip_size(unset)["model"]["init_args"]["encoder"]["init_args"] == {"size": "tiny"}
    assert [target.rpartition(".")[2] for _, target in CLIP_SIZE_LINKS] == ["num_frames", "img_size"]


@pytest.mark.slow
def test_the_cli_links_the_encoders_clip_size_to_the_data_and_prints_it(capsys):
    from jepa_lit.cli import run_cli

    args = ["--config", SMOKE, "--trainer.logger", "false", "--data.init_args.num_frames", "4",
            "--data.init_args.crop_size", "32", "--model.init_args.encoder.init_args.depth", "1"]
    cli = run_cli(args, run=False)
    assert (cli.model.encoder.config["num_frames"], cli.model.encoder.config["img_size"]) == (4, 32)
    assert cli.model.encoder.pos_grid == (2, 2, 2)
    with pytest.raises(SystemExit):
        run_cli(["fit", *args, "--print_config"])
    data = yaml.safe_load(capsys.readouterr().out)["data"]["init_args"]
    assert (data["num_frames"], data["crop_size"]) == (4, 32)


def test_one_check_names_every_key_that_does_not_fit():
    video = module()
    with pytest.raises(ConfigError) as error:
        video.check_data_fits(SimpleNamespace(num_frames=7, crop_size=40))
    assert str(error.value) == (
        "data.init_args.num_frames=7 is not a multiple of model.init_args.encoder.init_args.tubelet_size=2; "
        "data.init_args.crop_size=40 is not a multiple of model.init_args.encoder.init_args.patch_size=16 "
        "(the encoder cuts clips into tubelet x patch x patch pieces)")
    video.check_data_fits(SimpleNamespace(num_frames=8, crop_size=48))
    # single images: only an encoder with the tubelet-1 image patch embedding takes them
    module(image_patch_embed=True).check_data_fits(SimpleNamespace(num_frames=1, crop_size=32))
    with pytest.raises(ConfigError, match="num_frames=1 is not a multiple"):
        video.check_data_fits(SimpleNamespace(num_frames=1, crop_size=32))


def test_an_encoder_clip_size_given_apart_from_the_data_is_refused_naming_the_key(tmp_path):
    from jepa_lit.cli import run_cli

    # a flag that disagrees with the data's crop: the link would drop it without a word
    with pytest.raises(ConfigError, match=r"--model.init_args.encoder.init_args.img_size: .*img_size=48.*"
                                          r"data.init_args.crop_size is 64.*Set data.init_args.crop_size instead"):
        run_cli(["--config", SMOKE, "--model.init_args.encoder.init_args.img_size", "48"], run=False)
    # the same in a config file (a stacked one too), for num_frames
    own = tmp_path / "own.yaml"
    own.write_text("model:\n  init_args:\n    encoder:\n      init_args:\n        num_frames: 4\n")
    with pytest.raises(ConfigError, match=r"own.yaml: .*num_frames=4.*data.init_args.num_frames is 8"):
        run_cli(["--config", SMOKE, "--config", str(own)], run=False)
    # the data's own value (a run's config.yaml saved before the link) is accepted, and so is the data's key
    own.write_text("model:\n  init_args:\n    encoder:\n      init_args:\n        num_frames: 8\n")
    cli = run_cli(["--config", SMOKE, "--config", str(own), "--data.init_args.crop_size", "32"], run=False)
    assert cli.model.encoder.pos_grid == (8 // 2, 32 // 16, 32 // 16)  # (frames / tubelet, crop / patch, ...)
