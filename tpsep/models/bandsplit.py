"""Band-split separation: BSRNN (Luo & Yu, 2023) and BS-RoFormer (Lu et al., 2024).

Y. Luo and J. Yu, "Music Source Separation with Band-split RNN", IEEE/ACM TASLP 31, 2023.
W.-T. Lu, J.-C. Wang, Q. Kong and Y.-N. Hung, "Music Source Separation with Band-Split
RoPE Transformer", ICASSP 2024.

A U-Net treats every frequency bin alike. A band-split model cuts the spectrum into K bands
that are narrow where the target source has its detail (a voice below 4 kHz) and wide where it
has little, gives every band the same number N of features, and then models the (bands x frames)
grid in both directions. In the paper's notation:

    STFT             X: complex, (batch, channels, F, T), F = n_fft // 2 + 1 bins, T frames
    band split       band k holds F_k bins (the layout is given in Hz, so it means the same
                     thing at 16 kHz and at 44.1 kHz); its real and imaginary parts, for every
                     channel, are normalised and mapped by the band's own linear layer to N
                     features: Z (batch, K, T, N)
    band-sequence    L layers; each runs a sequence model across time (for each band), then
                     across bands (for each frame), each with a norm and a residual connection.
                     The sequence model is a BLSTM (BSRNN) or a RoPE transformer (BS-RoFormer).
    mask estimation  for each source and band: norm, MLP with tanh, GLU, giving the band's
                     complex mask M (real and imaginary parts interleaved)
    output           Y = M * X, a complex product (it can rotate the phase, not only scale),
                     then the inverse STFT back to the input length

Everything that defines the model is in :class:`BandSplitConfig`; ``print(model)`` is short and
the constructor prints the parameter count. The STFT, the norms and the complex mask product run
in float32 even under ``torch.autocast(..., dtype=torch.bfloat16)``: bf16 has no complex type,
and its 8-bit mantissa is too coarse for the statistics of a quiet band.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from tpsep import spectral
from tpsep.models import count_parameters, each_channel, parameter_report
from tpsep.models.unet import residual_name

# ----------------------------------------------------------------------------- config


def _edges(*runs: tuple[float, float, float]) -> tuple[float, ...]:
    """Band boundaries in Hz from runs ``(start, stop, step)``, both ends included."""
    edges = []
    for start, stop, step in runs:
        f = start
        while f <= stop + 1e-9:
            edges.append(float(f))
            f += step
    return tuple(edges)


# BSRNN's layout "v7", the one the paper keeps for vocals: 100 Hz bands up to 1 kHz, 250 Hz
# bands up to 4 kHz, 500 Hz up to 8 kHz, 1 kHz up to 16 kHz, 2 kHz up to 20 kHz, and the rest
# (20 kHz to Nyquist) as one band: 40 boundaries, K = 41 bands.
V7_VOCALS_EDGES_HZ = _edges((100, 1000, 100), (1250, 4000, 250), (4500, 8000, 500),
                            (9000, 16000, 1000), (18000, 20000, 2000))

# The course's layout: v7 below the 8 kHz Nyquist frequency of 16 kHz audio (the last band
# runs from 7.5 kHz to 8 kHz): 29 boundaries, K = 30 bands.
COURSE_EDGES_HZ = tuple(f for f in V7_VOCALS_EDGES_HZ if f < 8000)


def _edges_from_widths(widths: list[int], rate: int, n_fft: int) -> tuple[float, ...]:
    """Write a layout published in bins as boundaries in Hz (at the bins' exact frequencies)."""
    edges, bin_ = [], 0
    for width in widths[:-1]:
        bin_ += width
        edges.append(bin_ * rate / n_fft)
    return tuple(edges)


# BS-RoFormer's layout (Lu et al., 2024, section 4.4), given in bins at 44.1 kHz with n_fft 2048:
# 2 bins per band below 1 kHz, 4 up to 2 kHz, 12 up to 4 kHz, 24 up to 8 kHz, 48 up to 16 kHz,
# and the rest in two bands: K = 62.
BS_ROFORMER_EDGES_HZ = _edges_from_widths(
    [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129], rate=44100, n_fft=2048)


@dataclass
class BandSplitConfig:
    # front end
    rate: int = 16000  # sample rate of the mixture, Hz
    n_fft: int = 1024  # STFT size: F = n_fft // 2 + 1 bins (all of them: no 512-bin crop here)
    hop: int = 256  # STFT hop in samples
    channels: int = 1  # 1 (mono) or 2 (stereo); stereo bands see both channels at once
    sources: tuple[str, ...] = ("vocals",)  # one complex mask (and one mask estimator) each
    band_edges_hz: tuple[float, ...] = COURSE_EDGES_HZ  # boundaries BETWEEN bands, increasing;
    # the first band starts at 0 Hz, the last ends at Nyquist (rate / 2), so K = len(edges) + 1
    # network, in the papers' notation
    N: int = 32  # features per band (BS-RoFormer calls it D)
    L: int = 4  # band-sequence layers (each: one module across time, one across bands)
    sequence_model: str = "blstm"  # "blstm" (BSRNN) or "roformer" (BS-RoFormer)
    H: int = 64  # BLSTM hidden units per direction (BSRNN: 2N)
    heads: int = 4  # roformer: attention heads
    head_dim: int = 8  # roformer: features per head
    ff_mult: int = 4  # roformer: feed-forward width = ff_mult * N
    norm: str = "layer"  # "layer" (LayerNorm, BSRNN) or "rms" (RMSNorm, BS-RoFormer)
    mask_mult: int = 4  # mask MLP hidden width = mask_mult * N (both papers: 4N)
    mask_hidden_layers: int = 1  # tanh hidden layers in each mask MLP

    def __post_init__(self):
        if isinstance(self.sources, str):
            raise ValueError(f"sources must be a tuple of names, e.g. ({self.sources!r},), not the string "
                             f"{self.sources!r}")
        # tuples, so that a config read back from JSON (lists) compares and prints the same
        self.sources = tuple(self.sources)
        self.band_edges_hz = tuple(self.band_edges_hz)


# BSRNN for vocals (Luo & Yu, 2023): 44.1 kHz, 2048-point STFT with hop 512, layout v7, N = 128,
# 12 band-sequence layers, BLSTMs of 2N = 256 units per direction, mask MLPs 4N wide. The
# authors' released code (the SDX'23 starter kit, reused by Magron et al.'s replication,
# github.com/magronp/bsrnn) has TWO tanh hidden layers in each mask MLP, normalises with
# GroupNorm(1) over (features, frames) where we use a per-frame LayerNorm (same parameter
# count), and runs the mono model on each channel of a stereo song: hence channels = 1.
# Magron et al. report 8.0M parameters for their small vocals model (N 64, 8 layers): ours gives
# 8.02M for it, and 36.4M for this full configuration (tests/test_bandsplit.py).
PAPER_BSRNN_VOCALS = BandSplitConfig(
    rate=44100, n_fft=2048, hop=512, channels=1, sources=("vocals",), band_edges_hz=V7_VOCALS_EDGES_HZ,
    N=128, L=12, sequence_model="blstm", H=256, norm="layer", mask_mult=4, mask_hidden_layers=2)
PAPER = PAPER_BSRNN_VOCALS

# BS-RoFormer, the paper's L = 6 model (trained on MUSDB18-HQ only): D = 384, 8 heads, stereo,
# 62 bands, RMSNorm, mask MLPs with one 4D-wide tanh hidden layer and a GLU. The paper reports
# 72.2M parameters for it; ours gives 72.16M. The heads are 48 wide (384 / 8); the hop is 441 samples,
# 10 ms (as lucidrains' implementation reads the paper; the hop does not change the count). The
# paper's full model (SDX'23) has L = 12. We leave out its dropout of 0.1 (a training choice).
PAPER_BS_ROFORMER = BandSplitConfig(
    rate=44100, n_fft=2048, hop=441, channels=2, sources=("vocals",), band_edges_hz=BS_ROFORMER_EDGES_HZ,
    N=384, L=6, sequence_model="roformer", heads=8, head_dim=48, ff_mult=4, norm="rms",
    mask_mult=4, mask_hidden_layers=1)

# What the course trains on a 2-core CPU: 16 kHz mono, 30 bands, N 32, 4 layers, about 0.86M
# parameters; one mask MLP hidden layer (not two) keeps the mask estimators below half the model.
COURSE = BandSplitConfig()


# ----------------------------------------------------------------------------- band layout


def band_bins(config: BandSplitConfig) -> list[int]:
    """The band widths F_1 ... F_K in bins for ``config.rate`` and ``config.n_fft``.

    Boundary ``f`` Hz falls on bin ``round(f * n_fft / rate)``; band k covers the bins from its
    lower boundary up to (not including) its upper one, the last band includes the Nyquist bin.

    Returns:
        list of K positive ints summing to ``n_fft // 2 + 1``.

    Raises:
        ValueError: the layout would cover some bin twice (edges not increasing), cover bins that
            do not exist (an edge at or above Nyquist), or leave a band empty (two edges closer
            than one bin); the message names the fix.
    """
    rate, n_fft = config.rate, config.n_fft
    bins, nyquist = n_fft // 2 + 1, rate / 2
    edges = [float(f) for f in config.band_edges_hz]
    where = f"band_edges_hz at rate {rate} Hz, n_fft {n_fft} ({bins} bins of {rate / n_fft:.2f} Hz)"
    if edges and edges[0] <= 0:
        raise ValueError(f"{where}: got a first edge of {edges[0]:g} Hz, expected a boundary above 0 Hz; "
                         "list only the boundaries between bands (the first band always starts at 0 Hz)")
    for low, high in zip(edges, edges[1:]):
        if high <= low:
            raise ValueError(f"{where}: expected increasing edges, got {high:g} Hz after {low:g} Hz, so the "
                             "bins between them would belong to two bands; sort the edges and remove duplicates")
    too_high = [f for f in edges if f >= nyquist]
    if too_high:
        raise ValueError(f"{where}: edges {too_high[:3]}{'...' if len(too_high) > 3 else ''} Hz are at or above "
                         f"the Nyquist frequency {nyquist:g} Hz, so the layout asks for more than the {bins} bins "
                         f"that exist; drop the edges >= {nyquist:g} Hz (the last band always runs to Nyquist) "
                         "or use audio at a higher rate")
    boundaries = [0] + [round(f * n_fft / rate) for f in edges] + [bins]
    hz = [0.0] + edges + [nyquist]
    widths = [high - low for low, high in zip(boundaries, boundaries[1:])]
    for k, width in enumerate(widths):
        if width <= 0:
            raise ValueError(f"{where}: the band {hz[k]:g}-{hz[k + 1]:g} Hz gets {width} bins, expected at least 1; "
                             "its edges are closer than one bin: merge it with a neighbour or raise n_fft")
    check_band_widths(widths, n_fft)
    return widths


def check_band_widths(widths: list[int], n_fft: int) -> None:
    """Raise a clear ValueError unless ``widths`` covers the ``n_fft // 2 + 1`` bins exactly once."""
    bins = n_fft // 2 + 1
    if any(w <= 0 for w in widths) or sum(widths) != bins:
        raise ValueError(f"band layout of {len(widths)} bands covers {sum(widths)} bins (widths {list(widths)}), "
                         f"expected every one of the n_fft // 2 + 1 = {bins} bins of n_fft {n_fft} exactly once, "
                         "with no empty band; rebuild the widths with band_bins(config) for this n_fft")


def _check_bins(X: torch.Tensor, bins: int, n_fft: int, what: str) -> None:
    if X.shape[-2] != bins:
        crop = " (the 512-bin crop is the U-Net's convention, not this model's)" if X.shape[-2] == bins - 1 else ""
        raise ValueError(f"{what}: the band layout covers {bins} bins (n_fft {n_fft} gives n_fft // 2 + 1), "
                         f"but the spectrogram has {X.shape[-2]} (shape {tuple(X.shape)}){crop}; pass the full "
                         "STFT computed with the config's n_fft, never a cropped or padded one")


# ----------------------------------------------------------------------------- blocks


class Float32(nn.Module):
    """Run ``module`` (a norm) in float32, autocast off: its output stays float32, and the next
    linear layer is cast back to bf16 by autocast. Input and output ``(..., features)``."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x):
        with torch.autocast(device_type=x.device.type, enabled=False):
            return self.module(x.float())


def make_norm(kind: str, features: int) -> nn.Module:
    """A per-frame norm over the last axis, in float32: LayerNorm ("layer") or RMSNorm ("rms")."""
    if kind == "layer":
        return Float32(nn.LayerNorm(features))
    if kind == "rms":
        return Float32(nn.RMSNorm(features, eps=1e-6))
    raise ValueError(f"unknown norm {kind!r}; expected 'layer' (BSRNN) or 'rms' (BS-RoFormer)")


class BandSplitter(nn.Module):
    """Band split: spectrogram ``(batch, channels, F, T)`` complex -> features ``(batch, K, T, N)``.

    Band k's input, per frame, is its ``F_k * channels * 2`` real numbers, ordered (bin, channel,
    real/imaginary): a norm, then a linear map to N features. Every band has its own layers."""

    def __init__(self, widths: list[int], channels: int, N: int, norm: str):
        super().__init__()
        self.widths = list(widths)
        sizes = [2 * channels * width for width in widths]
        self.norms = nn.ModuleList(make_norm(norm, size) for size in sizes)
        self.projections = nn.ModuleList(nn.Linear(size, N) for size in sizes)

    def forward(self, X):
        features = [project(norm(band))
                    for band, norm, project in zip(split_bands(X, self.widths), self.norms, self.projections)]
        return torch.stack(features, dim=1)  # (batch, K, T, N)


def split_bands(X: torch.Tensor, widths: list[int]) -> list[torch.Tensor]:
    """Cut a complex spectrogram ``(batch, channels, F, T)`` into K bands of ``widths`` bins, each
    as real numbers per frame: ``(batch, T, F_k * channels * 2)``, ordered (bin, channel, real/imaginary)."""
    check_band_widths(widths, 2 * (X.shape[-2] - 1))
    parts = torch.view_as_real(X).permute(0, 3, 2, 1, 4)  # (batch, T, F, channels, 2)
    return [band.reshape(*band.shape[:2], -1) for band in parts.split(list(widths), dim=2)]


class BLSTMSequence(nn.Module):
    """BSRNN's sequence module: norm, BLSTM (H units each way), linear back to N, residual.
    Input/output ``(sequences, length, N)``."""

    def __init__(self, N: int, H: int, norm: str):
        super().__init__()
        self.norm = make_norm(norm, N)
        self.blstm = nn.LSTM(N, H, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * H, N)

    def forward(self, x):
        y, _ = self.blstm(self.norm(x))
        return x + self.project(y)


class RoPETransformerSequence(nn.Module):
    """BS-RoFormer's sequence module: one pre-norm transformer layer whose attention rotates
    queries and keys by their position (RoPE, Su et al. 2021), so it knows "how far apart" two
    frames (or two bands) are without a learned position table.
    Input/output ``(sequences, length, N)``."""

    def __init__(self, N: int, heads: int, head_dim: int, ff_mult: int, norm: str):
        super().__init__()
        try:
            from rotary_embedding_torch import RotaryEmbedding
        except ImportError as error:  # only the roformer needs it
            raise ImportError("sequence_model='roformer' needs the rotary-embedding-torch package: "
                              "pip install rotary-embedding-torch") from error
        self.heads, self.head_dim = heads, head_dim
        self.attention_norm = make_norm(norm, N)
        self.to_qkv = nn.Linear(N, 3 * heads * head_dim, bias=False)
        self.to_out = nn.Linear(heads * head_dim, N, bias=False)
        self.rotary = RotaryEmbedding(dim=head_dim)
        self.feedforward_norm = make_norm(norm, N)
        self.feedforward = nn.Sequential(nn.Linear(N, ff_mult * N), nn.GELU(), nn.Linear(ff_mult * N, N))

    def forward(self, x):
        sequences, length, _ = x.shape
        qkv = self.to_qkv(self.attention_norm(x)).view(sequences, length, 3, self.heads, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (sequences, heads, length, head_dim)
        # rotate in float32: bf16 cannot count past 256 exactly, so far-apart positions would collide
        with torch.autocast(device_type=x.device.type, enabled=False):
            q = self.rotary.rotate_queries_or_keys(q.float()).to(v.dtype)
            k = self.rotary.rotate_queries_or_keys(k.float()).to(v.dtype)
        y = F.scaled_dot_product_attention(q, k, v)
        x = x + self.to_out(y.transpose(1, 2).reshape(sequences, length, -1))
        return x + self.feedforward(self.feedforward_norm(x))


def make_sequence_module(config: BandSplitConfig) -> nn.Module:
    if config.sequence_model == "blstm":
        return BLSTMSequence(config.N, config.H, config.norm)
    if config.sequence_model == "roformer":
        return RoPETransformerSequence(config.N, config.heads, config.head_dim, config.ff_mult, config.norm)
    raise ValueError(f"unknown sequence_model {config.sequence_model!r}; expected 'blstm' (BSRNN) "
                     "or 'roformer' (BS-RoFormer)")


class BandSequenceLayer(nn.Module):
    """One band-sequence layer: across time within each band, then across bands within each frame.
    Input/output ``(batch, K, T, N)``."""

    def __init__(self, config: BandSplitConfig):
        super().__init__()
        self.across_time = make_sequence_module(config)
        self.across_bands = make_sequence_module(config)

    def forward(self, z):
        batch, K, T, N = z.shape
        z = self.across_time(z.reshape(batch * K, T, N)).reshape(batch, K, T, N)
        z = z.transpose(1, 2).reshape(batch * T, K, N)
        z = self.across_bands(z).reshape(batch, T, K, N)
        return z.transpose(1, 2)


class MaskEstimator(nn.Module):
    """The masks of ONE source: features ``(batch, K, T, N)`` -> raw masks ``(batch, T, F * channels * 2)``.

    For band k: norm, ``mask_hidden_layers`` linear+tanh layers of ``mask_mult * N`` units, then a
    linear layer to twice the band's ``F_k * channels * 2`` outputs and a GLU (half of them gate
    the other half through a sigmoid). The outputs of all bands are concatenated in frequency
    order, each band laid out (bin, channel, real/imaginary), exactly like the band-split input."""

    def __init__(self, widths: list[int], channels: int, N: int, mult: int, hidden_layers: int, norm: str):
        super().__init__()
        self.mlps = nn.ModuleList()
        hidden = mult * N
        for width in widths:
            layers = [make_norm(norm, N), nn.Linear(N, hidden), nn.Tanh()]
            for _ in range(hidden_layers - 1):
                layers += [nn.Linear(hidden, hidden), nn.Tanh()]
            layers += [nn.Linear(hidden, 2 * (2 * channels * width)), nn.GLU(dim=-1)]
            self.mlps.append(nn.Sequential(*layers))

    def forward(self, z):
        return torch.cat([mlp(z[:, k]) for k, mlp in enumerate(self.mlps)], dim=-1)


def interleaved_to_complex(raw: torch.Tensor, bins: int, channels: int) -> torch.Tensor:
    """Raw masks ``(..., T, F * channels * 2)``, laid out (bin, channel, real/imaginary) like the
    band-split input, -> complex masks ``(..., channels, F, T)``, in float32 (bf16 has no complex type)."""
    with torch.autocast(device_type=raw.device.type, enabled=False):
        parts = raw.float().reshape(*raw.shape[:-1], bins, channels, 2)  # (..., T, F, channels, 2)
        return torch.view_as_complex(parts).movedim(-3, -1).movedim(-3, -2)  # (..., channels, F, T)


# ----------------------------------------------------------------------------- model


class BandSplit(nn.Module):
    """The band-split separator: mixture ``(batch, channels, samples)`` at ``config.rate`` ->
    sources ``(batch, len(config.sources), channels, samples)``, same length.

    The steps of :meth:`forward` are methods of their own, so each can be checked alone
    (for instance :meth:`apply_masks` with ideal masks)."""

    def __init__(self, config: BandSplitConfig = COURSE, verbose: bool = True):
        super().__init__()
        c = self.config = config
        if c.channels not in (1, 2):
            raise ValueError(f"channels must be 1 (mono) or 2 (stereo), got {c.channels}")
        if len(c.sources) == 0:
            raise ValueError(f"sources must be a non-empty tuple of names such as ('vocals',), got {c.sources!r}")
        if c.hop <= 0 or c.hop > c.n_fft:
            raise ValueError(f"hop must be between 1 and n_fft = {c.n_fft}, got {c.hop}")
        self.widths = band_bins(c)
        # One target (vocals) leaves a rest (accompaniment) that tpsep.separate computes as the
        # mixture minus the target, at the input's rate and band: the model itself never outputs it.
        self.residual_source = residual_name(c.sources[0]) if len(c.sources) == 1 else None
        self.sources = tuple(c.sources) + ((self.residual_source,) if self.residual_source else ())
        self.bins = c.n_fft // 2 + 1
        self.band_split = BandSplitter(self.widths, c.channels, c.N, c.norm)
        self.layers = nn.ModuleList(BandSequenceLayer(c) for _ in range(c.L))
        self.mask_estimators = nn.ModuleList(
            MaskEstimator(self.widths, c.channels, c.N, c.mask_mult, c.mask_hidden_layers, c.norm)
            for _ in c.sources)
        if verbose:
            print(parameter_report(self, self.describe()))

    def describe(self) -> str:
        c = self.config
        inner = f"H {c.H}" if c.sequence_model == "blstm" else f"{c.heads} heads x {c.head_dim}"
        return (f"{c.sequence_model}, N {c.N}, L {c.L}, {inner}, K {len(self.widths)} bands, "
                f"n_fft {c.n_fft} hop {c.hop} at {c.rate} Hz, {c.channels} ch, sources {', '.join(c.sources)}")

    def num_parameters(self) -> int:
        return count_parameters(self)

    def parameter_counts(self) -> dict[str, int]:
        """Trainable parameters per block: where the model's size goes."""
        return {"band split": count_parameters(self.band_split),
                "band-sequence layers": count_parameters(self.layers),
                "mask estimation": count_parameters(self.mask_estimators),
                "total": count_parameters(self)}

    # -- the steps of forward --

    def spectrogram(self, audio: torch.Tensor) -> torch.Tensor:
        """STFT in float32: ``(batch, channels, samples)`` -> complex ``(batch, channels, F, T)``."""
        c = self.config
        with torch.autocast(device_type=audio.device.type, enabled=False):
            return spectral.stft(audio.float(), n_fft=c.n_fft, hop=c.hop, window="hann")

    def raw_masks(self, X: torch.Tensor) -> torch.Tensor:
        """The network: spectrogram ``(batch, channels, F, T)`` -> raw masks
        ``(batch, sources, T, F * channels * 2)``, laid out (bin, channel, real/imaginary)."""
        _check_bins(X, self.bins, self.config.n_fft, "BandSplit")
        z = self.band_split(X)  # (batch, K, T, N)
        for layer in self.layers:
            z = layer(z)
        return torch.stack([estimate(z) for estimate in self.mask_estimators], dim=1)

    def complex_masks(self, raw: torch.Tensor) -> torch.Tensor:
        """Raw masks ``(batch, sources, T, F * channels * 2)`` -> complex masks
        ``(batch, sources, channels, F, T)`` (float32 based)."""
        batch, sources, frames, size = raw.shape
        channels = self.config.channels
        if size != self.bins * channels * 2:
            raise ValueError(f"raw masks have {size} values per frame, expected F * channels * 2 = "
                             f"{self.bins} * {channels} * 2 = {self.bins * channels * 2} for this config")
        return interleaved_to_complex(raw, self.bins, channels)

    def apply_masks(self, masks: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
        """The complex product, in float32: masks ``(batch, sources, channels, F, T)`` times the
        mixture ``X`` ``(batch, channels, F, T)`` -> source spectrograms ``(batch, sources, channels, F, T)``."""
        _check_bins(X, self.bins, self.config.n_fft, "BandSplit.apply_masks")
        if masks.shape[-2:] != X.shape[-2:] or masks.shape[-3] != X.shape[-3]:
            raise ValueError(f"apply_masks: masks {tuple(masks.shape)} do not match the mixture spectrogram "
                             f"{tuple(X.shape)}; expected masks (batch, sources, {', '.join(map(str, X.shape[1:]))})")
        with torch.autocast(device_type=X.device.type, enabled=False):
            return masks.to(torch.complex64) * X.to(torch.complex64)[:, None]

    def waveforms(self, Y: torch.Tensor, length: int) -> torch.Tensor:
        """Inverse STFT in float32: ``(batch, sources, channels, F, T)`` -> ``(batch, sources, channels, length)``."""
        c = self.config
        with torch.autocast(device_type=Y.device.type, enabled=False):
            return spectral.istft(Y, n_fft=c.n_fft, hop=c.hop, window="hann", length=length)

    def check_mixture(self, mixture) -> None:
        """A clear error for anything but a float tensor ``(batch, config.channels, samples)``."""
        c = self.config
        if not isinstance(mixture, torch.Tensor):
            raise TypeError("BandSplit expects a torch tensor (batch, channels, samples), "
                            f"got {type(mixture).__name__}")
        if mixture.dim() != 3:
            hint = " (add the channel axis: x.unsqueeze(1))" if mixture.dim() == 2 else ""
            raise ValueError(f"BandSplit expects a mixture (batch, channels, samples), got shape "
                             f"{tuple(mixture.shape)}{hint}")
        if c.channels == 2 and mixture.shape[1] != 2:
            raise ValueError(f"BandSplit was built for {c.channels} channel(s) (config.channels) but the mixture has "
                             f"{mixture.shape[1]} (shape {tuple(mixture.shape)}); give it stereo audio, or build a mono "
                             "model (channels=1), which separates each channel on its own")
        if mixture.shape[-1] <= c.n_fft // 2:
            raise ValueError(f"BandSplit needs more than n_fft / 2 = {c.n_fft // 2} samples, got {mixture.shape[-1]}")

    def forward(self, mixture: torch.Tensor) -> torch.Tensor:
        """``(batch, channels, samples)`` -> ``(batch, sources, channels, samples)``. A mono model
        separates each channel of a multichannel mixture on its own, as BSRNN does with stereo songs."""
        self.check_mixture(mixture)
        if self.config.channels == 1 and mixture.shape[1] > 1:
            return each_channel(lambda mono: self(mono[:, None])[:, :, 0], mixture, len(self.config.sources),
                                "BandSplit")
        X = self.spectrogram(mixture)
        masks = self.complex_masks(self.raw_masks(X))
        return self.waveforms(self.apply_masks(masks, X), length=mixture.shape[-1])
