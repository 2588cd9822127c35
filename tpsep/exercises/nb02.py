"""Exercises of notebook 02 (masking and evaluation): the IBM, the IRM and SI-SDR."""

import numpy as np

from tpsep import masks, metrics
from tpsep.exercises import register


def _magnitudes(rng):
    """Two random magnitude spectrograms ``(freq, frames)`` with a wide dynamic range."""
    freq, frames = int(rng.integers(5, 80)), int(rng.integers(3, 40))
    target = rng.random((freq, frames)) ** 3 * 10 ** rng.uniform(-1, 1)
    other = rng.random((freq, frames)) ** 3 * 10 ** rng.uniform(-1, 1)
    return target, other


def _ibm_inputs(rng):
    target, other = _magnitudes(rng)
    return (target, other), {"threshold_db": float(rng.choice([0.0, -6.0, 6.0, 10.0]))}


def _irm_inputs(rng):
    target, other = _magnitudes(rng)
    return (target, other), {"power": float(rng.choice([1.0, 2.0, 0.5, 1.5]))}


def _si_sdr_inputs(rng):
    samples = int(rng.integers(200, 2000))
    reference = rng.standard_normal(samples) + rng.uniform(-1, 1)  # a DC offset: remove the means
    estimate = rng.uniform(0.2, 3) * reference + rng.uniform(0.05, 1) * rng.standard_normal(samples)
    return (estimate + rng.uniform(-1, 1), reference), {}


register("02.ideal_binary_mask", reference=masks.ideal_binary_mask, make_inputs=_ibm_inputs,
         hint="the threshold is on the local SNR 20*log10(|S|/|N|): keep a bin (1.0) where "
              "target_mag > 10**(threshold_db/20) * other_mag, else 0.0.")
register("02.ideal_ratio_mask", reference=masks.ideal_ratio_mask, make_inputs=_irm_inputs,
         atol=1e-6, rtol=1e-5,
         hint="raise both magnitudes to the power p, then target^p / (target^p + other^p); add a tiny "
              "epsilon (1e-10) to the denominator so that silent bins give 0, not NaN.")
register("02.si_sdr", reference=metrics.si_sdr, make_inputs=_si_sdr_inputs, atol=1e-4, rtol=1e-5,
         hint="remove each signal's mean, alpha = <estimate, reference> / ||reference||^2, "
              "target = alpha * reference, noise = estimate - target, "
              "SI-SDR = 10 log10(||target||^2 / ||noise||^2).")
