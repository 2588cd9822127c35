"""Time-frequency masks: the ideal (oracle) masks and how to apply them.

A mask ``M`` is a real array with the shape of a spectrogram, ``(..., freq, frames)``,
usually between 0 and 1. Multiplying the mixture STFT ``X`` by ``M`` keeps the
mixture phase, scales each bin's magnitude, and an inverse STFT gives the estimate.

The *ideal* masks are computed from the true sources, which a real system does not
have: they tell us the best any mask-based separator with this STFT could do. Every
model of the course is compared with them.

- ideal binary mask (IBM): 1 where the target dominates the rest by ``threshold_db``, else 0.
- ideal ratio mask (IRM): ``|S|^p / (|S|^p + |N|^p)``; ``p = 1`` magnitude, ``p = 2`` power.
- Wiener-like mask: the same ratio of *power spectral densities*, estimated by
  averaging ``|S|^2`` over a few neighbouring frames, as a Wiener filter would use
  smooth statistics instead of the exact instantaneous power.

Masks also refine a separator's own estimates: :func:`wiener_refine` sharpens a
two-source mask, :func:`wiener_refine_sources` recomputes the masks of any number
of sources from their estimated powers, so that the estimates add up to the mixture.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from tpsep import spectral

EPS = 1e-10

MASK_KINDS = ("ibm", "irm", "irm2", "wiener", "mix")


def _check_pair(target_mag, other_mag, name: str):
    target_mag, other_mag = spectral.as_tensor(target_mag), spectral.as_tensor(other_mag)
    if target_mag.shape != other_mag.shape:
        raise ValueError(f"{name}: target and other magnitudes must have the same shape "
                         f"(..., freq, frames), got {tuple(target_mag.shape)} and {tuple(other_mag.shape)}")
    if target_mag.is_complex() or other_mag.is_complex():
        raise ValueError(f"{name} expects magnitudes (real, >= 0), got a complex spectrogram; "
                         "take tpsep.spectral.magnitude(X) first")
    return target_mag.abs(), other_mag.abs()


def ideal_binary_mask(target_mag, other_mag, threshold_db: float = 0.0) -> torch.Tensor:
    """Ideal binary mask: 1 where the target is louder than the rest by more than ``threshold_db``.

    Args:
        target_mag: ``|S|``, magnitude of the target source, ``(..., freq, frames)``.
        other_mag: ``|N|``, magnitude of everything else (``|X - S|``), same shape.
        threshold_db: local SNR threshold in dB; 0 dB means "target louder than the rest".

    Returns:
        float tensor of 0s and 1s, ``(..., freq, frames)``.
    """
    target_mag, other_mag = _check_pair(target_mag, other_mag, "ideal_binary_mask")
    gain = 10.0 ** (threshold_db / 20.0)
    return (target_mag > gain * other_mag).to(target_mag.dtype)


def ideal_ratio_mask(target_mag, other_mag, power: float = 1.0) -> torch.Tensor:
    """Ideal ratio mask ``|S|^p / (|S|^p + |N|^p)``.

    Args:
        target_mag: ``|S|``, ``(..., freq, frames)``.
        other_mag: ``|N|``, same shape.
        power: exponent ``p``: 1 for the magnitude IRM, 2 for the power IRM.

    Returns:
        tensor of values in [0, 1], ``(..., freq, frames)``; 0 where both are silent.
    """
    if power <= 0:
        raise ValueError(f"ideal_ratio_mask: power must be > 0, got {power}")
    target_mag, other_mag = _check_pair(target_mag, other_mag, "ideal_ratio_mask")
    target_p, other_p = target_mag ** power, other_mag ** power
    return target_p / (target_p + other_p + EPS)


def _smooth_frames(power: torch.Tensor, context_frames: int) -> torch.Tensor:
    """Moving average over ``context_frames`` frames (centred), ``(..., freq, frames)``."""
    if context_frames == 1:
        return power
    lead, (freq, frames) = power.shape[:-2], power.shape[-2:]
    flat = power.reshape(-1, 1, frames)
    kernel = torch.ones(1, 1, context_frames, dtype=power.dtype) / context_frames
    left = (context_frames - 1) // 2
    padded = torch.nn.functional.pad(flat, (left, context_frames - 1 - left), mode="replicate")
    return torch.nn.functional.conv1d(padded, kernel).reshape(*lead, freq, frames)


def wiener_mask(target_mag, other_mag, context_frames: int = 5) -> torch.Tensor:
    """Wiener-like soft mask ``P_S / (P_S + P_N)`` from locally averaged powers.

    A Wiener filter weights each bin by the ratio of the power spectral densities
    (PSD) of target and interference. We estimate each PSD by averaging ``|.|^2``
    over ``context_frames`` neighbouring frames; with ``context_frames = 1`` this
    is exactly the power IRM.

    Args:
        target_mag: ``|S|``, ``(..., freq, frames)``.
        other_mag: ``|N|``, same shape.
        context_frames: odd or even number >= 1 of frames in the PSD average.

    Returns:
        tensor of values in [0, 1], ``(..., freq, frames)``.
    """
    if int(context_frames) != context_frames or context_frames < 1:
        raise ValueError(f"wiener_mask: context_frames must be an integer >= 1, got {context_frames}")
    target_mag, other_mag = _check_pair(target_mag, other_mag, "wiener_mask")
    target_psd = _smooth_frames(target_mag ** 2, int(context_frames))
    other_psd = _smooth_frames(other_mag ** 2, int(context_frames))
    return target_psd / (target_psd + other_psd + EPS)


def wiener_refine(mask: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """Wiener-like refinement of a two-source mask: ``M^p / (M^p + (1 - M)^p)``.

    The estimates of the target and of the rest are ``M |X|`` and ``(1 - M) |X|``;
    a power ratio of the two (p = 2, as a Wiener filter uses powers) pushes
    uncertain bins towards 0 or 1: less bleeding, a little more artefacts.
    """
    mask = mask.clamp(0, 1)
    return power_ratio_masks(torch.stack([mask, 1 - mask]), power)[0]


def power_ratio_masks(source_mags: torch.Tensor, power: float) -> torch.Tensor:
    """``|S_j|^p / sum_k |S_k|^p`` over the first axis of ``source_mags`` (>= 0); 0 where every one is 0."""
    # divide by the loudest estimate first: the ratios lie in [0, 1] with the loudest exactly 1, so
    # raising them to the power p can neither overflow nor vanish, however quiet or loud the bin
    loudest = source_mags.amax(dim=0, keepdim=True)
    powers = (source_mags / loudest.clamp_min(torch.finfo(source_mags.dtype).tiny)) ** power
    # the sum is >= 1 unless every estimate is 0 there (then every power is 0, and so is every mask)
    return powers / powers.sum(dim=0, keepdim=True).clamp_min(1.0)


def wiener_refine_sources(source_mags, mixture_stft, power: float = 2.0) -> torch.Tensor:
    """Wiener-like refinement of the estimates of all sources at once.

    A separator's magnitude estimates ``|S_1|, ..., |S_J|`` need not add up to the
    mixture. Their powers give each source a soft mask
    ``M_j = |S_j|^p / sum_k |S_k|^p`` (p = 2: a ratio of powers, as a Wiener filter
    uses), and the refined estimates ``M_j X`` take the mixture phase and add up to
    the mixture ``X`` in every bin where some estimate is not silent. For two sources
    estimated as ``M |X|`` and ``(1 - M) |X|`` this is :func:`wiener_refine`.

    Args:
        source_mags: real ``(J, ..., freq, frames)``, the magnitude estimates (>= 0) of the J sources.
        mixture_stft: complex ``(..., freq, frames)``, the mixture STFT.
        power: the exponent ``p`` > 0.

    Returns:
        complex ``(J, ..., freq, frames)``: the refined estimates; 0 where every estimate is 0
        (those bins, and only those, are missing from the sum).
    """
    source_mags, mixture_stft = spectral.as_tensor(source_mags, "source_mags"), spectral.as_tensor(mixture_stft)
    if not power > 0:
        raise ValueError(f"wiener_refine_sources: power must be > 0, got {power}")
    if source_mags.is_complex():
        raise ValueError("wiener_refine_sources expects magnitude estimates (real, >= 0), got a complex "
                         "spectrogram; take .abs() first")
    if not mixture_stft.is_complex():
        raise ValueError("wiener_refine_sources expects the complex mixture STFT (the phase is needed), "
                         f"got dtype {mixture_stft.dtype}")
    if source_mags.ndim < 3 or source_mags.shape[1:] != mixture_stft.shape:
        raise ValueError(f"wiener_refine_sources: source_mags should be (sources, ...) stacked on a first axis, "
                         f"each with the mixture STFT's shape {tuple(mixture_stft.shape)}; "
                         f"got {tuple(source_mags.shape)}")
    if (source_mags < 0).any():
        raise ValueError("wiener_refine_sources expects magnitudes >= 0, got negative values")
    soft_masks = power_ratio_masks(source_mags.to(mixture_stft.real.dtype), power)
    return soft_masks * mixture_stft                                 # the J masks add up to 1 in every bin


def compute_mask(kind: str, target_mag, other_mag, *, power: float | None = None,
                 threshold_db: float = 0.0, context_frames: int = 5) -> torch.Tensor:
    """One entry point for every oracle mask, by name.

    Args:
        kind: "ibm", "irm" (power 1), "irm2" (power 2), "wiener" or "mix" (all ones).
        target_mag, other_mag: ``(..., freq, frames)`` magnitudes.
        power: overrides the IRM exponent (so "irm" with power=1.5 is allowed).

    Returns:
        ``(..., freq, frames)`` mask.
    """
    if kind == "ibm":
        return ideal_binary_mask(target_mag, other_mag, threshold_db=threshold_db)
    if kind in ("irm", "irm2"):
        default = 1.0 if kind == "irm" else 2.0
        return ideal_ratio_mask(target_mag, other_mag, power=default if power is None else power)
    if kind == "wiener":
        return wiener_mask(target_mag, other_mag, context_frames=context_frames)
    if kind == "mix":
        target_mag, _ = _check_pair(target_mag, other_mag, "compute_mask")
        return torch.ones_like(target_mag)
    raise ValueError(f"unknown mask kind {kind!r}; expected one of {MASK_KINDS}")


def apply_mask(mask, mixture_stft) -> torch.Tensor:
    """Multiply the mixture STFT by a mask, keeping the mixture phase.

    The mask may have the full ``n_fft // 2 + 1`` bins (513 for n_fft 1024) or the
    512-bin convention of the networks (Nyquist bin dropped, see
    :func:`tpsep.spectral.crop_bins`); a 512-bin result gets a zero Nyquist bin back
    (:func:`tpsep.spectral.restore_bins`), so the output is always ready for istft.

    Args:
        mask: real ``(..., F, frames)`` with ``F`` = bins or bins - 1 of the mixture.
        mixture_stft: complex ``(..., bins, frames)``.

    Returns:
        complex ``(..., bins, frames)``: the masked mixture.
    """
    mask, mixture_stft = spectral.as_tensor(mask), spectral.as_tensor(mixture_stft)
    if not mixture_stft.is_complex():
        raise ValueError("apply_mask expects the complex mixture STFT (the phase is needed), "
                         f"got dtype {mixture_stft.dtype}")
    if mask.is_complex():
        raise ValueError("apply_mask expects a real mask; complex masks are not part of this module")
    bins = mixture_stft.shape[-2]
    if mask.shape[-1] != mixture_stft.shape[-1] or mask.shape[-2] not in (bins, bins - 1):
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not fit the mixture STFT {tuple(mixture_stft.shape)}: "
            f"expected (..., {bins} or {bins - 1}, {mixture_stft.shape[-1]})")
    if mask.shape[-2] == bins - 1:
        cropped = mask.to(mixture_stft.real.dtype) * spectral.crop_bins(mixture_stft, bins=bins - 1)
        return spectral.restore_bins(cropped, None)
    return mask.to(mixture_stft.real.dtype) * mixture_stft


def with_mixture_phase(magnitude, mixture_stft) -> torch.Tensor:
    """Combine an estimated magnitude with the mixture phase: ``|Y| exp(i angle(X))``.

    Args:
        magnitude: real ``(..., F, frames)``, F = bins or bins - 1 (512-bin convention).
        mixture_stft: complex ``(..., bins, frames)``.

    Returns:
        complex ``(..., bins, frames)``.
    """
    magnitude, mixture_stft = spectral.as_tensor(magnitude), spectral.as_tensor(mixture_stft)
    unit = mixture_stft / (mixture_stft.abs() + EPS)
    return apply_mask(magnitude, unit)


def separate_with_oracle(mixture, sources: dict, kind: str = "irm", targets=None, *,
                         n_fft: int = 1024, hop: int = 256, **mask_options) -> dict:
    """Oracle separation: mask the mixture with an ideal mask built from the true sources.

    For each target the "other" magnitude is ``|X - S|``, the magnitude of everything
    but the target, so the masks of a two-source problem add up to one.

    Args:
        mixture: numpy or torch ``(channels, samples)``.
        sources: dict name -> ``(channels, samples)``; may include "accompaniment".
        kind: one of ``MASK_KINDS``.
        targets: names to estimate (default: every key of ``sources``).
        n_fft, hop: STFT parameters.
        **mask_options: ``power``, ``threshold_db``, ``context_frames`` (see :func:`compute_mask`).

    Returns:
        dict name -> float32 numpy ``(channels, samples)``.
    """
    mixture_t = spectral.as_tensor(np.asarray(mixture, dtype=np.float32))
    if mixture_t.ndim != 2:
        raise ValueError(f"mixture must be (channels, samples), got shape {tuple(mixture_t.shape)}")
    targets = list(sources) if targets is None else list(targets)
    X = spectral.stft(mixture_t, n_fft=n_fft, hop=hop)
    estimates = {}
    for name in targets:
        if name not in sources:
            raise ValueError(f"no source named {name!r}; available: {sorted(sources)}")
        target = spectral.as_tensor(np.asarray(sources[name], dtype=np.float32))
        if target.shape != mixture_t.shape:
            raise ValueError(f"source {name!r} has shape {tuple(target.shape)}, "
                             f"the mixture {tuple(mixture_t.shape)}")
        S = spectral.stft(target, n_fft=n_fft, hop=hop)
        mask = compute_mask(kind, S.abs(), (X - S).abs(), **mask_options)
        y = spectral.istft(apply_mask(mask, X), n_fft=n_fft, hop=hop, length=mixture_t.shape[-1])
        estimates[name] = y.numpy().astype(np.float32)
    return estimates


def oracle_separator(kind: str = "irm", *, n_fft: int = 1024, hop: int = 256,
                     **mask_options) -> Callable:
    """A separator ``separator(track) -> {source name: estimate (channels, samples)}``.

    It reads the track's true sources to build the ideal mask, so it is a ceiling,
    not a method. Used by :func:`tpsep.evaluation.evaluate` and ``tpsep evaluate --oracle``.
    The targets are all the track's sources plus "accompaniment" when it has "vocals".
    """
    if kind not in MASK_KINDS:
        raise ValueError(f"unknown oracle {kind!r}; expected one of {MASK_KINDS}")

    def separator(track) -> dict:
        sources = dict(track.sources)
        if "vocals" in sources:
            sources["accompaniment"] = track.stem("accompaniment")
        return separate_with_oracle(track.mixture, sources, kind=kind, n_fft=n_fft, hop=hop,
                                    **mask_options)

    separator.__name__ = f"oracle_{kind}"
    separator.description = f"oracle {kind} mask, n_fft={n_fft}, hop={hop} {mask_options or ''}".strip()
    return separator
