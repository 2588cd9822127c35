"""Exercises of notebook 02 (masking and evaluation): the IBM, the IRM, masking to audio, SI-SDR."""

import numpy as np

from tpsep import masks, metrics, spectral
from tpsep.exercises import CheckFailed, ReferenceFailed, compare, register


def _magnitudes(rng):
    """Two random magnitude spectrograms ``(freq, frames)`` with a wide dynamic range."""
    freq, frames = int(rng.integers(5, 80)), int(rng.integers(3, 40))
    target = rng.random((freq, frames)) ** 3 * 10 ** rng.uniform(-1, 1)
    other = rng.random((freq, frames)) ** 3 * 10 ** rng.uniform(-1, 1)
    return target, other


def _ibm_inputs(rng):
    target, other = _magnitudes(rng)
    return (target, other), {"threshold_db": float(rng.choice([0.0, -10.0, -6.0, 3.0, 6.0, 10.0]))}


def _irm_inputs(rng):
    target, other = _magnitudes(rng)
    return (target, other), {"power": float(rng.choice([1.0, 2.0, 0.5, 1.5]))}


def mask_to_audio_reference(mask, mixture_stft, n_fft, hop, length):
    """tpsep's way from a mask to audio: ``istft(apply_mask(mask, X))``, with the mixture phase.

    A mask with one bin fewer than the STFT (the networks' 512-bin convention) gets a
    silent Nyquist bin back (:func:`tpsep.masks.apply_mask`).
    """
    masked = masks.apply_mask(np.asarray(mask), np.asarray(mixture_stft))
    return spectral.istft(masked, n_fft=n_fft, hop=hop, length=length).numpy()


def _test_mask_to_audio(attempt, reference, rng):
    """One trial: the same mixture masked with a full-size mask, then with a 512-bin-style one."""
    n_fft = int(rng.choice([64, 128, 256]))
    hop = n_fft // int(rng.choice([2, 4]))
    length = int(rng.integers(4 * n_fft, 12 * n_fft))
    mixture_stft = spectral.stft(rng.standard_normal(length), n_fft=n_fft, hop=hop).numpy()
    full_mask = rng.random(mixture_stft.shape)
    for mask, which in ((full_mask, f"a mask of {full_mask.shape[0]} bins (as many as the STFT)"),
                        (full_mask[:-1], f"a mask of {full_mask.shape[0] - 1} bins (Nyquist bin dropped)")):
        try:
            expected = reference(mask.copy(), mixture_stft.copy(), n_fft, hop, length)
        except Exception as error:  # not the student's fault
            raise ReferenceFailed("tpsep's reference for 02.mask_to_audio failed; this is a bug in "
                                  "the course, please report it") from error
        got = attempt(mask.copy(), mixture_stft.copy(), n_fft, hop, length)
        try:
            compare(got, expected, atol=1e-6, rtol=1e-5)
        except CheckFailed as failure:
            raise CheckFailed(f"with {which}: {failure}") from None


def _si_sdr_inputs(rng):
    samples = int(rng.integers(200, 2000))
    reference = rng.standard_normal(samples) + rng.uniform(-1, 1)  # a DC offset: remove the means
    estimate = rng.uniform(0.2, 3) * reference + rng.uniform(0.05, 1) * rng.standard_normal(samples)
    return (estimate + rng.uniform(-1, 1), reference), {}


register("02.ideal_binary_mask", reference=masks.ideal_binary_mask, make_inputs=_ibm_inputs, points=2,
         hint="the threshold is on the local SNR 20*log10(|S|/|N|): keep a bin (1.0) where "
              "target_mag > 10**(threshold_db/20) * other_mag, else 0.0.")
register("02.ideal_ratio_mask", reference=masks.ideal_ratio_mask, make_inputs=_irm_inputs,
         atol=1e-6, rtol=1e-5, points=2,
         hint="raise both magnitudes to the power p, then target^p / (target^p + other^p); add a tiny "
              "epsilon (1e-10) to the denominator so that silent bins give 0, not NaN.")
register("02.mask_to_audio", reference=mask_to_audio_reference, test=_test_mask_to_audio, points=3,
         hint="multiply the complex mixture STFT (not its magnitude) by the mask, so the mixture phase "
              "is kept; a mask one bin short gets a row of zeros on top (the Nyquist bin); then "
              "spectral.istft(..., n_fft=n_fft, hop=hop, length=length).")
register("02.si_sdr", reference=metrics.si_sdr, make_inputs=_si_sdr_inputs, atol=1e-4, rtol=1e-5, points=3,
         hint="remove each signal's mean, alpha = <estimate, reference> / ||reference||^2, "
              "target = alpha * reference, noise = estimate - target, "
              "SI-SDR = 10 log10(||target||^2 / ||noise||^2).")
