"""Exercises of notebook 03 (the U-Net): its forward pass with skip connections, and the L1 loss."""

from __future__ import annotations

import torch

from tpsep.exercises import CheckFailed, compare, register
from tpsep.losses import l1_mask_loss
from tpsep.models.unet import UNet, UNetConfig


def unet_forward(model: UNet, mixture_mag: torch.Tensor) -> torch.Tensor:
    """Reference: the mask of ``model`` for ``mixture_mag (batch, freq, frames)`` (what ``model(x)`` does)."""
    return model(mixture_mag)


def _random_unet(rng) -> tuple[UNet, torch.Tensor]:
    """A small U-Net with random weights *and* random BatchNorm statistics, in eval mode."""
    depth = int(rng.integers(2, 5))
    config = UNetConfig(depth=depth, channels=int(rng.choice([2, 4])), max_channels=16)
    torch.manual_seed(int(rng.integers(2 ** 31)))
    model = UNet(config, verbose=False)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    model.eval()  # no dropout, BatchNorm uses its running statistics: a deterministic function
    factor = 2 ** depth
    x = torch.rand(int(rng.integers(1, 4)), factor * int(rng.integers(1, 3)), factor * int(rng.integers(1, 3)))
    return model, x


def _test_unet_forward(attempt, reference, rng) -> None:
    model, x = _random_unet(rng)
    with torch.no_grad():
        expected = reference(model, x)
        got = attempt(model, x.clone())
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"expected a torch tensor (the mask), got {type(got).__name__}")
    if got.shape != expected.shape:
        raise CheckFailed(f"wrong shape: the mask should have the input's shape {tuple(x.shape)}, got {tuple(got.shape)}"
                          " (did you add the channel axis with unsqueeze(1) and remove it at the end?)")
    if float(got.min()) < 0 or float(got.max()) > 1:
        raise CheckFailed("the mask has values outside [0, 1]: did you apply the sigmoid at the end?")
    compare(got, expected, atol=1e-5, rtol=1e-4, where=f"mask of a depth-{model.config.depth} U-Net")


register("03.unet_forward", reference=unet_forward, test=_test_unet_forward,
         hint="keep every encoder output in a list; the decoder's first block takes the last one alone, "
              "each later block takes torch.cat([h, skip], dim=1) with the skips in reverse order; sigmoid at the end")


def _loss_inputs(rng):
    shape = (int(rng.integers(1, 4)), int(rng.integers(4, 40)), int(rng.integers(4, 20)))
    mask, mixture, target = (torch.from_numpy(rng.random(shape)).float() for _ in range(3))
    return (mask, 3 * mixture, target), {}


register("03.l1_mask_loss", reference=l1_mask_loss, make_inputs=_loss_inputs,
         hint="the loss compares the masked mixture with the target: mean of |mask * X - Y| over every bin",
         atol=1e-6, rtol=1e-5)
