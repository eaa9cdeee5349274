"""Official V-JEPA 2 / 2.1 checkpoints, built here with the official key names and shapes."""

import pytest
import torch

from jepa_lit.models import VisionTransformer
from jepa_lit.models.official import CheckpointMismatch, export_official, load_official_encoder


def tiny(**kwargs):
    """A V-JEPA 2.1-style encoder (interleaved, interpolated RoPE) unless kwargs say otherwise."""
    return VisionTransformer(size="tiny", depth=4, **{"interpolate_rope": True, **kwargs})


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
    source = tiny(rope_interleave=False, interpolate_rope=False)
    encoder = tiny(rope_interleave=False, interpolate_rope=False)
    report = load_official_encoder(encoder, official_v2_checkpoint(source))
    assert report.ignored == ["pos_embed"]
    assert report.renamed == {"norm.weight": "norms_block.3.weight", "norm.bias": "norms_block.3.bias"}
    assert "norms_block.0.weight" in report.kept_initial and "video_mod_embed" in report.kept_initial
    assert torch.equal(encoder.blocks[2].attn.qkv.weight, source.blocks[2].attn.qkv.weight)
    assert torch.equal(encoder.norms_block[3].weight, source.norms_block[3].weight)


@pytest.mark.slow
def test_ema_weights_are_preferred_and_an_explicit_entry_is_honoured():
    online, target, ema = tiny(), tiny(), tiny()
    checkpoint = {"encoder": official_v21_checkpoint(online)["encoder"],
                  "target_encoder": official_v21_checkpoint(target)["encoder"],
                  "ema_encoder": official_v21_checkpoint(ema)["encoder"]}
    encoder = tiny()
    assert load_official_encoder(encoder, checkpoint).entry == "ema_encoder"
    assert torch.equal(encoder.blocks[0].attn.qkv.weight, ema.blocks[0].attn.qkv.weight)
    del checkpoint["ema_encoder"]
    assert load_official_encoder(encoder, checkpoint).entry == "target_encoder"
    assert torch.equal(encoder.blocks[0].attn.qkv.weight, target.blocks[0].attn.qkv.weight)
    assert load_official_encoder(encoder, checkpoint, entry="encoder").entry == "encoder"
    assert torch.equal(encoder.blocks[0].attn.qkv.weight, online.blocks[0].attn.qkv.weight)
    with pytest.raises(CheckpointMismatch, match=r"has no 'ema_encoder' entry \(found \['encoder', 'target_encoder'\]\)"):
        load_official_encoder(encoder, checkpoint, entry="ema_encoder")


@pytest.mark.slow
def test_mismatch_is_an_error_listing_keys_and_shapes():
    checkpoint = official_v21_checkpoint(VisionTransformer(size="small", depth=4))
    with pytest.raises(CheckpointMismatch, match=r"shape mismatches .*blocks\.0\.attn\.qkv\.weight: checkpoint \(1152, 384\)"):
        load_official_encoder(tiny(), checkpoint)
    checkpoint = official_v21_checkpoint(VisionTransformer(size="tiny", depth=3))
    with pytest.raises(CheckpointMismatch, match=r"missing from the checkpoint .*blocks\.3\."):
        load_official_encoder(tiny(), checkpoint)
    with pytest.raises(CheckpointMismatch, match="no 'ema_encoder' / 'target_encoder' / 'encoder' entry"):
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
    assert exit_info.value.code == 2 and "no 'jepa_lit' entry" in capsys.readouterr().err
    assert not (tmp_path / "out.pt").exists()


