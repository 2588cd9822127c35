"""The STFT, its inverse, and the 512-bin convention used by the U-Net.

With ``n_fft = 1024`` a real signal has ``n_fft // 2 + 1 = 513`` frequency bins:
bin 0 is DC and bin 512 is the Nyquist frequency. Networks that halve the
frequency axis six times want a power of two, so they see 512 bins: we drop the
Nyquist bin (the one with the least musical content, at 4096 Hz when the audio
is sampled at 8192 Hz) and put it back before the inverse STFT.
"""

from __future__ import annotations

import numpy as np
import torch

N_FFT = 1024
HOP = 768  # Jansson et al. (2017): n_fft 1024, hop 768 at 8192 Hz
RATE = 8192
BINS = 512


def as_tensor(x, name: str = "input") -> torch.Tensor:
    """``x`` as a torch tensor (numpy arrays are wrapped without a copy when contiguous)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")
    return x


def make_window(name: str, n_fft: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """A periodic analysis window of length ``n_fft``: "hann", "hamming", "blackman" or "rectangular"."""
    makers = {
        "hann": torch.hann_window,
        "hamming": torch.hamming_window,
        "blackman": torch.blackman_window,
        "rectangular": lambda n, **kw: torch.ones(n, **kw),
    }
    if name not in makers:
        raise ValueError(f"unknown window {name!r}; expected one of {sorted(makers)}")
    return makers[name](n_fft, device=device, dtype=dtype)


def stft(x, n_fft: int = N_FFT, hop: int | None = None, window: str = "hann") -> torch.Tensor:
    """Short-time Fourier transform of ``x``.

    Args:
        x: signal, ``(..., samples)``, torch tensor or numpy array (numpy becomes torch).
        n_fft: frame length in samples, also the FFT size.
        hop: hop size in samples (default ``n_fft // 4``).
        window: window name, see :func:`make_window`.

    Returns:
        complex tensor ``(..., n_fft // 2 + 1, frames)`` with centred frames.
    """
    x = as_tensor(x)
    hop = hop or n_fft // 4
    if not torch.is_floating_point(x):
        raise TypeError(f"stft expects a floating-point signal, got dtype {x.dtype}")
    if x.shape[-1] < n_fft // 2 + 1:
        raise ValueError(f"signal of {x.shape[-1]} samples is too short for n_fft={n_fft} (needs > n_fft/2)")
    if torch.isnan(x).any():
        raise ValueError("stft input contains NaN; check the audio or the previous step")
    lead = x.shape[:-1]
    win = make_window(window, n_fft, device=x.device, dtype=x.dtype)
    X = torch.stft(x.reshape(-1, x.shape[-1]), n_fft, hop_length=hop, window=win,
                   center=True, return_complex=True)
    return X.reshape(*lead, *X.shape[-2:])


def istft(X, n_fft: int = N_FFT, hop: int | None = None, window: str = "hann",
          length: int | None = None) -> torch.Tensor:
    """Inverse of :func:`stft` (weighted overlap-add).

    Args:
        X: complex spectrogram ``(..., n_fft // 2 + 1, frames)``.
        length: number of samples to return (pass the original length to undo the padding).

    Returns:
        real tensor ``(..., samples)``.
    """
    X = as_tensor(X)
    hop = hop or n_fft // 4
    bins = n_fft // 2 + 1
    if X.shape[-2] != bins:
        raise ValueError(
            f"istft with n_fft={n_fft} expects {bins} frequency bins, got {X.shape[-2]} "
            f"(shape {tuple(X.shape)}); if the network saw {BINS} bins, call restore_bins first")
    lead = X.shape[:-2]
    win = make_window(window, n_fft, device=X.device, dtype=X.real.dtype)
    x = torch.istft(X.reshape(-1, *X.shape[-2:]), n_fft, hop_length=hop, window=win,
                    center=True, length=length)
    return x.reshape(*lead, x.shape[-1])


def magnitude(X: torch.Tensor) -> torch.Tensor:
    """``|X|`` of a complex spectrogram, same shape ``(..., freq, frames)``."""
    return as_tensor(X).abs()


def phase(X: torch.Tensor) -> torch.Tensor:
    """The angle of a complex spectrogram in radians, ``(..., freq, frames)``."""
    return torch.angle(as_tensor(X))


def to_db(mag, top_db: float = 80.0, ref: float | None = None) -> torch.Tensor:
    """Magnitude to decibels, ``20 log10(mag / ref)``, floored ``top_db`` below the maximum.

    ``ref`` defaults to the maximum of ``mag``, so the loudest bin is 0 dB.
    """
    mag = as_tensor(mag).abs()
    ref = float(mag.max()) if ref is None else ref
    db = 20 * torch.log10(torch.clamp(mag, min=1e-10) / max(ref, 1e-10))
    return torch.clamp(db, min=float(db.max()) - top_db)


def crop_bins(X, bins: int = BINS) -> torch.Tensor:
    """Keep the lowest ``bins`` frequency bins: the 512-bin convention.

    Args:
        X: spectrogram ``(..., bins + 1, frames)``, e.g. 513 bins for n_fft 1024.

    Returns:
        ``(..., bins, frames)``, the Nyquist bin dropped.
    """
    X = as_tensor(X)
    if X.shape[-2] != bins + 1:
        raise ValueError(
            f"crop_bins expects {bins + 1} frequency bins (n_fft={2 * bins}), got {X.shape[-2]} "
            f"in shape {tuple(X.shape)}; crop only a full STFT, never an already-cropped one")
    return X[..., :bins, :]


def restore_bins(X_cropped, full=None) -> torch.Tensor:
    """Undo :func:`crop_bins`: append the Nyquist bin.

    Args:
        X_cropped: ``(..., bins, frames)`` as the network returns it.
        full: optional ``(..., bins + 1, frames)`` spectrogram (usually the mixture) whose
            top bin is copied back; zeros when None.

    Returns:
        ``(..., bins + 1, frames)``, ready for :func:`istft`.
    """
    X_cropped = as_tensor(X_cropped)
    if full is None:
        top = torch.zeros_like(X_cropped[..., :1, :])
    else:
        full = as_tensor(full)
        if full.shape[-2] != X_cropped.shape[-2] + 1 or full.shape[-1] != X_cropped.shape[-1]:
            raise ValueError(
                f"restore_bins: `full` should have shape (..., {X_cropped.shape[-2] + 1}, "
                f"{X_cropped.shape[-1]}), got {tuple(full.shape)}")
        top = full[..., -1:, :].to(X_cropped.dtype)
    return torch.cat([X_cropped, top], dim=-2)
