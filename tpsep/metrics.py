"""Measuring separation the way the field does.

Two families of scores, both in dB, higher is better:

- **SI-SDR** (scale-invariant SDR, Le Roux et al. 2019): project the estimate on the
  reference, ``s_target = <s_hat, s> s / ||s||^2``, and compare it with what is left,
  ``10 log10(||s_target||^2 / ||s_hat - s_target||^2)``. Cheap, differentiable (a loss),
  written here in torch. SI-SDRi = SI-SDR(estimate) - SI-SDR(mixture).
- **BSS Eval SDR / SIR / SAR** (Vincent et al. 2006; version 4, Stöter et al. 2018): the
  reference may be *filtered* (512-tap FIR) before the comparison, and the error is split
  into interference (other sources leaking in) and artifacts. We call museval, the
  reference implementation used by SiSEC, on 1-second frames; a song's score is the
  median over its frames and a method's score the median over songs.

``fast_sdr`` computes BSS Eval v3 ``bss_eval_sources`` SDR (whole signal) in a small
fraction of museval's time, for quick iteration; it agrees with museval to < 0.05 dB.

museval without ffmpeg: ``import museval`` imports musdb and stempeg, and stempeg
refuses to import without an ``ffmpeg`` binary, although museval's ``metrics.py`` needs
only numpy and scipy. :func:`museval_metrics` therefore loads that one file directly
when ffmpeg is absent.
"""

from __future__ import annotations

import importlib
import importlib.util
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fft
import scipy.linalg
import torch

from tpsep.spectral import as_tensor

FFMPEG_HELP = ("install ffmpeg (Debian/Ubuntu: sudo apt-get install ffmpeg; conda: "
               "conda install -c conda-forge ffmpeg; macOS: brew install ffmpeg) and make sure "
               "`ffmpeg` and `ffprobe` are on your PATH")
METRICS = ("SDR", "ISR", "SIR", "SAR")
AGGREGATION = "median over 1 s frames within each track, then median over tracks (SiSEC 2018)"
WHOLE_SIGNAL_AGGREGATION = "one whole-signal score per track, then median over tracks"


# ----------------------------------------------------------------------------- SI-SDR

def _as_float_tensor(x, name: str) -> torch.Tensor:
    x = as_tensor(x, name)
    if not torch.is_floating_point(x):
        x = x.float()
    return x


