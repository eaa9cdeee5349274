"""The health callback's effective rank from Gram eigenvalues: the SVD's singular values and rank."""

import pytest
import torch

from jepa_lit.callbacks.health import effective_rank, singular_values


def svd_effective_rank(features: torch.Tensor) -> float:
    """The definition, as computed before: an SVD of the centred matrix."""
    singular = torch.linalg.svdvals(features.double() - features.double().mean(0, keepdim=True))
    p = singular / singular.sum()
    return float(torch.exp(-(p * torch.log(p.clamp_min(1e-12))).sum()))


@pytest.mark.parametrize("shape", [(40, 6), (6, 40), (12, 12)], ids=["tall", "wide", "square"])
def test_gram_singular_values_equal_the_svd(shape):
    features = torch.randn(*shape, generator=torch.Generator().manual_seed(1)) * torch.linspace(0.01, 3, shape[1])
    centred = features.double() - features.double().mean(0, keepdim=True)
    expected = torch.linalg.svdvals(centred)
    got = singular_values(features)
    assert torch.allclose(got[:len(expected)], expected, rtol=1e-6, atol=1e-9 * expected[0])
    assert effective_rank(features) == pytest.approx(svd_effective_rank(features), rel=1e-6)


def test_known_values():
    # Two orthogonal directions of equal spread: 2; one direction: 1; a centred 4 x 4 identity: 3 equal values.
    two = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])
    assert effective_rank(two) == pytest.approx(2.0, rel=1e-6)
    line = torch.arange(5.0).unsqueeze(1) * torch.tensor([[1.0, 2.0, -1.0]])
    assert effective_rank(line) == pytest.approx(1.0, rel=1e-6)
    assert effective_rank(torch.eye(4)) == pytest.approx(3.0, rel=1e-6)


def test_rank_deficient_fp32_features_agree_with_the_svd():
    low_rank = torch.randn(64, 3) @ torch.randn(3, 32)  # rank 3 in 32 columns, fp32 as the step's features
    assert effective_rank(low_rank) == pytest.approx(svd_effective_rank(low_rank), rel=1e-5)
