"""Conv-TasNet: separation in the time domain (Luo & Mesgarani, 2019).

Y. Luo and N. Mesgarani, "Conv-TasNet: Surpassing Ideal Time-Frequency
Magnitude Masking for Speech Separation", IEEE/ACM TASLP 27(8), 2019.

The model has three parts, in the paper's notation:

    encoder    N filters of length L samples, hop L/2, then ReLU: a learned,
               non-negative "spectrogram" w of shape (batch, N, frames)
    separator  a temporal convolutional network (TCN): a norm and a 1x1 conv
               to B channels, then R repeats of X dilated blocks (dilation
               1, 2, 4, ..., 2^(X-1)); each block goes B -> H channels, runs a
               depthwise convolution of kernel P, and goes back to B (residual
               path) and to Sc (skip path). The summed skips give C masks.
    decoder    a transposed convolution that overlap-adds N basis signals of
               length L back to a waveform, one per source.

Everything is a plain function of the config below; ``print(model)`` is short
and the constructor prints the parameter count. The model is its own separator:
``(batch, channels, samples)`` at ``config.rate`` in, ``(batch, C, channels, samples)``
out, each channel separated on its own. The paper's single-channel view,
``(batch, samples)`` in and ``(batch, C, samples)`` out, works too.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from tpsep import spectral
from tpsep.models import count_parameters, each_channel, parameter_report


@dataclass
class ConvTasNetConfig:
    N: int = 64  # encoder filters (basis signals)
    L: int = 16  # filter length in samples (hop L/2)
    B: int = 64  # bottleneck channels (residual path)
    H: int = 128  # channels inside a block
    Sc: int = 64  # skip-connection channels
    P: int = 3  # depthwise kernel size
    X: int = 6  # blocks per repeat (dilations 1 .. 2^(X-1))
    R: int = 2  # repeats
    C: int = 2  # number of sources
    norm: str = "gLN"  # "gLN" (global, non-causal) or "cLN" (cumulative, causal)
    causal: bool = False  # causal convolutions (pad on the left only)
    mask_activation: str = "sigmoid"  # "sigmoid" or "relu"
    rate: int = 8000  # the sample rate it separates at (wsj0-2mix: 8 kHz)


# Two configurations from the paper's table of hyperparameters, with the sizes it reports.
PAPER_BEST = ConvTasNetConfig(N=512, L=16, B=128, H=512, Sc=128, P=3, X=8, R=3)  # ~5.1M parameters
PAPER_SMALL = ConvTasNetConfig(N=128, L=40, B=128, H=256, Sc=128, P=3, X=7, R=2)  # ~1.5M parameters
# What the course trains on a laptop CPU in minutes (the defaults above).
COURSE = ConvTasNetConfig(N=64, L=16, B=64, H=128, Sc=64, P=3, X=6, R=2)


class ReceptiveField(NamedTuple):
    frames: int  # encoder frames that influence one output frame
    samples: int  # audio samples those frames span
    ms: float  # the same span in milliseconds


def receptive_field(config: ConvTasNetConfig, rate: int | None = None) -> ReceptiveField:
    """How much input one output frame can see.

    Each depthwise convolution of kernel P and dilation d adds (P - 1) * d frames,
    so the TCN sees ``1 + R * sum_{i<X} (P - 1) * 2**i`` encoder frames. Frames are
    L samples long and start every L/2 samples, so F frames span
    ``(F - 1) * L/2 + L`` samples.
    """
    frames = 1 + config.R * sum((config.P - 1) * 2**i for i in range(config.X))
    samples = (frames - 1) * (config.L // 2) + config.L
    return ReceptiveField(frames, samples, 1000.0 * samples / (rate or config.rate))


class GlobalLayerNorm(nn.Module):
    """gLN: normalise each utterance over channels AND time. Input/output (batch, channels, frames)."""

    def __init__(self, channels: int, eps: float = 1e-8):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(1, channels, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1))
        self.eps = eps

    def forward(self, x):
        mean = x.mean(dim=(1, 2), keepdim=True)
        var = ((x - mean) ** 2).mean(dim=(1, 2), keepdim=True)
        return self.gamma * (x - mean) / torch.sqrt(var + self.eps) + self.beta


class CumulativeLayerNorm(GlobalLayerNorm):
    """cLN: at frame k, normalise with statistics of frames 0..k only (so it stays causal).
    Input/output (batch, channels, frames). Same parameters as gLN; only the statistics differ."""

    def forward(self, x):
        channels, frames = x.shape[1], x.shape[2]
        count = channels * torch.arange(1, frames + 1, device=x.device, dtype=x.dtype)
        mean = x.sum(1).cumsum(-1) / count  # (batch, frames)
        mean_of_squares = (x**2).sum(1).cumsum(-1) / count
        var = (mean_of_squares - mean**2).clamp_min(0)  # rounding can make it slightly negative
        return self.gamma * (x - mean[:, None]) / torch.sqrt(var[:, None] + self.eps) + self.beta


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "gLN":
        return GlobalLayerNorm(channels)
    if kind == "cLN":
        return CumulativeLayerNorm(channels)
    raise ValueError(f"unknown norm {kind!r}; expected 'gLN' or 'cLN'")


class TCNBlock(nn.Module):
    """One 1-D convolutional block (drawn in the paper's Fig. 1).

    1x1 conv B -> H, PReLU, norm, depthwise conv (kernel P, dilation d), PReLU, norm,
    then two 1x1 convs: H -> B added to the input (residual) and H -> Sc (skip).
    Input (batch, B, frames) -> (residual (batch, B, frames), skip (batch, Sc, frames)).
    """

    def __init__(self, B, H, Sc, P, dilation, norm="gLN", causal=False):
        super().__init__()
        self.conv_in = nn.Conv1d(B, H, 1)
        self.prelu_in = nn.PReLU()
        self.norm_in = make_norm(norm, H)
        self.depthwise = nn.Conv1d(H, H, P, dilation=dilation, groups=H)
        self.prelu_out = nn.PReLU()
        self.norm_out = make_norm(norm, H)
        self.residual = nn.Conv1d(H, B, 1)
        self.skip = nn.Conv1d(H, Sc, 1)
        self.padding = (P - 1) * dilation  # keeps the number of frames unchanged
        self.causal = causal

    def forward(self, x):
        y = self.norm_in(self.prelu_in(self.conv_in(x)))
        # causal: all the padding on the left, so frame k never sees frame k+1
        left = self.padding if self.causal else self.padding // 2
        y = F.pad(y, (left, self.padding - left))
        y = self.norm_out(self.prelu_out(self.depthwise(y)))
        return x + self.residual(y), self.skip(y)


class ConvTasNet(nn.Module):
    """Conv-TasNet. Input mixture ``(batch, channels, samples)``: output ``(batch, C, channels, samples)``;
    or the paper's mono view, ``(batch, samples)``: output ``(batch, C, samples)``."""

    def __init__(self, config: ConvTasNetConfig = COURSE, verbose: bool = True):
        super().__init__()
        c = self.config = config
        if c.L % 2:
            raise ValueError(f"L must be even (the encoder hop is L/2), got L={c.L}")
        if c.mask_activation not in ("sigmoid", "relu"):
            raise ValueError(f"mask_activation must be 'sigmoid' or 'relu', got {c.mask_activation!r}")
        self.encoder = nn.Conv1d(1, c.N, c.L, stride=c.L // 2, bias=False)
        self.input_norm = make_norm(c.norm, c.N)
        self.bottleneck = nn.Conv1d(c.N, c.B, 1)
        self.blocks = nn.ModuleList(
            TCNBlock(c.B, c.H, c.Sc, c.P, dilation=2**x, norm=c.norm, causal=c.causal)
            for r in range(c.R)
            for x in range(c.X)
        )
        self.mask_prelu = nn.PReLU()
        self.mask_conv = nn.Conv1d(c.Sc, c.C * c.N, 1)
        self.decoder = nn.ConvTranspose1d(c.N, 1, c.L, stride=c.L // 2, bias=False)
        if verbose:
            print(parameter_report(self))

    def num_parameters(self) -> int:
        return count_parameters(self)

    def masks(self, w):
        """Separator: encoder output w (batch, N, frames) -> masks (batch, C, N, frames)."""
        x = self.bottleneck(self.input_norm(w))
        skips = 0
        for block in self.blocks:
            x, skip = block(x)
            skips = skips + skip
        m = self.mask_conv(self.mask_prelu(skips))
        m = torch.sigmoid(m) if self.config.mask_activation == "sigmoid" else F.relu(m)
        return m.view(w.shape[0], self.config.C, self.config.N, -1)

    def forward(self, mixture):
        return each_channel(self.separate_mono, mixture, self.config.C, "ConvTasNet")

    def separate_mono(self, mixture):
        """The paper's network: ``(batch, samples)`` -> ``(batch, C, samples)``."""
        batch, samples = mixture.shape
        hop = self.config.L // 2
        # pad so that the frames tile the signal exactly; cropped again at the end
        pad = (-(samples - self.config.L)) % hop if samples >= self.config.L else self.config.L - samples
        x = F.pad(mixture, (0, pad))[:, None]  # (batch, 1, samples)
        w = F.relu(self.encoder(x))  # (batch, N, frames)
        m = self.masks(w)  # (batch, C, N, frames)
        masked = (w[:, None] * m).flatten(0, 1)  # (batch * C, N, frames)
        sources = self.decoder(masked).view(batch, self.config.C, -1)
        return sources[..., :samples]


# ---- the baseline it is compared with: a mask on STFT magnitudes ----


@dataclass
class STFTMaskConfig:
    n_fft: int = 256  # 32 ms at 8 kHz
    hop: int = 64
    hidden: int = 128  # BLSTM units per direction
    layers: int = 2
    C: int = 2
    rate: int = 8000


class STFTMaskNet(nn.Module):
    """A small spectrogram-domain separator, trained like Conv-TasNet (SI-SNR with PIT).

    STFT (n_fft 256 = 32 ms at 8 kHz, hop 64), log-magnitude features, a 2-layer
    BLSTM over frames, C sigmoid masks applied to the complex mixture STFT (so the
    mixture phase is kept), inverse STFT. Same shapes as :class:`ConvTasNet`.
    ``STFTMaskNet(hidden=64)`` is short for ``STFTMaskNet(STFTMaskConfig(hidden=64))``.
    """

    def __init__(self, config: STFTMaskConfig | None = None, verbose: bool = True, **settings):
        super().__init__()
        c = self.config = config or STFTMaskConfig(**settings)
        bins = c.n_fft // 2 + 1
        self.blstm = nn.LSTM(bins, c.hidden, num_layers=c.layers, batch_first=True, bidirectional=True)
        self.to_masks = nn.Linear(2 * c.hidden, c.C * bins)
        if verbose:
            print(parameter_report(self))

    def forward(self, mixture):
        return each_channel(self.separate_mono, mixture, self.config.C, "STFTMaskNet")

    def separate_mono(self, mixture):
        """``(batch, samples)`` -> ``(batch, C, samples)``."""
        c = self.config
        X = spectral.stft(mixture, n_fft=c.n_fft, hop=c.hop)  # (batch, bins, frames), complex
        features = torch.log1p(X.abs()).transpose(1, 2)  # (batch, frames, bins)
        hidden, _ = self.blstm(features)
        masks = torch.sigmoid(self.to_masks(hidden))  # (batch, frames, C * bins)
        masks = masks.view(X.shape[0], X.shape[2], c.C, -1).permute(0, 2, 3, 1)  # (batch, C, bins, frames)
        return spectral.istft(masks * X[:, None], n_fft=c.n_fft, hop=c.hop, length=mixture.shape[-1])


if __name__ == "__main__":
    for name, cfg in [("paper best", PAPER_BEST), ("paper small", PAPER_SMALL), ("course", COURSE)]:
        print(name, asdict(cfg), receptive_field(cfg))
        ConvTasNet(cfg)