def si_sdr(estimate, reference, zero_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant signal-to-distortion ratio in dB, batched and differentiable.

    Args:
        estimate: ``(..., samples)`` torch tensor (or numpy array).
        reference: same shape as ``estimate``.
        zero_mean: remove each signal's mean first (the usual definition).
        eps: keeps the log finite for a silent estimate (about -80 dB then).

    Returns:
        tensor ``(...)`` of SI-SDR values in dB (the batch shape).

    Raises:
        ValueError: shapes differ, NaN/inf in the input, or an all-zero reference
            (its SI-SDR is undefined: there is nothing to project on).
    """
    estimate = _as_float_tensor(estimate, "estimate")
    reference = _as_float_tensor(reference, "reference").to(estimate.dtype)
    if estimate.shape != reference.shape:
        raise ValueError(f"si_sdr: estimate {tuple(estimate.shape)} and reference "
                         f"{tuple(reference.shape)} must have the same shape (..., samples)")
    if estimate.shape[-1] < 2:
        raise ValueError(f"si_sdr needs at least 2 samples, got shape {tuple(estimate.shape)}")
    for name, x in (("estimate", estimate), ("reference", reference)):
        if not torch.isfinite(x.detach()).all():
            raise ValueError(f"si_sdr: the {name} contains NaN or inf")
    if zero_mean:
        estimate = estimate - estimate.mean(dim=-1, keepdim=True)
        reference = reference - reference.mean(dim=-1, keepdim=True)
    ref_energy = (reference ** 2).sum(dim=-1)
    silent = ref_energy.detach() == 0
    if silent.any():
        where = torch.nonzero(silent).tolist() if silent.ndim else "the only signal"
        raise ValueError(f"si_sdr: the reference is all zeros (after mean removal) at batch index "
                         f"{where}; SI-SDR is undefined for a silent reference. Drop silent "
                         "references from the evaluation.")
    scale = (estimate * reference).sum(dim=-1, keepdim=True) / ref_energy.unsqueeze(-1)
    target = scale * reference
    noise = estimate - target
    return 10 * torch.log10((target ** 2).sum(dim=-1) / ((noise ** 2).sum(dim=-1) + eps) + eps)


def si_sdr_improvement(estimate, reference, mixture, zero_mean: bool = True) -> torch.Tensor:
    """SI-SDRi = SI-SDR(estimate, reference) - SI-SDR(mixture, reference), in dB.

    Args:
        estimate, reference, mixture: ``(..., samples)``, same shape.

    Returns:
        tensor ``(...)``: how many dB the separation gained over doing nothing.
    """
    mixture = _as_float_tensor(mixture, "mixture")
    return si_sdr(estimate, reference, zero_mean) - si_sdr(mixture, reference, zero_mean)


# ----------------------------------------------------------------------------- museval

def ffmpeg_available() -> bool:
    """True when both ``ffmpeg`` and ``ffprobe`` are on PATH (what stempeg checks)."""
    return shutil.which("ffmpeg") is not None and shutil.which("ffprobe") is not None


def require_ffmpeg(what: str = "this step") -> None:
    """Raise a RuntimeError with install instructions when ffmpeg is missing."""
    if not ffmpeg_available():
        raise RuntimeError(f"{what} needs the ffmpeg program, which was not found: {FFMPEG_HELP}.")


def import_museval():
    """The full museval package (``museval.eval_mus_track``, ``EvalStore``...).

    It needs ffmpeg because it imports musdb/stempeg; for scores alone use
    :func:`museval_metrics`, which does not.
    """
    require_ffmpeg("the full museval package (it imports musdb and stempeg)")
    return importlib.import_module("museval")


_MUSEVAL_METRICS = None


def museval_metrics():
    """museval's ``metrics`` module (BSS Eval v4), loaded even when ffmpeg is absent.

    With ffmpeg, this is plain ``import museval.metrics``. Without it, museval's
    ``__init__`` would fail (it imports stempeg), so we load ``museval/metrics.py``
    on its own under the private name ``tpsep._museval_metrics``.
    """
    global _MUSEVAL_METRICS
    if _MUSEVAL_METRICS is not None:
        return _MUSEVAL_METRICS
    if ffmpeg_available():
        _MUSEVAL_METRICS = importlib.import_module("museval.metrics")
        return _MUSEVAL_METRICS
    spec = importlib.util.find_spec("museval")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("museval is not installed: pip install museval")
    path = Path(list(spec.submodule_search_locations)[0]) / "metrics.py"
    if not path.exists():
        raise ImportError(f"museval is installed but {path} is missing; reinstall museval")
    name = "tpsep._museval_metrics"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    _MUSEVAL_METRICS = module
    return module


def _stack_sources(references, estimates):
    """Check and convert ``(nsrc, channels, samples)`` arrays to museval's ``(nsrc, samples, channels)``."""
    references = np.asarray(references, dtype=np.float64)
    estimates = np.asarray(estimates, dtype=np.float64)
    if references.ndim == 2:  # (n_sources, samples): mono
        references = references[:, None]
    if estimates.ndim == 2:
        estimates = estimates[:, None]
    if references.ndim != 3:
        raise ValueError(f"references must be (n_sources, channels, samples), got shape {references.shape}")
    for name, x in (("references", references), ("estimates", estimates)):
        if x.ndim == 3 and x.shape[1] > 8 and x.shape[2] <= 8:
            raise ValueError(f"{name} of shape {x.shape} look like (n_sources, samples, channels), museval's "
                             "layout; tpsep takes (n_sources, channels, samples): pass x.transpose(0, 2, 1)")
    if estimates.shape != references.shape:
        raise ValueError(f"estimates {estimates.shape} and references {references.shape} must have the "
                         "same shape (n_sources, channels, samples); trim or pad the estimates first")
    for name, x in (("references", references), ("estimates", estimates)):
        if not np.isfinite(x).all():
            raise ValueError(f"{name} contain NaN or inf")
    silent = [j for j in range(references.shape[0]) if not np.any(references[j])]
    if silent:
        raise ValueError(f"reference source(s) {silent} are all zeros: BSS Eval is undefined for a "
                         "silent reference; leave that source out of the evaluation")
    return references.transpose(0, 2, 1), estimates.transpose(0, 2, 1)


def bss_eval(references, estimates, rate: int, window_seconds: float = 1.0,
             hop_seconds: float = 1.0) -> dict:
    """Framed BSS Eval v4 (museval, as in SiSEC 2018): one score per source and frame.

    The window and hop are given in seconds and converted to samples with ``rate``
    (museval counts in samples; its 44100 default is 1 s only at 44.1 kHz).
    Silent frames of a reference or an estimate get NaN, as in museval.

    Args:
        references: ``(n_sources, channels, samples)`` true sources.
        estimates: same shape, the separated sources (same order).
        rate: sample rate in Hz.
        window_seconds, hop_seconds: framing; ``np.inf`` gives whole-signal scores.

    Returns:
        dict "SDR", "ISR", "SIR", "SAR" -> float arrays ``(n_sources, frames)``.
    """
    if rate <= 0:
        raise ValueError(f"rate must be a positive sample rate in Hz, got {rate}")
    refs, ests = _stack_sources(references, estimates)
    window = np.inf if np.isinf(window_seconds) else int(round(window_seconds * rate))
    hop = np.inf if np.isinf(hop_seconds) else int(round(hop_seconds * rate))
    sdr, isr, sir, sar, _ = museval_metrics().bss_eval(
        refs, ests, window=window, hop=hop, compute_permutation=False,
        framewise_filters=False, bsseval_sources_version=False)
    return {"SDR": sdr, "ISR": isr, "SIR": sir, "SAR": sar}


def bss_eval_global(references, estimates) -> dict:
    """Whole-signal BSS Eval v4 scores: one number per source.

    Args:
        references, estimates: ``(n_sources, channels, samples)``.

    Returns:
        dict "SDR", "ISR", "SIR", "SAR" -> arrays ``(n_sources,)``.
    """
    scores = bss_eval(references, estimates, rate=1, window_seconds=np.inf, hop_seconds=np.inf)
    return {k: v[:, 0] for k, v in scores.items()}


def bss_eval_sources(references, estimates, compute_permutation: bool = False) -> dict:
    """museval's BSS Eval v3 ``bss_eval_sources`` (whole signal), the reference for :func:`fast_sdr`.

    Args:
        references, estimates: ``(n_sources, channels, samples)``.
        compute_permutation: search the best source order (slow; off: estimates are in order).

    Returns:
        dict "SDR", "SIR", "SAR" -> arrays ``(n_sources,)``.
    """
    refs, ests = _stack_sources(references, estimates)
    sdr, sir, sar, _ = museval_metrics().bss_eval_sources(refs, ests, compute_permutation=compute_permutation)
    return {"SDR": sdr[:, 0], "SIR": sir[:, 0], "SAR": sar[:, 0]}


# ----------------------------------------------------------------------------- fast SDR

def _correlations(reference: np.ndarray, signal: np.ndarray, lags: int, n_fft: int) -> np.ndarray:
    """``out[l] = sum_t reference(t - l) * signal(t)`` for l = 0..lags-1, via the FFT."""
    spectrum = np.conj(scipy.fft.rfft(reference, n=n_fft)) * scipy.fft.rfft(signal, n=n_fft)
    return scipy.fft.irfft(spectrum, n=n_fft)[..., :lags]


def fast_sdr(references, estimates, filters_len: int = 512) -> np.ndarray:
    """Whole-signal SDR of BSS Eval v3 ``bss_eval_sources``, fast.

    The SDR of source j only needs the projection ``P s_hat`` of the estimate on the
    reference delayed by 0..L-1 samples (a 512-tap filter per channel pair): it solves
    the normal equations ``G c = d`` where ``G`` holds the reference's correlations (a
    Toeplitz matrix for mono, solved by Levinson recursion) and ``d`` its correlation
    with the estimate, then ``SDR = 10 log10(c.d / (||s_hat||^2 - c.d))``, since
    ``||P s_hat||^2 = c.d``. Interference and artifacts are not separated, so there
    is no SIR/SAR here; use :func:`bss_eval_sources` for them.
    Everything runs in numpy/scipy, one source at a time (no batched
    ``torch.linalg.solve``, which is wrong at 2 threads with torch 2.13 on this CPU).

    Args:
        references, estimates: ``(n_sources, channels, samples)`` (or ``(n_sources, samples)``).
        filters_len: number of filter taps L (museval uses 512).

    Returns:
        float array ``(n_sources,)`` of SDR in dB.
    """
    refs, ests = _stack_sources(references, estimates)  # (nsrc, samples, channels)
    refs, ests = refs.transpose(0, 2, 1), ests.transpose(0, 2, 1)  # back to (nsrc, channels, samples)
    n_sources, channels, samples = refs.shape
    n_fft = scipy.fft.next_fast_len(samples + filters_len - 1, real=True)
    out = np.empty(n_sources)
    for j in range(n_sources):
        ref_spec = scipy.fft.rfft(refs[j], n=n_fft)  # (channels, n_fft//2+1)
        est_spec = scipy.fft.rfft(ests[j], n=n_fft)
        # d[(c_ref, lag), c_est] = sum_t ref_c_ref(t - lag) est_c_est(t)
        d = scipy.fft.irfft(np.conj(ref_spec)[:, None] * est_spec[None], n=n_fft)[..., :filters_len]
        d = d.transpose(0, 2, 1).reshape(channels * filters_len, channels)
        if channels == 1:
            autocorr = scipy.fft.irfft(np.abs(ref_spec[0]) ** 2, n=n_fft)[:filters_len]
            coef = scipy.linalg.solve_toeplitz(autocorr, d)
        else:
            # block (c1, c2) of G: G[l1, l2] = sum_t ref_c1(t - l1) ref_c2(t - l2) = rho(l1 - l2)
            rho = scipy.fft.irfft(np.conj(ref_spec)[:, None] * ref_spec[None], n=n_fft)
            blocks = [[scipy.linalg.toeplitz(rho[c1, c2, :filters_len],
                                             np.r_[rho[c1, c2, 0], rho[c1, c2, :-filters_len:-1]])
                       for c2 in range(channels)] for c1 in range(channels)]
            coef = np.linalg.solve(np.block(blocks), d)
        projected_energy = float(np.sum(coef * d))
        total_energy = float(np.sum(ests[j] ** 2))
        residual = max(total_energy - projected_energy, np.finfo(float).tiny)
        out[j] = 10 * np.log10(max(projected_energy, np.finfo(float).tiny) / residual)
    return out


# ----------------------------------------------------------------------------- tables

def scores_table(scores: dict, target_names, track: str = "track", method: str = "method") -> pd.DataFrame:
    """A long table of framed scores: one row per (method, track, target, metric, frame).

    Args:
        scores: dict metric -> ``(n_targets, frames)`` as returned by :func:`bss_eval`.
        target_names: the n_targets names, in order.

    Returns:
        DataFrame with columns method, track, target, metric, frame, value.
    """
    rows = []
    for metric, values in scores.items():
        values = np.atleast_2d(np.asarray(values, dtype=float))
        if values.shape[0] != len(target_names):
            raise ValueError(f"{metric}: {values.shape[0]} rows of scores for {len(target_names)} targets")
        for target, row in zip(target_names, values):
            for frame, value in enumerate(row):
                rows.append((method, track, target, metric, frame, float(value)))
    return pd.DataFrame(rows, columns=["method", "track", "target", "metric", "frame", "value"])


def track_table(frames: pd.DataFrame) -> pd.DataFrame:
    """Median over frames (NaN frames, i.e. silent ones, ignored) for each track.

    Args:
        frames: the long table of :func:`scores_table` (several tracks/methods concatenated).

    Returns:
        DataFrame indexed by (method, track, target), one column per metric.
    """
    per_track = frames.groupby(["method", "track", "target", "metric"], sort=False)["value"].median()
    table = per_track.unstack("metric")
    return table[[m for m in METRICS if m in table.columns] + [m for m in table.columns if m not in METRICS]]


def summary_table(frames: pd.DataFrame) -> pd.DataFrame:
    """SiSEC aggregation: median over frames within a track, then median over tracks.

    Args:
        frames: the long table of :func:`scores_table`.

    Returns:
        DataFrame indexed by (method, target), one column per metric, plus "tracks"
        (how many tracks went into the median). ``table.attrs["aggregation"]`` says how:
        framed scores (museval) or one whole-signal score per track (SI-SDR, fast SDR).
    """
    per_track = track_table(frames)
    summary = per_track.groupby(level=["method", "target"], sort=False).median()
    summary["tracks"] = per_track.groupby(level=["method", "target"], sort=False).size()
    framed = frames.groupby(["method", "track", "target", "metric"])["frame"].nunique().max() > 1
    summary.attrs["aggregation"] = AGGREGATION if framed else WHOLE_SIGNAL_AGGREGATION
    return summary


def format_summary(summary: pd.DataFrame, decimals: int = 2) -> str:
    """The summary table as text, followed by a line stating the aggregation."""
    body = summary.round(decimals).to_string()
    return f"{body}\n(dB; {summary.attrs.get('aggregation', AGGREGATION)})"
