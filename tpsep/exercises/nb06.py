"""Exercises of notebook 06 (band-split models): the band layout, the band split, the complex mask,
and the ideal mask in the mask estimators' layout."""

from __future__ import annotations

import numpy as np
import torch

from tpsep.exercises import CheckFailed, compare, register
from tpsep.models import bandsplit


def band_bins(edges_hz, rate: int, n_fft: int) -> list[int]:
    """Band widths in bins for boundaries ``edges_hz`` (between bands) at ``rate`` and ``n_fft``."""
    return bandsplit.band_bins(bandsplit.BandSplitConfig(rate=rate, n_fft=n_fft, band_edges_hz=tuple(edges_hz)))


def split_bands(X: torch.Tensor, widths: list[int]) -> list[torch.Tensor]:
    return bandsplit.split_bands(X, widths)


def apply_complex_mask(raw: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """Raw mask ``(batch, T, F * channels * 2)`` (bin, channel, real/imaginary) times the mixture
    ``X`` ``(batch, channels, F, T)``: the source's spectrogram ``(batch, channels, F, T)``."""
    masks = bandsplit.interleaved_to_complex(raw, X.shape[-2], X.shape[1])
    return masks * X


def ideal_raw_mask(S: torch.Tensor, X: torch.Tensor) -> torch.Tensor:
    """The ideal complex mask ``S / X`` in the mask estimators' raw layout: ``(batch, T, F * channels * 2)``,
    ordered (bin, channel, real/imaginary), the inverse of :func:`apply_complex_mask`'s reshape."""
    return torch.view_as_real(S / X).permute(0, 3, 2, 1, 4).reshape(S.shape[0], S.shape[-1], -1)


def _layout_inputs(rng):
    rate = int(rng.choice([8000, 16000, 22050, 44100]))
    n_fft = int(rng.choice([256, 512, 1024, 2048]))
    bins = n_fft // 2 + 1
    boundaries = np.sort(rng.choice(np.arange(1, bins - 1), size=int(rng.integers(3, 12)), replace=False))
    jitter = rng.uniform(-0.4, 0.4, size=boundaries.size)  # an edge in Hz rarely falls on a bin exactly
    edges = [round(float((b + j) * rate / n_fft), 3) for b, j in zip(boundaries, jitter)]
    return (edges, rate, n_fft), {}


def _test_band_bins(attempt, reference, rng):
    args, _ = _layout_inputs(rng)
    got, expected = attempt(*args), reference(*args)
    where = f"band_bins(edges of {len(args[0])} boundaries, rate={args[1]}, n_fft={args[2]})"
    if got is None or len(got) != len(expected):
        raise CheckFailed(f"{where}: expected {len(expected)} widths (one per band: boundaries + 1), "
                          f"got {None if got is None else len(got)}")
    if sum(got) != args[2] // 2 + 1:
        raise CheckFailed(f"{where}: the widths add up to {sum(got)}, expected n_fft // 2 + 1 = {args[2] // 2 + 1} "
                          "(every bin once, the Nyquist bin included)")
    compare(np.asarray(got), np.asarray(expected), where=where)


def _spectrogram(rng, batch, channels, bins, frames):
    parts = rng.standard_normal((batch, channels, bins, frames, 2)).astype("float32")
    return torch.view_as_complex(torch.from_numpy(parts))


def _split_inputs(rng):
    n_fft = int(rng.choice([16, 32, 64]))
    bins = n_fft // 2 + 1
    cuts = np.sort(rng.choice(np.arange(1, bins), size=int(rng.integers(2, 6)), replace=False))
    widths = np.diff(np.concatenate([[0], cuts, [bins]])).tolist()
    X = _spectrogram(rng, int(rng.integers(1, 3)), int(rng.integers(1, 3)), bins, int(rng.integers(2, 7)))
    return (X, widths), {}


def _mask_inputs(rng):
    batch, channels, bins, frames = int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.choice([9, 17])), 5
    X = _spectrogram(rng, batch, channels, bins, frames)
    raw = torch.from_numpy(rng.standard_normal((batch, frames, bins * channels * 2)).astype("float32"))
    return (raw, X), {}


def _ideal_mask_inputs(rng):
    batch, channels, bins, frames = int(rng.integers(1, 3)), int(rng.integers(1, 3)), int(rng.choice([9, 17])), 5
    return (_spectrogram(rng, batch, channels, bins, frames), _spectrogram(rng, batch, channels, bins, frames)), {}


register("06.band_bins", reference=band_bins, test=_test_band_bins,
         hint="boundary f Hz falls on bin round(f * n_fft / rate); add 0 at the start and n_fft // 2 + 1 at "
              "the end, and take the differences")
register("06.split_bands", reference=split_bands, make_inputs=_split_inputs,
         hint="torch.view_as_real(X) gives (batch, channels, F, T, 2); permute to (batch, T, F, channels, 2), "
              "split along F with the widths, and flatten the last three axes of each band")
register("06.apply_complex_mask", reference=apply_complex_mask, make_inputs=_mask_inputs, atol=1e-5,
         hint="reshape raw to (batch, T, F, channels, 2), view_as_complex, move the axes to (batch, channels, F, T), "
              "then multiply by X: a complex product, not one of real parts")
register("06.ideal_raw_mask", reference=ideal_raw_mask, make_inputs=_ideal_mask_inputs, atol=1e-4,
         hint="M = S / X is complex (batch, channels, F, T); view_as_real, then permute to (batch, T, F, channels, 2) "
              "and flatten the last three axes: the exact inverse of apply_complex_mask's reshape")
