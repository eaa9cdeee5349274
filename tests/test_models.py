import math

import pytest
import torch

from jepa_lit.models import Predictor, VisionTransformer, vit_sizes
from jepa_lit.models.positions import apply_rope, rope_coordinates, rope_tables, sincos_3d, token_coordinates
from jepa_lit.models.vit import hierarchical_layers


@pytest.mark.parametrize("size", sorted(vit_sizes))
def test_encoder_shapes_every_size(size):
    width, depth, heads = vit_sizes[size]
    with torch.device("meta"):  # full-size weights without allocating them
        encoder = VisionTransformer(size=size)
        clip = torch.empty(2, 3, 4, 32, 32)
        assert encoder(clip).shape == (2, 2 * 2 * 2, width)
        assert encoder(clip, hierarchical=True).shape == (2, 8, 4 * width)
        idx = torch.tensor([[0, 3, 5], [1, 2, 7]])
        assert encoder(clip, token_idx=idx, hierarchical=True).shape == (2, 3, 4 * width)
    assert encoder.depth == depth and encoder.num_heads == heads
    assert len(encoder.norms_block) == 4 and encoder.levels[-1] == depth - 1


def test_hierarchical_layers_match_study():
    assert hierarchical_layers(12, 4) == [2, 5, 8, 11]
    assert hierarchical_layers(24, 4) == [5, 11, 17, 23]


def test_parameter_names_follow_official_code():
    names = set(dict(VisionTransformer(size="tiny", depth=4).named_parameters()))
    for key in [
        "patch_embed.proj.weight", "blocks.0.norm1.weight", "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias",
        "blocks.0.attn.proj.weight", "blocks.0.norm2.bias", "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.weight",
        "norms_block.3.weight", "video_mod_embed", "img_mod_embed",
    ]:
        assert key in names, key
    assert VisionTransformer(size="tiny", depth=2).patch_embed.proj.weight.shape == (192, 3, 2, 16, 16)
    sincos = VisionTransformer(size="tiny", depth=2, positions="sincos", num_frames=4, img_size=32)
    assert sincos.pos_embed.shape == (1, 8, 192) and not sincos.pos_embed.requires_grad


def test_last_level_is_the_evaluation_output():
    encoder = VisionTransformer(size="tiny", depth=4).eval()
    clip = torch.randn(1, 3, 4, 32, 32)
    hier = encoder(clip, hierarchical=True)
    assert torch.allclose(hier[..., -192:], encoder(clip), atol=1e-6)


def test_masked_encoding_equals_gather_only_for_rope_positions():
    """Encoding a subset uses the subset's true positions: a single kept token's output does not
    depend on which other tokens are dropped only through attention, so check the position path:
    one token alone gives the same result whichever index list it came from."""
    encoder = VisionTransformer(size="tiny", depth=2).eval()
    clip = torch.randn(1, 3, 4, 32, 32)
    a = encoder(clip, token_idx=torch.tensor([[5]]))
    b = encoder(clip, token_idx=torch.tensor([[5]]))
    c = encoder(clip, token_idx=torch.tensor([[6]]))
    assert torch.allclose(a, b) and not torch.allclose(a, c)


def test_image_patch_embed_for_single_frames():
    encoder = VisionTransformer(size="tiny", depth=2, image_patch_embed=True)
    assert encoder(torch.randn(2, 3, 1, 32, 32)).shape == (2, 4, 192)


def test_bad_input_sizes_name_the_problem():
    encoder = VisionTransformer(size="tiny", depth=2)
    with pytest.raises(ValueError, match="tubelet"):
        encoder(torch.randn(1, 3, 3, 32, 32))
    with pytest.raises(ValueError, match="patch size"):
        encoder(torch.randn(1, 3, 4, 40, 32))
    with pytest.raises(ValueError, match="size 'huge'"):
        VisionTransformer(size="huge")


def test_rope_depends_only_on_relative_position():
    head_dim = 64
    q, k = torch.randn(head_dim), torch.randn(head_dim)

    def score(pos_q, pos_k):
        cos, sin = rope_tables(torch.tensor([pos_q, pos_k], dtype=torch.float), head_dim)
        rq = apply_rope(q.view(1, 1, 1, -1), cos[0], sin[0])
        rk = apply_rope(k.view(1, 1, 1, -1), cos[1], sin[1])
        return (rq * rk).sum()

    base = score([1, 2, 3], [4, 0, 6])
    shifted = score([3, 7, 4], [6, 5, 7])  # both shifted by (2, 5, 1)
    assert torch.allclose(base, shifted, atol=1e-4)
    assert not torch.allclose(base, score([1, 2, 3], [4, 1, 6]), atol=1e-3)