# The official encoders' state-dict keys and shapes for one small configuration, written out by hand from
# the official module structure (not from jepa-lit's): ViT-tiny (width 192, 3 heads, MLP 4 x 192 = 768),
# depth 2, patch 16, tubelet 2. PatchEmbed3D holds a Conv3d `proj`; each Block has norm1, attn.qkv (a fused
# Linear D -> 3D), attn.proj, norm2, mlp.fc1, mlp.fc2 (RoPE attention adds no parameters or buffers).
OFFICIAL_COMMON = {
    "patch_embed.proj.weight": (192, 3, 2, 16, 16),
    "patch_embed.proj.bias": (192,),
    "blocks.0.norm1.weight": (192,),
    "blocks.0.norm1.bias": (192,),
    "blocks.0.attn.qkv.weight": (576, 192),
    "blocks.0.attn.qkv.bias": (576,),
    "blocks.0.attn.proj.weight": (192, 192),
    "blocks.0.attn.proj.bias": (192,),
    "blocks.0.norm2.weight": (192,),
    "blocks.0.norm2.bias": (192,),
    "blocks.0.mlp.fc1.weight": (768, 192),
    "blocks.0.mlp.fc1.bias": (768,),
    "blocks.0.mlp.fc2.weight": (192, 768),
    "blocks.0.mlp.fc2.bias": (192,),
    "blocks.1.norm1.weight": (192,),
    "blocks.1.norm1.bias": (192,),
    "blocks.1.attn.qkv.weight": (576, 192),
    "blocks.1.attn.qkv.bias": (576,),
    "blocks.1.attn.proj.weight": (192, 192),
    "blocks.1.attn.proj.bias": (192,),
    "blocks.1.norm2.weight": (192,),
    "blocks.1.norm2.bias": (192,),
    "blocks.1.mlp.fc1.weight": (768, 192),
    "blocks.1.mlp.fc1.bias": (768,),
    "blocks.1.mlp.fc2.weight": (192, 768),
    "blocks.1.mlp.fc2.bias": (192,),
}
# V-JEPA 2 (src/models/vision_transformer.py, use_rope=True): one final `norm`. Its files also carry a
# `pos_embed` that RoPE never reads (the hub loader says so); here that of 16 frames at 256 px.
OFFICIAL_V2 = {
    **OFFICIAL_COMMON,
    "norm.weight": (192,),
    "norm.bias": (192,),
    "pos_embed": (1, 8 * 16 * 16, 192),
}
# V-JEPA 2.1 (app/vjepa_2_1/models/vision_transformer.py as the hub builds it: img_temporal_dim_size=1,
# modality_embedding=True): an image patch embedding (tubelet 1), 4 hierarchical norms, two modality
# embeddings, no final `norm`, no `pos_embed`.
OFFICIAL_V21 = {
    **OFFICIAL_COMMON,
    "patch_embed_img.proj.weight": (192, 3, 1, 16, 16),
    "patch_embed_img.proj.bias": (192,),
    "norms_block.0.weight": (192,),
    "norms_block.0.bias": (192,),
    "norms_block.1.weight": (192,),
    "norms_block.1.bias": (192,),
    "norms_block.2.weight": (192,),
    "norms_block.2.bias": (192,),
    "norms_block.3.weight": (192,),
    "norms_block.3.bias": (192,),
    "img_mod_embed": (1, 1, 192),
    "video_mod_embed": (1, 1, 192),
}
V21_TINY = {"size": "tiny", "depth": 2, "image_patch_embed": True, "interpolate_rope": True}


def official_state(keys: dict, seed: int = 0, prefix: str = "module.backbone.") -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {prefix + key: torch.randn(shape, generator=generator) for key, shape in keys.items()}


def test_hard_coded_v21_keys_load_strictly_and_export_exactly():
    state = official_state(OFFICIAL_V21)
    encoder = VisionTransformer(**V21_TINY)
    report = load_official_encoder(encoder, {"ema_encoder": state, "predictor": {}, "epoch": 10})
    assert (report.entry, report.layout) == ("ema_encoder", "V-JEPA 2.1")
    assert sorted(report.loaded) == sorted(OFFICIAL_V21)
    assert not report.renamed and not report.ignored and not report.kept_initial
    own = encoder.state_dict()
    assert all(torch.equal(own[key], state["module.backbone." + key]) for key in OFFICIAL_V21)

    module = torch.nn.Module()
    module.encoder = encoder
    exported = export_official(module)
    expected = {"module.backbone." + key: shape for key, shape in OFFICIAL_V21.items()}
    for name in ("encoder", "target_encoder"):
        assert {key: tuple(value.shape) for key, value in exported[name].items()} == expected

    # Without an image patch embedding the encoder knowingly leaves the checkpoint's one unused.
    report = load_official_encoder(VisionTransformer(**{**V21_TINY, "image_patch_embed": False}), {"ema_encoder": state})
    assert report.ignored == ["patch_embed_img.proj.weight", "patch_embed_img.proj.bias"]


