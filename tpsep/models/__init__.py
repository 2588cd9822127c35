"""One readable file per network: ``unet`` (Jansson et al. 2017), ``convtasnet`` (Luo & Mesgarani 2019), ...

Every model file holds the same four things and nothing else: a config dataclass in
the paper's notation (front end included: sample rate, STFT settings), the blocks,
the model, and its parameter counts. Every trainable model is used through a
*separator*: a ``torch.nn.Module`` whose ``forward`` takes a mixture waveform
``(batch, channels, samples)`` at the config's ``rate`` and returns the sources
``(batch, sources, channels, samples)``.

Recipes (which data, which loss) live in :mod:`tpsep.recipes`; the table of model
names is :data:`tpsep.recipes.MODELS`.
"""

from __future__ import annotations

import torch


def count_parameters(model: torch.nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def parameter_report(model: torch.nn.Module, details: str = "") -> str:
    """One line such as ``"ConvTasNet: 0.32M parameters (N 64, L 16, ...)"``: what a model prints when built."""
    count = count_parameters(model)
    size = f"{count / 1e6:.2f}M" if count >= 10_000 else f"{count:,}"
    return f"{type(model).__name__}: {size} parameters" + (f" ({details})" if details else "")


def mono_channels(mixture: torch.Tensor, owner: str) -> tuple[torch.Tensor, tuple]:
    """Fold the channels of a mixture ``(batch, channels, samples)`` into the batch, for a model
    that separates each channel on its own: returns ``(batch * channels, samples)`` and the
    ``(batch, channels)`` to unfold with. Any other layout is a clear error."""
    if not isinstance(mixture, torch.Tensor):
        raise TypeError(f"{owner} expects a torch tensor (batch, channels, samples), got {type(mixture).__name__}")
    if mixture.dim() != 3:
        raise ValueError(f"{owner} expects a mixture (batch, channels, samples), got shape {tuple(mixture.shape)}"
                         + (" (add the channel axis: x.unsqueeze(1))" if mixture.dim() == 2 else ""))
    batch, channels, samples = mixture.shape
    if channels > 8 and samples <= 8:
        raise ValueError(f"{owner}: shape {tuple(mixture.shape)} looks like (batch, samples, channels); "
                         "transpose the last two axes (x.transpose(1, 2))")
    return mixture.reshape(batch * channels, samples), (batch, channels)


def each_channel(separate_mono, mixture: torch.Tensor, sources: int, owner: str) -> torch.Tensor:
    """Run a single-channel network on every channel of ``mixture`` on its own.

    ``separate_mono``: ``(batch, samples) -> (batch, sources, samples)``. A mixture
    ``(batch, channels, samples)`` gives ``(batch, sources, channels, samples)``; the
    paper's mono view ``(batch, samples)`` gives ``(batch, sources, samples)``.
    """
    if isinstance(mixture, torch.Tensor) and mixture.dim() == 2:
        return separate_mono(mixture)
    flat, (batch, channels) = mono_channels(mixture, owner)
    return separate_mono(flat).view(batch, channels, sources, -1).transpose(1, 2)
