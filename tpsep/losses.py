"""Training losses.

The U-Net is trained on the *masked magnitude*, not on the mask: the loss
compares ``mask * X`` with the target magnitude ``Y``, so loud bins (where a
wrong mask costs audible energy) weigh more than silent ones, and no ideal mask
has to be made up where ``X`` is zero.
"""

from __future__ import annotations

import torch

# ---- magnitude losses (U-Net) ----


def l1_mask_loss(mask: torch.Tensor, mixture_mag: torch.Tensor, target_mag: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between the masked mixture and the target (Jansson et al. 2017).

    ``L = mean | mask * X - Y |``

    Args:
        mask: network output in [0, 1], ``(batch, freq, frames)``.
        mixture_mag: the mixture magnitude X the mask multiplies, same shape.
        target_mag: the source magnitude Y, same shape.

    Returns:
        a scalar tensor.
    """
    if not (mask.shape == mixture_mag.shape == target_mag.shape):
        raise ValueError(
            "l1_mask_loss needs mask, mixture and target of the same shape (batch, freq, frames); got "
            f"mask {tuple(mask.shape)}, mixture {tuple(mixture_mag.shape)}, target {tuple(target_mag.shape)}")
    return (mask * mixture_mag - target_mag).abs().mean()
