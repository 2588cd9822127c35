"""The L1 loss on the masked magnitude, mean |mask * X - Y|."""

import numpy as np
import pytest
import torch

from tpsep.losses import l1_mask_loss


def test_matches_the_formula():
    rng = np.random.default_rng(0)
    mask, x, y = (rng.random((2, 8, 5)) for _ in range(3))
    expected = np.mean(np.abs(mask * x - y))
    got = l1_mask_loss(*(torch.from_numpy(a) for a in (mask, x, y)))
    assert got.ndim == 0
    assert np.isclose(float(got), expected)


def test_zero_for_the_ideal_mask_and_positive_otherwise():
    x = torch.rand(3, 16, 4) + 0.1
    y = 0.3 * x
    assert float(l1_mask_loss(torch.full_like(x, 0.3), x, y)) == pytest.approx(0.0, abs=1e-7)
    assert float(l1_mask_loss(torch.full_like(x, 0.5), x, y)) == pytest.approx(float((0.2 * x).mean()), rel=1e-5)


def test_is_not_a_loss_on_the_mask():
    """Errors in silent bins cost nothing: the loss weighs the mask by the mixture."""
    x = torch.tensor([[[0.0, 2.0]]])
    y = torch.tensor([[[0.0, 1.0]]])
    wrong_where_silent = torch.tensor([[[1.0, 0.5]]])
    assert float(l1_mask_loss(wrong_where_silent, x, y)) == 0.0


def test_gradient_flows_to_the_mask():
    mask = torch.full((1, 4, 4), 0.5, requires_grad=True)
    x = torch.ones(1, 4, 4)
    l1_mask_loss(mask, x, torch.zeros(1, 4, 4)).backward()
    assert torch.allclose(mask.grad, torch.full((1, 4, 4), 1 / 16))


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same shape"):
        l1_mask_loss(torch.rand(1, 512, 128), torch.rand(1, 513, 128), torch.rand(1, 512, 128))
