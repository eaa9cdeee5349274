"""Rotary embedding keeps q and k in their input dtype on both paths (complex phasors, and the cos / sin tables
that compiled graphs and V-JEPA 2's layout use): under bf16-true q, k and v reach attention in one dtype."""

import pytest
import torch

from jepa_lit.models.positions import rope_coordinates, rope_rotation, rope_tables, rotate


@pytest.mark.parametrize("interleave, path", [(True, "phasors"), (True, "tables"), (False, "tables")])
def test_rotated_q_k_keep_bf16(interleave, path):
    coords = rope_coordinates(torch.arange(8).unsqueeze(0), (2, 2, 2))
    # "tables": what a compiled forward uses (inductor generates no code for complex ops) and V-JEPA 2's layout
    rotation = rope_rotation(coords, 48, interleave) if path == "phasors" else rope_tables(coords, 48, interleave)
    assert isinstance(rotation, tuple) == (path == "tables")
    with_heads = tuple(r.unsqueeze(-3) for r in rotation) if path == "tables" else rotation.unsqueeze(-3)
    x = torch.randn(1, 3, 8, 48, generator=torch.Generator().manual_seed(0))
    rotated = rotate(x.bfloat16(), with_heads)
    assert rotated.dtype == torch.bfloat16
    reference = rotate(x, with_heads)
    assert reference.dtype == torch.float32
    assert torch.allclose(rotated.float(), reference, atol=0.05, rtol=0.02)
    assert not torch.allclose(reference, x, atol=1e-2)  # it did rotate