def test_hard_coded_v2_keys_load_strictly():
    checkpoint = {"encoder": official_state(OFFICIAL_V2, seed=1), "target_encoder": official_state(OFFICIAL_V2)}
    encoder = VisionTransformer(size="tiny", depth=2, rope_interleave=False, interpolate_rope=False)
    report = load_official_encoder(encoder, checkpoint)
    assert (report.entry, report.layout) == ("target_encoder", "V-JEPA 2")
    assert report.renamed == {"norm.weight": "norms_block.3.weight", "norm.bias": "norms_block.3.bias"}
    assert report.ignored == ["pos_embed"]
    assert sorted(report.kept_initial) == sorted(
        [f"norms_block.{i}.{p}" for i in range(3) for p in ("weight", "bias")] + ["img_mod_embed", "video_mod_embed"])
    assert sorted(report.loaded) == sorted([*OFFICIAL_COMMON, "norms_block.3.weight", "norms_block.3.bias"])
    assert torch.equal(encoder.norms_block[3].weight, checkpoint["target_encoder"]["module.backbone.norm.weight"])
    assert torch.equal(encoder.blocks[1].mlp.fc2.weight, checkpoint["target_encoder"]["module.backbone.blocks.1.mlp.fc2.weight"])


@pytest.mark.parametrize("keys, settings, error", [
    (OFFICIAL_V2, {}, r"V-JEPA 2 checkpoint \(single final norm\): set rope_interleave: false"),
    (OFFICIAL_V2, {"rope_interleave": False, "interpolate_rope": True}, "set interpolate_rope: false"),
    (OFFICIAL_V21, {"image_patch_embed": True, "interpolate_rope": True, "rope_interleave": False},
     r"V-JEPA 2\.1 checkpoint \(norms_block\.0\.\.3\): set rope_interleave: true"),
    (OFFICIAL_V21, {"image_patch_embed": True}, "set interpolate_rope: true"),
])
def test_rope_settings_that_contradict_the_checkpoint_version_are_refused(keys, settings, error):
    """RoPE has no weights: a wrong setting passes the key checks, so the version decides."""
    checkpoint = {"target_encoder": official_state(keys)}
    encoder = VisionTransformer(size="tiny", depth=2, **settings)
    with pytest.raises(CheckpointMismatch, match=error):
        load_official_encoder(encoder, checkpoint)
    assert not torch.equal(encoder.blocks[0].attn.qkv.weight, checkpoint["target_encoder"]["module.backbone.blocks.0.attn.qkv.weight"])
    report = load_official_encoder(encoder, checkpoint, check_rope=False)  # an explicit opt-out loads
    assert report.rope_check == "not checked (allow_rope_mismatch)"
    assert torch.equal(encoder.blocks[0].attn.qkv.weight, checkpoint["target_encoder"]["module.backbone.blocks.0.attn.qkv.weight"])


def test_a_jepa_lit_export_is_checked_against_its_recorded_settings():
    """jepa-lit always exports the 2.1 layout; the encoder config it records says how its RoPE trained."""
    from jepa_lit.module import JEPAModule

    module = JEPAModule(tiny(rope_interleave=False, interpolate_rope=False), predictor_width=32,
                        predictor_depth=1, predictor_heads=2)
    exported = export_official(module)
    assert exported["jepa_lit_encoder_config"]["rope_interleave"] is False
    report = load_official_encoder(tiny(rope_interleave=False, interpolate_rope=False), exported)
    assert report.rope_check.startswith("consistent with a jepa-lit export")
    with pytest.raises(CheckpointMismatch, match="jepa-lit export whose encoder trained with rope_interleave: false"):
        load_official_encoder(tiny(), exported)


