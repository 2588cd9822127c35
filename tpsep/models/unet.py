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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn


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
            print(f"U-Net: depth {config.depth}, channels {widths}, {self.num_parameters():,} parameters")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError that says what is wrong with the shape of ``x``."""
        if x.ndim != 3:
            raise ValueError(f"U-Net expects a magnitude batch (batch, freq, frames), got shape {tuple(x.shape)}")
        factor = 2 ** self.config.depth
        for axis, size in (("freq", x.shape[1]), ("frames", x.shape[2])):
            if size % factor:
                hint = " (513 bins? crop the Nyquist bin: tpsep.spectral.crop_bins)" if axis == "freq" else ""
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


def build_model(model_config: dict | None = None, verbose: bool = False) -> UNet:
    """Rebuild a U-Net from the plain dict stored in a checkpoint (see :func:`tpsep.train.load_model`)."""
    return UNet(UNetConfig(**(model_config or {})), verbose=verbose)


# ---- the recipe behind `tpsep train unet` (see tpsep.train) ----

def training_recipe(args):
    """Model, loss and data for ``tpsep train unet``.

    ``args``: the parsed command line; uses ``dataset`` (default "music"), ``batch_size``,
    ``seed``, ``num_workers`` and ``options`` (``--option KEY=VALUE``): any
    :class:`UNetConfig` field (``depth``, ``channels``, ``max_channels``, ``mask_bias``, ...),
    ``target`` (default "vocals") and ``patches_per_epoch`` (random patches per epoch).

    Returns:
        ``(model, loss_fn, train_loader, valid_loader, extra)``; ``extra`` says how to
        rebuild the model and what it separates.
    """
    from dataclasses import asdict, fields

    from torch.utils.data import DataLoader

    from tpsep import data
    from tpsep.losses import l1_mask_loss

    options = dict(getattr(args, "options", None) or {})
    config_keys = {f.name for f in fields(UNetConfig)}
    config = UNetConfig(**{k: options.pop(k) for k in list(options) if k in config_keys})
    target = options.pop("target", "vocals")
    dataset_options = options  # the rest goes to the patch dataset (e.g. patches_per_epoch)
    dataset = getattr(args, "dataset", None) or "music"

    seed = getattr(args, "seed", 0)
    train_set = data.SpectrogramPatchDataset(data.load_dataset(dataset, split="train"), target=target,
                                             seed=seed, **dataset_options)
    valid_set = data.SpectrogramPatchDataset(data.load_dataset(dataset, split="valid"), target=target,
                                             random=False)
    workers = getattr(args, "num_workers", 0) or 0
    train_loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True,
                              num_workers=workers)
    valid_loader = DataLoader(valid_set, batch_size=args.batch_size, shuffle=False, num_workers=workers)
    model = UNet(config)

    def loss_fn(model, batch):
        mixture_mag, target_mag = batch             # (batch, 512, 128) each, raw magnitudes
        return l1_mask_loss(model(mixture_mag), mixture_mag, target_mag)

    extra = {"model_name": "unet", "model_config": asdict(config), "target": target, "dataset": str(dataset),
             "rate": 8192, "n_fft": 1024, "hop": 768}
    return model, loss_fn, train_loader, valid_loader, extra
