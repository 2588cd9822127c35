"""The STFT, its inverse, the 512-bin convention, and patching.

With ``n_fft = 1024`` a real signal has ``n_fft // 2 + 1 = 513`` frequency bins:
bin 0 is DC and bin 512 is the Nyquist frequency. Networks that halve the
frequency axis six times want a power of two, so they see 512 bins: we drop the
Nyquist bin (the one with the least musical content, at 4096 Hz when the audio
is sampled at 8192 Hz) and put it back before the inverse STFT.

A network trained on patches of 128 frames cannot see a whole song at once:
:func:`make_patches` cuts a spectrogram into overlapping patches,
:func:`stitch_patches` puts the network's masks back in place, and
:func:`reconstruct` turns a 512-bin mask into audio with the mixture's phase.
The rate, n_fft and hop belong to each model's config (the U-Net's:
8192 Hz, 1024, 768), not to this module.
"""

from __future__ import annotations

import numpy as np
import torch

N_FFT = 1024  # the default frame length: 513 bins, 512 once the Nyquist bin is dropped
BINS = N_FFT // 2


def as_tensor(x, name: str = "input") -> torch.Tensor:
    """``x`` as a torch tensor (numpy arrays are wrapped without a copy when contiguous)."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch tensor or numpy array, got {type(x).__name__}")
    return x


def alias_frequency(frequency, rate: float):
    """The frequency a sampled sine is heard at: its alias in ``[0, rate / 2]``.

    The samples of a sine at ``f`` Hz taken ``rate`` times a second are those of a
    sine at ``f + k * rate`` for any integer ``k``, and (up to sign) of one at
    ``-f``: only the frequency folded into ``[0, rate / 2]``, up to the Nyquist
    frequency, is heard.

    Args:
        frequency: frequency in Hz, ``>= 0``; a number or an array of any shape.
        rate: sampling rate in Hz, ``> 0``.

    Returns:
        numpy array (float) of the shape of ``frequency``: ``f mod rate``, mirrored
        about ``rate / 2`` when it is above.
    """
    frequency = np.asarray(frequency, dtype=np.float64)
    if isinstance(rate, bool) or not np.isscalar(rate) or not np.isfinite(rate) or rate <= 0:
        raise ValueError(f"alias_frequency: rate must be a positive number of Hz, got {rate!r}")
    if not np.all(np.isfinite(frequency)) or np.any(frequency < 0):
        raise ValueError("alias_frequency: frequencies must be finite and >= 0 Hz "
                         "(a negative frequency is heard as its opposite: pass abs(f))")
    folded = np.mod(frequency, rate)  # f and f + k * rate give the same samples
    return np.minimum(folded, rate - folded)  # f and rate - f too, up to the sine's sign


def check_frames(n_fft, hop, owner: str) -> int:
    """Check ``n_fft`` and ``hop`` (positive integers, hop <= n_fft); returns the hop (default ``n_fft // 4``)."""
    for name, value in (("n_fft", n_fft), ("hop", hop)):
        if value is None and name == "hop":
            continue
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
            raise ValueError(f"{owner}: {name} must be a positive integer number of samples, got {value!r}")
    hop = n_fft // 4 if hop is None else hop
    if hop > n_fft:
        raise ValueError(f"{owner}: hop={hop} is longer than the frame (n_fft={n_fft}): samples would be skipped")
    return int(hop)


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
    hop = check_frames(n_fft, hop, "stft")
    if not torch.is_floating_point(x):
        raise TypeError(f"stft expects a floating-point signal, got dtype {x.dtype}")
    if x.shape[-1] < n_fft // 2 + 1:
        raise ValueError(f"signal of {x.shape[-1]} samples is too short for n_fft={n_fft} (needs > n_fft/2)")
    if not torch.isfinite(x).all():
        raise ValueError("stft input contains NaN or Inf; check the audio or the previous step")
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
    hop = check_frames(n_fft, hop, "istft")
    bins = n_fft // 2 + 1
    if X.shape[-2] != bins:
        raise ValueError(
            f"istft with n_fft={n_fft} expects {bins} frequency bins, got {X.shape[-2]} "
            f"(shape {tuple(X.shape)}); if the network saw {BINS} bins, call restore_bins first")
    covered = hop * (X.shape[-1] - 1) + n_fft // 2  # the last sample any frame of a centred STFT saw
    if length is not None and length > covered:
        # torch would fill the tail with zeros and only warn: with hop > n_fft / 2 (the U-Net's
        # 768 / 1024) the last frame can end before the signal does, and those samples are lost
        raise ValueError(
            f"istft: {X.shape[-1]} frames of hop {hop} (n_fft {n_fft}) cover {covered} samples, not the "
            f"{length} asked for; pad the signal to whole hops before the STFT "
            f"(e.g. np.pad(x, (0, -len(x) % hop))) and cut the output back to {length}")
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


# ---- patches: a whole spectrogram through a network trained on 128-frame patches ----


def patch_weights(patch_frames: int) -> torch.Tensor:
    """Stitching weights over a patch's frames: a Hann bump, > 0 everywhere. ``(patch_frames,)``."""
    return torch.hann_window(patch_frames + 2, periodic=False, dtype=torch.float64)[1:-1].float()


def make_patches(mag: torch.Tensor, patch_frames: int = 128, hop_frames: int | None = None) -> torch.Tensor:
    """Cut a magnitude spectrogram into overlapping patches along time.

    The end is zero-padded so that every frame is inside at least one patch.

    Args:
        mag: ``(freq, frames)``.
        patch_frames: frames per patch (128 for the U-Net).
        hop_frames: step between patch starts (default ``patch_frames // 2``: 50% overlap).

    Returns:
        ``(n_patches, freq, patch_frames)`` with ``n_patches = 1 + ceil(max(frames - patch_frames, 0) / hop_frames)``.
    """
    hop_frames = hop_frames or patch_frames // 2
    if mag.ndim != 2:
        raise ValueError(f"make_patches expects one spectrogram (freq, frames), got shape {tuple(mag.shape)}")
    if not 0 < hop_frames <= patch_frames:
        raise ValueError(f"hop_frames must be in 1..{patch_frames}, got {hop_frames}")
    frames = mag.shape[-1]
    n_patches = 1 + -(-max(frames - patch_frames, 0) // hop_frames)
    padded_frames = (n_patches - 1) * hop_frames + patch_frames
    mag = torch.nn.functional.pad(mag, (0, padded_frames - frames))
    return mag.unfold(-1, patch_frames, hop_frames).permute(1, 0, 2).contiguous()


def stitch_patches(patches: torch.Tensor, hop_frames: int, total_frames: int) -> torch.Tensor:
    """Put overlapping patches back in place: the inverse of :func:`make_patches`.

    Each output frame is the weighted average of the patches that cover it, with
    the weights of :func:`patch_weights`, so a mask stays a mask (in [0, 1]) and a
    seam between two patches is a cross-fade, not a jump.

    Args:
        patches: ``(n_patches, freq, patch_frames)``; patch ``i`` starts at frame ``i * hop_frames``.
        hop_frames: step between patch starts.
        total_frames: number of frames to return (the padding is cut off).

    Returns:
        ``(freq, total_frames)``.
    """
    n_patches, freq, patch_frames = patches.shape
    weights = patch_weights(patch_frames).to(patches.dtype)
    length = (n_patches - 1) * hop_frames + patch_frames
    if total_frames > length:
        raise ValueError(f"{n_patches} patches of {patch_frames} frames (hop {hop_frames}) cover {length} frames, "
                         f"fewer than total_frames={total_frames}")
    out = torch.zeros(freq, length, dtype=patches.dtype)
    norm = torch.zeros(length, dtype=patches.dtype)
    for i in range(n_patches):
        start = i * hop_frames
        out[:, start:start + patch_frames] += weights * patches[i]
        norm[start:start + patch_frames] += weights
    return (out / norm)[:, :total_frames]


def full_band_mask(mask) -> torch.Tensor:
    """Restore the dropped Nyquist bin of a 512-bin mask by repeating its neighbour.

    The network never sees the Nyquist bin (:func:`crop_bins`), so it has no mask for
    it; the mask of the bin just below is the closest guess (a mask varies slowly
    across frequency), and unlike a zero it does not cut the mixture's top bin.

    Args:
        mask: real ``(..., bins, frames)``, e.g. 512 bins for n_fft 1024.

    Returns:
        ``(..., bins + 1, frames)``: bin ``bins`` is a copy of bin ``bins - 1``.
    """
    mask = as_tensor(mask, "mask")
    if mask.ndim < 2 or mask.shape[-2] < 1:
        raise ValueError(f"full_band_mask expects a mask (..., bins, frames), got shape {tuple(mask.shape)}")
    if mask.is_complex():
        raise ValueError("full_band_mask expects a real mask; restore the bin of a complex spectrogram "
                         "with restore_bins(X_cropped, full=X)")
    return torch.cat([mask, mask[..., -1:, :]], dim=-2)


def reconstruct(mask: torch.Tensor, mixture_stft: torch.Tensor, length: int, n_fft: int = N_FFT,
                hop: int | None = None) -> torch.Tensor:
    """Turn a 512-bin mask back into audio, with the mixture phase.

    Args:
        mask: ``(..., 512, frames)`` in [0, 1].
        mixture_stft: complex ``(..., 513, frames)``.
        length: samples to return (the mixture's length at the STFT's rate).
        n_fft, hop: the STFT that made ``mixture_stft`` (the U-Net's: 1024 and 768).

    Returns:
        ``(..., length)`` waveform: ``istft(full_band_mask(mask) * mixture_stft)``.
    """
    if mask.shape[-2] + 1 != mixture_stft.shape[-2] or mask.shape[-1] != mixture_stft.shape[-1]:
        raise ValueError(f"mask {tuple(mask.shape)} does not fit the mixture STFT {tuple(mixture_stft.shape)}: "
                         f"expected (..., {mixture_stft.shape[-2] - 1}, {mixture_stft.shape[-1]})")
    estimate = full_band_mask(mask).to(mixture_stft.real.dtype) * mixture_stft
    return istft(estimate, n_fft=n_fft, hop=hop, length=length)
