"""Exercises of notebook 01 (STFT): framing, the STFT and the ISTFT from scratch."""

import numpy as np

from tpsep.exercises import register
from tpsep.spectral import istft, make_window, stft


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


def _istft_inputs(rng):
    x, n_fft, hop = _signal_and_settings(rng)
    return (stft_reference(x, n_fft, hop), n_fft, hop, len(x)), {}


register("01.frame_signal", reference=frame_signal, make_inputs=_stft_inputs,
         hint="frame m is x[m*hop : m*hop + n_fft]; keep only whole frames.")
register("01.stft", reference=stft_reference, make_inputs=_stft_inputs, atol=1e-6, rtol=1e-5,
         hint="pad n_fft//2 samples on each side with mode='reflect', frame, multiply by the "
              "periodic Hann window, take np.fft.rfft of each frame, and return (bins, frames).")
register("01.istft", reference=istft_reference, make_inputs=_istft_inputs, atol=1e-6, rtol=1e-5,
         hint="irfft each frame, multiply by the window, overlap-add, divide by the overlap-added "
              "squared window, then drop the n_fft//2 padding samples at the start and cut to length.")