def test_rope_tables_layout_and_v2_quirk():
    coords = torch.tensor([[2.0, 0.0, 0.0]])
    cos, sin = rope_tables(coords, head_dim=32)  # 10 dims per axis, 2 pass through
    omega = 1.0 / 10000 ** (torch.arange(5) / 5.0)
    assert torch.allclose(sin[0, :10], torch.sin(2 * omega).repeat_interleave(2))
    assert torch.all(sin[0, 10:30] == 0) and torch.all(cos[0, 30:] == 1) and torch.all(sin[0, 30:] == 0)
    _, sin_v2 = rope_tables(coords, head_dim=32, interleave=False)
    assert torch.allclose(sin_v2[0, :10], torch.sin(2 * omega).repeat(2))


def test_token_coordinates_raster_order():
    coords = token_coordinates(torch.tensor([0, 1, 3, 6, 13]), (2, 2, 3))
    assert coords.tolist() == [[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [2, 0, 1]]


def test_sincos_3d_matches_formula():
    table = sincos_3d(12, (2, 3, 4))  # uniform power: 4 channels per axis
    t, h, w = 1, 2, 3
    index = t * 12 + h * 4 + w
    expected = []
    for pos in (t, h, w):
        omega = [1.0 / 10000 ** (i / 2.0) for i in range(2)]
        expected += [math.sin(pos * o) for o in omega] + [math.cos(pos * o) for o in omega]
    assert torch.allclose(table[index], torch.tensor(expected), atol=1e-6)


def test_predictor_shapes_and_zero_mask_tokens():
    predictor = Predictor(encoder_dim=32, width=16, depth=2, num_heads=2, num_mask_tokens=2)
    assert all(torch.all(t == 0) for t in predictor.mask_tokens)
    context = torch.randn(2, 3, 128)
    pred, pred_ctx = predictor(context, torch.tensor([[0, 1, 2]] * 2), torch.tensor([[4, 5, 6, 7]] * 2), (2, 2, 2), 1)
    assert pred.shape == (2, 4, 128) and pred_ctx.shape == (2, 3, 128)
    names = set(dict(predictor.named_parameters()))
    assert {"predictor_embed.0.weight", "predictor_embed.2.weight", "mask_tokens.1", "predictor_blocks.1.attn.qkv.weight",
            "predictor_norm.weight", "predictor_proj.weight", "predictor_proj_context.weight"} <= names
    with pytest.raises(IndexError):
        predictor(context, torch.tensor([[0, 1, 2]] * 2), torch.tensor([[4, 5]] * 2), (2, 2, 2), 2)


def test_activation_checkpointing_gives_same_gradients():
    torch.manual_seed(0)
    plain = VisionTransformer(size="tiny", depth=2)
    ckpt = VisionTransformer(size="tiny", depth=2, activation_checkpointing=True)
    ckpt.load_state_dict(plain.state_dict())
    clip = torch.randn(1, 3, 4, 32, 32)
    plain(clip, hierarchical=True).square().sum().backward()
    ckpt(clip, hierarchical=True).square().sum().backward()
    for (name, a), b in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(a.grad, b.grad, atol=1e-5), name


@pytest.mark.parametrize("interleave", [True, False])
def test_fused_rotation_equals_the_reference_rope(interleave):
    from jepa_lit.models.positions import rope_rotation, rotate

    coords = token_coordinates(torch.tensor([[0, 5, 17, 40]]), (4, 4, 4))
    x = torch.randn(1, 3, 4, 64)
    cos, sin = rope_tables(coords, 64, interleave)
    expected = apply_rope(x, cos.unsqueeze(1), sin.unsqueeze(1))
    rotation = rope_rotation(coords, 64, interleave)
    rotation = tuple(t.unsqueeze(1) for t in rotation) if isinstance(rotation, tuple) else rotation.unsqueeze(1)
    assert torch.allclose(rotate(x, rotation), expected, atol=1e-6)


def test_interpolated_rope_positions_span_the_pretraining_grid():
    """V-JEPA 2.1's interpolate_rope: rows and columns of any grid map onto 0..15; time is untouched."""
    grid = (2, 7, 5)
    last = torch.tensor([2 * 7 * 5 - 1])
    assert rope_coordinates(last, grid).tolist() == [[1.0, 6.0, 4.0]]
    assert rope_coordinates(last, grid, interpolate=True).tolist() == [[1.0, 15.0, 15.0]]
    middle_row = torch.tensor([3 * 5])  # t 0, row 3 of 0..6 -> 7.5
    assert rope_coordinates(middle_row, grid, interpolate=True).tolist() == [[0.0, 7.5, 0.0]]
    # patch 14: V-JEPA 2.1 pretrained at 252 px, an 18 x 18 grid
    assert rope_coordinates(last, grid, interpolate=True, patch_size=14).tolist() == [[1.0, 17.0, 17.0]]


def test_predictor_takes_the_encoders_rope_settings():
    from jepa_lit.module import JEPAModule

    for interpolate in (False, True):
        encoder = VisionTransformer(size="tiny", depth=2, num_frames=4, img_size=32, interpolate_rope=interpolate,
                                    rope_interleave=not interpolate)
        module = JEPAModule(encoder, predictor_width=32, predictor_depth=1, predictor_heads=2)
        assert (module.predictor.interpolate_rope, module.predictor.rope_interleave) == (interpolate, not interpolate)
