"""Official V-JEPA 2 / 2.1 checkpoints, built here with the official key names and shapes."""

import pytest
import torch

from jepa_lit.models import VisionTransformer
from jepa_lit.models.official import CheckpointMismatch, export_official, load_official_encoder


def tiny(**kwargs):
    return VisionTransformer(size="tiny", depth=4, **kwargs)


def official_v21_checkpoint(source: VisionTransformer, prefix="module.backbone."):
    state = {prefix + k: v.clone() for k, v in source.state_dict().items()}
    return {"encoder": state, "target_encoder": state, "predictor": {}, "opt": {}, "epoch": 3}


def official_v2_checkpoint(source: VisionTransformer):
    """V-JEPA 2 layout: a single final `norm`, no hierarchical norms or modality embeddings, a stray pos_embed."""
    state = {}
    for key, value in source.state_dict().items():
        if key.startswith("norms_block.3."):
            state["module.backbone." + key.replace("norms_block.3.", "norm.")] = value.clone()
        elif not key.startswith("norms_block.") and not key.endswith("_mod_embed"):
            state["module.backbone." + key] = value.clone()
    state["module.backbone.pos_embed"] = torch.zeros(1, 8, 192)
    return {"encoder": state, "target_encoder": state}


def test_v21_round_trip_through_a_file(tmp_path):
    source = tiny()
    path = tmp_path / "vjepa21.pt"
    torch.save(official_v21_checkpoint(source), path)
    encoder = tiny(pretrained=str(path))
    clip = torch.randn(1, 3, 4, 32, 32)
    assert torch.equal(encoder.eval()(clip, hierarchical=True), source.eval()(clip, hierarchical=True))


def test_v2_layout_loads_final_norm_and_reports_the_rest():
    source = tiny(rope_interleave=False)
    encoder = tiny(rope_interleave=False)
    report = load_official_encoder(encoder, official_v2_checkpoint(source))
    assert report.ignored == ["pos_embed"]
    assert report.renamed == {"norm.weight": "norms_block.3.weight", "norm.bias": "norms_block.3.bias"}
    assert "norms_block.0.weight" in report.kept_initial and "video_mod_embed" in report.kept_initial
    assert torch.equal(encoder.blocks[2].attn.qkv.weight, source.blocks[2].attn.qkv.weight)
    assert torch.equal(encoder.norms_block[3].weight, source.norms_block[3].weight)


def test_target_encoder_entry_is_preferred():
    online, target = tiny(), tiny()
    checkpoint = {"encoder": official_v21_checkpoint(online)["encoder"],
                  "target_encoder": official_v21_checkpoint(target)["encoder"]}
    encoder = tiny()
    load_official_encoder(encoder, checkpoint)
    assert torch.equal(encoder.blocks[0].attn.qkv.weight, target.blocks[0].attn.qkv.weight)
    load_official_encoder(encoder, checkpoint, entry="encoder")
    assert torch.equal(encoder.blocks[0].attn.qkv.weight, online.blocks[0].attn.qkv.weight)


def test_mismatch_is_an_error_listing_keys_and_shapes():
    checkpoint = official_v21_checkpoint(VisionTransformer(size="small", depth=4))
    with pytest.raises(CheckpointMismatch, match=r"shape mismatches .*blocks\.0\.attn\.qkv\.weight: checkpoint \(1152, 384\)"):
        load_official_encoder(tiny(), checkpoint)
    checkpoint = official_v21_checkpoint(VisionTransformer(size="tiny", depth=3))
    with pytest.raises(CheckpointMismatch, match=r"missing from the checkpoint .*blocks\.3\."):
        load_official_encoder(tiny(), checkpoint)
    with pytest.raises(CheckpointMismatch, match="no 'target_encoder' or 'encoder' entry"):
        load_official_encoder(tiny(), {"opt": {"x": 1}, "epoch": 1})
    with pytest.raises(FileNotFoundError, match="no file at"):
        tiny(pretrained="/nonexistent/weights.pt")


def test_export_round_trip_from_a_jepa_module():
    from jepa_lit.module import JEPAModule

    module = JEPAModule(tiny(), predictor_width=32, predictor_depth=1, predictor_heads=2)
    with torch.no_grad():
        module.target_encoder.blocks[0].attn.qkv.weight.add_(1.0)  # make the EMA target differ
    exported = export_official(module)
    assert all(k.startswith("module.backbone.") for k in exported["target_encoder"])
    encoder = tiny()
    load_official_encoder(encoder, exported)
    assert torch.equal(encoder.blocks[0].attn.qkv.weight, module.target_encoder.blocks[0].attn.qkv.weight)


def test_export_command_writes_the_official_layout(tmp_path, capsys):
    from jepa_lit.cli import main
    from jepa_lit.module import JEPAModule

    module = JEPAModule(tiny(), predictor_width=32, predictor_depth=1, predictor_heads=2)
    checkpoint = {"state_dict": module.state_dict(), "epoch": 0, "global_step": 5}
    module.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "last.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "last.ckpt"), str(tmp_path / "vjepa.pt")])
    assert exit_info.value.code == 0
    encoder = tiny()
    report = load_official_encoder(encoder, str(tmp_path / "vjepa.pt"))
    assert torch.equal(encoder.blocks[1].mlp.fc1.weight, module.target_encoder.blocks[1].mlp.fc1.weight)
    assert not report.kept_initial and not report.ignored


def test_export_refuses_a_checkpoint_without_jepa_lit_metadata(tmp_path, capsys):
    from jepa_lit.cli import main

    torch.save({"state_dict": {}}, tmp_path / "plain.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "plain.ckpt"), str(tmp_path / "out.pt")])
    assert exit_info.value.code == 2 and "no 'jepa_lit' entry" in capsys.readouterr().out
    assert not (tmp_path / "out.pt").exists()
