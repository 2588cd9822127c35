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
and the constructor prints the parameter count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F


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


# Two configurations from the paper's table of hyperparameters, with the sizes it reports.
PAPER_BEST = ConvTasNetConfig(N=512, L=16, B=128, H=512, Sc=128, P=3, X=8, R=3)  # ~5.1M parameters
PAPER_SMALL = ConvTasNetConfig(N=128, L=40, B=128, H=256, Sc=128, P=3, X=7, R=2)  # ~1.5M parameters
# What the course trains on a laptop CPU in minutes (the defaults above).
COURSE = ConvTasNetConfig(N=64, L=16, B=64, H=128, Sc=64, P=3, X=6, R=2)


class ReceptiveField(NamedTuple):
    frames: int  # encoder frames that influence one output frame
    samples: int  # audio samples those frames span
    ms: float  # the same span in milliseconds


def receptive_field(config: ConvTasNetConfig, rate: int = 8000) -> ReceptiveField:
    """How much input one output frame can see.

    Each depthwise convolution of kernel P and dilation d adds (P - 1) * d frames,
    so the TCN sees ``1 + R * sum_{i<X} (P - 1) * 2**i`` encoder frames. Frames are
    L samples long and start every L/2 samples, so F frames span
    ``(F - 1) * L/2 + L`` samples.
    """
    frames = 1 + config.R * sum((config.P - 1) * 2**i for i in range(config.X))
    samples = (frames - 1) * (config.L // 2) + config.L
    return ReceptiveField(frames, samples, 1000.0 * samples / rate)


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
    """Conv-TasNet. Input mixture (batch, samples) or (batch, 1, samples);
    output estimated sources (batch, C, samples)."""

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
            print(f"ConvTasNet: {self.num_parameters() / 1e6:.2f}M parameters")

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

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
        if mixture.dim() == 3 and mixture.shape[1] == 1:
            mixture = mixture[:, 0]
        if mixture.dim() != 2:
            raise ValueError(f"expected a mono mixture (batch, samples) or (batch, 1, samples), got shape {tuple(mixture.shape)}")
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


class STFTMaskNet(nn.Module):
    """A small spectrogram-domain separator, trained like Conv-TasNet (SI-SNR with PIT).

    STFT (n_fft 256 = 32 ms at 8 kHz, hop 64), log-magnitude features, a 2-layer
    BLSTM over frames, C sigmoid masks applied to the complex mixture STFT (so the
    mixture phase is kept), inverse STFT. Input (batch, samples) or (batch, 1, samples);
    output (batch, C, samples).
    """

    def __init__(self, n_fft: int = 256, hop: int = 64, hidden: int = 128, layers: int = 2, C: int = 2,
                 verbose: bool = True):
        super().__init__()
        self.n_fft, self.hop, self.C = n_fft, hop, C
        bins = n_fft // 2 + 1
        self.blstm = nn.LSTM(bins, hidden, num_layers=layers, batch_first=True, bidirectional=True)
        self.to_masks = nn.Linear(2 * hidden, C * bins)
        if verbose:
            print(f"STFTMaskNet: {sum(p.numel() for p in self.parameters()) / 1e6:.2f}M parameters")

    def forward(self, mixture):
        from tpsep import spectral

        if mixture.dim() == 3 and mixture.shape[1] == 1:
            mixture = mixture[:, 0]
        if mixture.dim() != 2:
            raise ValueError(f"expected a mono mixture (batch, samples) or (batch, 1, samples), got shape {tuple(mixture.shape)}")
        X = spectral.stft(mixture, n_fft=self.n_fft, hop=self.hop)  # (batch, bins, frames), complex
        features = torch.log1p(X.abs()).transpose(1, 2)  # (batch, frames, bins)
        hidden, _ = self.blstm(features)
        masks = torch.sigmoid(self.to_masks(hidden))  # (batch, frames, C * bins)
        masks = masks.view(X.shape[0], X.shape[2], self.C, -1).permute(0, 2, 3, 1)  # (batch, C, bins, frames)
        return spectral.istft(masks * X[:, None], n_fft=self.n_fft, hop=self.hop, length=mixture.shape[-1])


# ---- training from the command line: `tpsep train convtasnet` ----


def build_model(model_config: dict) -> nn.Module:
    """Rebuild a model from the plain dict stored in a checkpoint (``extra["model_config"]``).

    ``{"kind": "stft_mask", ...}`` gives the :class:`STFTMaskNet` baseline; anything else
    is a :class:`ConvTasNetConfig` as a dict.
    """
    model_config = dict(model_config)
    if model_config.pop("kind", "convtasnet") == "stft_mask":
        return STFTMaskNet(**model_config, verbose=False)
    return ConvTasNet(ConvTasNetConfig(**model_config), verbose=False)


def pit_loss_fn(model, batch):
    """``loss_fn`` for :func:`tpsep.train.fit`: batch = (mixture (batch, 1, samples),
    sources (batch, C, 1, samples)) from a ChunkDataset; returns minus the PIT SI-SNR."""
    from tpsep.losses import pit_si_snr_loss

    mixture, sources = batch
    return pit_si_snr_loss(model(mixture), sources[:, :, 0])


def training_recipe(args):
    """``tpsep train convtasnet``: the course configuration on 2-second chunks of the speech set.

    ``--option`` keys: any :class:`ConvTasNetConfig` field (``N=128 X=8 ...``), ``seconds=2.0``
    (chunk length), ``model=stft_mask`` (train the STFT-mask baseline instead, with ``hidden=``).
    Returns ``(model, loss_fn, train_loader, valid_loader, extra)``.
    """
    from torch.utils.data import DataLoader

    from tpsep import data

    options = dict(getattr(args, "options", None) or {})
    seconds = float(options.pop("seconds", 2.0))
    kind = options.pop("model", "convtasnet")
    dataset = getattr(args, "dataset", None) or "speech"
    train_tracks = data.load_dataset(dataset, split="train")
    valid_tracks = data.load_dataset(dataset, split="valid")
    C = len(train_tracks[0].source_names)
    if kind == "stft_mask":
        model_config = {"kind": "stft_mask", "C": C, **options}
    elif kind == "convtasnet":
        unknown = set(options) - set(asdict(COURSE))
        if unknown:
            raise ValueError(f"unknown Conv-TasNet option(s) {sorted(unknown)}; expected fields of "
                             f"ConvTasNetConfig {sorted(asdict(COURSE))}, or seconds=, model=")
        model_config = asdict(ConvTasNetConfig(**{**asdict(COURSE), "C": C, **options}))
    else:
        raise ValueError(f"--option model={kind!r}: expected 'convtasnet' or 'stft_mask'")
    model = build_model(model_config)
    print(f"{type(model).__name__}: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters")
    batch_size = getattr(args, "batch_size", 8)
    workers = getattr(args, "num_workers", 0)
    train_loader = DataLoader(data.ChunkDataset(train_tracks, seconds), batch_size=batch_size, shuffle=True,
                              drop_last=True, num_workers=workers)
    valid_loader = DataLoader(data.ChunkDataset(valid_tracks, seconds), batch_size=batch_size,
                              num_workers=workers)
    extra = {"model_config": model_config, "rate": train_tracks[0].rate,
             "source_names": list(train_tracks[0].source_names), "seconds": seconds}
    return model, pit_loss_fn, train_loader, valid_loader, extra


# ---- separating whole tracks, and `tpsep evaluate CHECKPOINT` ----


def separator_from_model(model: nn.Module, align: bool = True):
    """A separator ``separator(track) -> {source name: estimate (1, samples)}`` for :mod:`tpsep.evaluation`.

    The network's outputs come in no particular order (it was trained with PIT). With
    ``align=True`` they are matched to the track's true sources by the permutation of best
    SI-SNR, as every speech-separation benchmark does; the estimates themselves are untouched.
    """
    from tpsep.losses import apply_permutation, pit_si_snr

    def separator(track) -> dict:
        mixture = torch.as_tensor(track.mixture)  # (1, samples)
        if mixture.shape[0] != 1:
            raise ValueError(f"Conv-TasNet separates mono mixtures; track {track.name!r} has {mixture.shape[0]} channels")
        device = next(model.parameters()).device
        with torch.no_grad():
            estimates = model.eval()(mixture.to(device)).cpu()  # (1, C, samples)
        names = list(track.source_names)
        if len(names) != estimates.shape[1]:
            raise ValueError(f"this model separates {estimates.shape[1]} sources, track {track.name!r} has "
                             f"{len(names)} {names} (for the speech set, pass --dataset speech)")
        if align:
            references = torch.stack([torch.as_tensor(track.sources[n][0]) for n in names])[None]
            _, permutation = pit_si_snr(estimates, references)
            estimates = apply_permutation(estimates, permutation)
        return {name: estimates[0, i : i + 1].numpy() for i, name in enumerate(names)}

    separator.__name__ = type(model).__name__
    return separator


def checkpoint_separator(path, args=None):
    """``tpsep evaluate CHECKPOINT`` loader: a separator for a checkpoint written by
    ``tpsep train convtasnet`` (Conv-TasNet or the STFT-mask baseline), else None."""
    from tpsep.train import load_checkpoint, load_model

    extra = load_checkpoint(path).get("extra") or {}
    if extra.get("model_name") != "convtasnet":
        return None
    model, _ = load_model(path)
    return separator_from_model(model)


def _register_checkpoint_loader():
    from tpsep import evaluation

    if checkpoint_separator not in evaluation.CHECKPOINT_LOADERS:
        evaluation.register_checkpoint_loader(checkpoint_separator)


_register_checkpoint_loader()  # `tpsep evaluate` imports this module (evaluation.LOADER_MODULES)


if __name__ == "__main__":
    for name, cfg in [("paper best", PAPER_BEST), ("paper small", PAPER_SMALL), ("course", COURSE)]:
        print(name, asdict(cfg), receptive_field(cfg))
        ConvTasNet(cfg)
