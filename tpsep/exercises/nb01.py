"""Exercises of notebook 01 (STFT): aliasing, framing, the STFT and ISTFT from scratch, decibels."""

import numpy as np

from tpsep.exercises import register
from tpsep.spectral import alias_frequency, istft, make_window, stft, to_db


def frame_signal(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Cut ``x (samples,)`` into overlapping frames ``(frames, n_fft)``; frame ``m`` starts at ``m * hop``.

    Only whole frames are kept: ``frames = 1 + (samples - n_fft) // hop``.
    """
    frames = 1 + (len(x) - n_fft) // hop
    starts = hop * np.arange(frames)[:, None]
    return x[starts + np.arange(n_fft)[None, :]]


def stft_reference(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """tpsep's STFT with a periodic Hann window and centred frames, as a numpy array ``(bins, frames)``."""
    return stft(np.asarray(x, dtype=np.float64), n_fft=n_fft, hop=hop, window="hann").numpy()


def istft_reference(X: np.ndarray, n_fft: int, hop: int, length: int) -> np.ndarray:
    """tpsep's inverse STFT (Hann window, centred frames) as a numpy array ``(samples,)``."""
    return istft(np.asarray(X, dtype=np.complex128), n_fft=n_fft, hop=hop, window="hann",
                 length=length).numpy()


def to_db_reference(mag: np.ndarray, top_db: float = 80.0) -> np.ndarray:
    """tpsep's decibels, ``20 log10(mag / max(mag))`` floored ``top_db`` below 0 dB, as numpy."""
    return to_db(np.asarray(mag, dtype=np.float64), top_db=top_db).numpy()


def hann(n_fft: int) -> np.ndarray:
    """The periodic Hann window the course uses, as numpy."""
    return make_window("hann", n_fft, dtype=__import__("torch").float64).numpy()


def _signal_and_settings(rng):
    n_fft = int(rng.choice([64, 128, 256]))
    hop = n_fft // int(rng.choice([2, 4]))
    samples = int(rng.integers(4 * n_fft, 12 * n_fft))
    return rng.standard_normal(samples), n_fft, hop


def _stft_inputs(rng):
    x, n_fft, hop = _signal_and_settings(rng)
    return (x, n_fft, hop), {}


def _alias_inputs(rng):
    rate = float(rng.choice([8_000, 8_192, 16_000, 22_050, 44_100]))
    # below Nyquist, between Nyquist and the rate, and well above the rate: every fold shows
    frequencies = rng.uniform(0, 3.5 * rate, size=int(rng.integers(8, 30)))
    frequencies[:3] = rng.uniform(0, rate / 2), rng.uniform(rate / 2, rate), rng.uniform(rate, 2 * rate)
    return (frequencies, rate), {}


def _db_inputs(rng):
    shape = (int(rng.integers(5, 60)), int(rng.integers(3, 40)))
    # magnitudes over ten orders of magnitude, a loudest bin that is not 1, and some exact zeros
    mag = 10 ** rng.uniform(-8, 2, size=shape)
    mag[rng.random(shape) < 0.05] = 0.0
    return (mag,), {"top_db": float(rng.choice([40.0, 60.0, 80.0, 100.0]))}


def _istft_inputs(rng):
    x, n_fft, hop = _signal_and_settings(rng)
    return (stft_reference(x, n_fft, hop), n_fft, hop, len(x)), {}


register("01.alias_frequency", reference=alias_frequency, make_inputs=_alias_inputs, points=2,
         hint="a sine at f and at f + rate give the same samples, and so do f and rate - f: "
              "fold f into [0, rate) with np.mod, then mirror what lies above rate / 2.")
register("01.frame_signal", reference=frame_signal, make_inputs=_stft_inputs, points=2,
         hint="frame m is x[m*hop : m*hop + n_fft]; keep only whole frames.")
register("01.stft", reference=stft_reference, make_inputs=_stft_inputs, atol=1e-6, rtol=1e-5, points=3,
         hint="pad n_fft//2 samples on each side with mode='reflect', frame, multiply by the "
              "periodic Hann window, take np.fft.rfft of each frame, and return (bins, frames).")
register("01.istft", reference=istft_reference, make_inputs=_istft_inputs, atol=1e-6, rtol=1e-5, points=3,
         hint="irfft each frame, multiply by the window, overlap-add, divide by the overlap-added "
              "squared window, then drop the n_fft//2 padding samples at the start and cut to length.")
register("01.amplitude_to_db", reference=to_db_reference, make_inputs=_db_inputs, atol=1e-6, rtol=1e-6,
         points=2,
         hint="magnitudes are amplitudes: 20 * log10(mag / mag.max()), with mag clipped below at 1e-10 "
              "so that a zero gives a number, then np.maximum(db, -top_db).")
