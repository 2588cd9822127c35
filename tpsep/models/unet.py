"""The singing-voice U-Net of Jansson et al. (ISMIR 2017), in one file.

    A. Jansson, E. Humphrey, N. Montecchio, R. Bittner, A. Kumar, T. Weyde,
    "Singing voice separation with deep U-Net convolutional networks", ISMIR 2017.

The network reads a magnitude spectrogram patch X of the mixture, (512 bins x 128
frames at 8192 Hz, n_fft 1024, hop 768) and returns a soft mask M in [0, 1] of the
same shape; the estimate of the source is M * X. Every encoder level halves both
axes (5x5 convolution, stride 2), every decoder level doubles them back and
concatenates the encoder's output of the same size (the skip connection), so the
fine time-frequency detail that the bottleneck loses comes back for the mask.

    encoder level i:  Conv2d(5x5, stride 2) -> BatchNorm -> LeakyReLU(0.2)
    decoder level i:  ConvTranspose2d(5x5, stride 2) -> BatchNorm -> ReLU (-> Dropout(0.5), first 3)
    last decoder:     ConvTranspose2d(5x5, stride 2) -> sigmoid = the mask

The paper: depth 6, channels 16, 32, 64, 128, 256, 512. The course default is
depth 6 with channels capped at 128, small enough to train on a laptop CPU.

:class:`UNet` is the network that notebook 03 trains on patches. :class:`UNetSeparator`
wraps it with its front end, as open-unmix's ``Separator`` wraps its model: from a
mixture waveform at 8192 Hz to the target and the rest, through the STFT, the
512-bin crop, 128-frame patches and their stitching, and the inverse STFT with the
mixture's phase (notebook 04).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from tpsep import masks, spectral
from tpsep.models import count_parameters, mono_channels, parameter_report


@dataclass
class UNetConfig:
    depth: int = 6              # number of encoder (and decoder) levels; each halves freq and time
    channels: int = 16          # channels of the first encoder level; doubled at every level ...
    max_channels: int = 128     # ... up to this cap (the paper: 512)
    kernel_size: int = 5
    leaky_slope: float = 0.2    # LeakyReLU slope in the encoder
    dropout: float = 0.5        # on the first `dropout_layers` decoder levels
    dropout_layers: int = 3
    mask_bias: float = 0.0      # initial bias before the sigmoid: 0 -> masks start at 0.5
    # the front end (Jansson et al. 2017): 8192 Hz, n_fft 1024 (513 bins, 512 seen), hop 768, 128-frame patches
    rate: int = 8192
    n_fft: int = 1024
    hop: int = 768
    patch_frames: int = 128
    target: str = "vocals"      # what the mask extracts; the separator's second source is the rest
    refine: bool = False        # Wiener-like refinement of the mask at separation time (tpsep.masks.wiener_refine)

    def level_channels(self) -> list[int]:
        """Output channels of each encoder level, e.g. [16, 32, 64, 128, 128, 128]."""
        return [min(self.channels * 2 ** i, self.max_channels) for i in range(self.depth)]


PAPER = UNetConfig(depth=6, channels=16, max_channels=512)  # Jansson et al. 2017: 9.82 M parameters here
COURSE = UNetConfig()                                       # the CPU-sized default


class EncoderBlock(nn.Module):
    """(batch, c_in, F, T) -> (batch, c_out, F/2, T/2)."""

    def __init__(self, c_in: int, c_out: int, config: UNetConfig):
        super().__init__()
        k = config.kernel_size
        self.conv = nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2)
        self.norm = nn.BatchNorm2d(c_out)
        self.act = nn.LeakyReLU(config.leaky_slope)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.conv(x)))


class DecoderBlock(nn.Module):
    """(batch, c_in, F, T) -> (batch, c_out, 2F, 2T). The last block has no norm/ReLU: it makes the mask logits."""

    def __init__(self, c_in: int, c_out: int, config: UNetConfig, dropout: float = 0.0, last: bool = False):
        super().__init__()
        k = config.kernel_size
        # padding k//2 and output_padding 1 make the output exactly twice the input size
        self.conv = nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=k // 2, output_padding=1)
        self.last = last
        if not last:
            self.norm = nn.BatchNorm2d(c_out)
            self.act = nn.ReLU()
            self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        if self.last:
            return x
        return self.drop(self.act(self.norm(x)))


class UNet(nn.Module):
    """Mask-estimating U-Net.

    Input: mixture magnitude ``(batch, freq, frames)``, e.g. ``(8, 512, 128)``; freq
    and frames must be divisible by ``2 ** depth``.
    Output: mask ``(batch, freq, frames)`` in [0, 1]; the source estimate is ``mask * input``.
    """

    def __init__(self, config: UNetConfig = COURSE, verbose: bool = True):
        super().__init__()
        self.config = config
        widths = config.level_channels()
        ins = [1] + widths[:-1]
        self.encoder = nn.ModuleList(EncoderBlock(c_in, c_out, config) for c_in, c_out in zip(ins, widths))
        # decoder level j goes from encoder level (depth-1-j) back up to level (depth-2-j);
        # from the second one on, its input is [previous decoder output, encoder skip] concatenated
        self.decoder = nn.ModuleList()
        for j in range(config.depth):
            level = config.depth - 1 - j
            c_in = widths[level] if j == 0 else 2 * widths[level]
            c_out = 1 if level == 0 else widths[level - 1]
            dropout = config.dropout if j < config.dropout_layers else 0.0
            self.decoder.append(DecoderBlock(c_in, c_out, config, dropout, last=(level == 0)))
        nn.init.constant_(self.decoder[-1].conv.bias, config.mask_bias)
        if verbose:
            print(parameter_report(self, f"depth {config.depth}, channels {widths}"))

    def num_parameters(self) -> int:
        return count_parameters(self)

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError that says what is wrong with the shape of ``x``."""
        if x.ndim != 3:
            raise ValueError(f"U-Net expects a magnitude batch (batch, freq, frames), got shape {tuple(x.shape)}")
        factor = 2 ** self.config.depth
        for axis, size in (("freq", x.shape[1]), ("frames", x.shape[2])):
            if size % factor:
                hint = (f" ({size} bins? crop the Nyquist bin: tpsep.spectral.crop_bins)"
                        if axis == "freq" and size % 2 else "")
                raise ValueError(
                    f"U-Net of depth {self.config.depth} halves each axis {self.config.depth} times, so {axis} "
                    f"must be a multiple of {factor}; got {size} in shape {tuple(x.shape)}{hint}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        h = x.unsqueeze(1)                       # (batch, 1, F, T)
        skips = []
        for block in self.encoder:
            h = block(h)
            skips.append(h)                      # level i: (batch, widths[i], F / 2^(i+1), T / 2^(i+1))
        h = self.decoder[0](skips[-1])           # the bottleneck goes up without a skip
        for block, skip in zip(self.decoder[1:], reversed(skips[:-1])):
            h = block(torch.cat([h, skip], dim=1))
        return torch.sigmoid(h.squeeze(1))      # (batch, F, T)


def residual_name(target: str) -> str:
    """What is left once ``target`` is taken out: "accompaniment" for vocals, "rest" otherwise."""
    return "accompaniment" if target == "vocals" else "rest"


class UNetSeparator(nn.Module):
    """The U-Net with its front end: mixture waveform in, target and rest out.

    Input: mixture ``(batch, channels, samples)`` at ``config.rate`` (8192 Hz); each channel
    is separated on its own. Output: ``(batch, 2, channels, samples)``: the target
    (``sources[0]``, e.g. vocals) and the rest (``sources[1]``, the mixture minus the target).

    Steps: pad to whole hops (so the inverse STFT returns every sample); STFT (n_fft 1024,
    hop 768): ``(513, frames)``; drop the Nyquist bin; cut the magnitude into 128-frame
    patches that overlap by half; mask each patch with the U-Net; stitch the masks (a
    cross-fade); give the Nyquist bin its neighbour's mask; multiply the mixture STFT
    (keeping its phase); inverse STFT.
    """

    def __init__(self, config: UNetConfig = COURSE, unet: UNet | None = None, verbose: bool = False):
        super().__init__()
        self.config = config
        if config.n_fft // 2 % 2 ** config.depth:
            raise ValueError(f"n_fft={config.n_fft} gives {config.n_fft // 2} bins once the Nyquist bin is dropped, "
                             f"not a multiple of 2**depth = {2 ** config.depth}")
        self.unet = unet if unet is not None else UNet(config, verbose=verbose)
        rest = residual_name(config.target)
        self.sources = (config.target, rest)
        self.residual_source = rest   # tpsep.separate recomputes it at the input's rate: mixture - target

    def mask(self, mixture_mag: torch.Tensor, batch_size: int = 8) -> torch.Tensor:
        """The U-Net's mask for whole spectrograms, patch by patch.

        Args:
            mixture_mag: ``(items, 512, frames)`` magnitudes, the Nyquist bin already dropped.

        Returns:
            ``(items, 512, frames)`` in [0, 1].
        """
        bins = self.config.n_fft // 2
        if mixture_mag.ndim != 3 or mixture_mag.shape[-2] != bins:
            raise ValueError(f"UNetSeparator.mask expects (items, {bins}, frames) magnitudes (crop the Nyquist bin "
                             f"with tpsep.spectral.crop_bins), got shape {tuple(mixture_mag.shape)}")
        frames, hop_frames = self.config.patch_frames, self.config.patch_frames // 2
        device = next(self.unet.parameters()).device
        stitched = []
        for mag in mixture_mag:
            patches = spectral.make_patches(mag.float(), frames, hop_frames)
            outputs = [self.unet(chunk.to(device)).cpu() for chunk in patches.split(batch_size)]
            stitched.append(spectral.stitch_patches(torch.cat(outputs), hop_frames, mag.shape[-1]))
        return torch.stack(stitched)

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        c = self.config
        flat, (batch, channels) = mono_channels(mixture, "UNetSeparator")
        samples = flat.shape[-1]
        padded = nn.functional.pad(flat, (0, -samples % c.hop)).cpu()
        X = spectral.stft(padded, n_fft=c.n_fft, hop=c.hop)                       # (items, 513, frames)
        mask = self.mask(spectral.crop_bins(X.abs(), c.n_fft // 2))
        if c.refine:
            mask = masks.wiener_refine(mask)
        target = spectral.reconstruct(mask, X, padded.shape[-1], c.n_fft, c.hop)[..., :samples]
        target = target.to(mixture.device).view(batch, channels, samples)
        return torch.stack([target, mixture - target], dim=1)                     # (batch, 2, channels, samples)