def test_official_eval_encoder_records_the_entry_and_the_load_report(tmp_path):
    from jepa_lit.eval.checkpoint import load_official_eval_encoder

    states = {name: official_state(OFFICIAL_V21, seed) for seed, name in enumerate(("ema_encoder", "target_encoder", "encoder"))}
    path = tmp_path / "vjepa2_1_tiny.pt"
    torch.save({**states, "predictor": {}}, path)
    qkv = "module.backbone.blocks.0.attn.qkv.weight"

    frozen = load_official_eval_encoder(str(path), V21_TINY)
    described = frozen.describe()
    assert described["used"] == "official" and "'ema_encoder' entry, V-JEPA 2.1 layout" in described["description"]
    assert described["load_report"]["entry"] == "ema_encoder" and described["load_report"]["num_loaded"] == len(OFFICIAL_V21)
    assert described["load_report"]["kept_initial"] == [] and described["load_report"]["ignored"] == []
    assert torch.equal(frozen.encoder.blocks[0].attn.qkv.weight, states["ema_encoder"][qkv])

    frozen = load_official_eval_encoder(str(path), {**V21_TINY, "pretrained_entry": "encoder"})  # honoured
    assert frozen.describe()["load_report"]["entry"] == "encoder" and frozen.target_mode == "online"
    assert torch.equal(frozen.encoder.blocks[0].attn.qkv.weight, states["encoder"][qkv])
    assert "pretrained_entry" not in frozen.encoder_config

    with pytest.raises(CheckpointMismatch, match="set interpolate_rope: true"):
        load_official_eval_encoder(str(path), {**V21_TINY, "interpolate_rope": False})
    frozen = load_official_eval_encoder(str(path), {**V21_TINY, "interpolate_rope": False, "allow_rope_mismatch": True})
    assert frozen.describe()["load_report"]["rope_check"] == "not checked (allow_rope_mismatch)"
    assert "allow_rope_mismatch" not in frozen.encoder_config


def test_pretrained_in_a_fit_config_can_opt_out_of_the_rope_check(tmp_path):
    """encoder.init_args.pretrained loads through the same check; allow_rope_mismatch (an encoder
    argument, so reachable from YAML) lets e.g. a pre-0.2 jepa-lit export trained without interpolation load."""
    source = tiny(interpolate_rope=False)  # what an older export of a smoke run looks like: 2.1 layout, no record
    path = tmp_path / "old_export.pt"
    torch.save(official_v21_checkpoint(source), path)
    with pytest.raises(CheckpointMismatch, match="written before 0.2.0 .* does not record its settings"):
        tiny(interpolate_rope=False, pretrained=str(path))
    loaded = tiny(interpolate_rope=False, pretrained=str(path), allow_rope_mismatch=True)
    assert torch.equal(loaded.blocks[0].attn.qkv.weight, source.blocks[0].attn.qkv.weight)


@pytest.mark.parametrize("mode", ["shared", "per_generator"])
def test_predictor_weights_export_and_load_with_either_mask_token_setting(mode):
    from jepa_lit.models.official import load_official_predictor
    from jepa_lit.module import JEPAModule

    module = JEPAModule(tiny(), predictor_width=32, predictor_depth=1, predictor_heads=2, mask_tokens=mode)
    with torch.no_grad():
        for token in module.predictor.mask_tokens:
            token.normal_()
    exported = export_official(module)["predictor"]
    assert {f"module.backbone.mask_tokens.{i}" for i in range(2)} <= set(exported)  # the official count
    if mode == "shared":
        assert torch.all(exported["module.backbone.mask_tokens.1"] == 0)  # the release's untrained token
    for target_mode in ("shared", "per_generator"):
        other = JEPAModule(tiny(), predictor_width=32, predictor_depth=1, predictor_heads=2, mask_tokens=target_mode)
        report = load_official_predictor(other.predictor, {"predictor": exported})
        assert torch.equal(other.predictor.mask_tokens[0], module.predictor.mask_tokens[0])
        assert torch.equal(other.predictor.predictor_proj.weight, module.predictor.predictor_proj.weight)
        assert report.ignored == (["mask_tokens.1"] if target_mode == "shared" else [])
