"""Reading, writing, resampling and playing audio.

Arrays are float32 ``(channels, samples)`` throughout tpsep, the layout torch
models use; soundfile and MUSDB use ``(samples, channels)``, so the transpose
happens here and nowhere else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def load(path: str | Path, rate: int | None = None, channels: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file.

    Args:
        path: any format libsndfile reads (wav, flac, ogg, ...).
        rate: resample to this rate if given.
        channels: 1 to mix down to mono, 2 to duplicate mono; None keeps the file's.

    Returns:
        ``(audio (channels, samples) float32, rate)``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except sf.LibsndfileError as error:
        raise ValueError(f"{path} is not an audio file soundfile can read ({error})") from None
    audio = np.ascontiguousarray(data.T)
    if channels is not None:
        audio = set_channels(audio, channels)
    if rate is not None and rate != file_rate:
        audio, file_rate = resample(audio, file_rate, rate), rate
    return audio, file_rate


def save(path: str | Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> Path:
    """Write ``audio (channels, samples)`` (or ``(samples,)``) to ``path``; refuses NaN and clipping."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[None]
    if audio.ndim != 2:
        raise ValueError(f"save expects (channels, samples) audio, got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError(f"refusing to write {path}: the audio contains NaN or Inf")
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > 1.0 and subtype.startswith("PCM"):
        raise ValueError(f"refusing to write {path}: peak {peak:.3f} > 1 would clip in {subtype}; scale it first")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio.T, rate, subtype=subtype)
    return path


def set_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Mix ``(channels, samples)`` down to mono, or duplicate mono to stereo."""
    if audio.ndim != 2:
        raise ValueError(f"expected (channels, samples) audio, got shape {audio.shape}")
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    if audio.shape[0] == 1:
        return np.repeat(audio, channels, axis=0)
    raise ValueError(f"cannot turn {audio.shape[0]} channels into {channels}")


def resample(audio: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Resample ``(..., samples)`` from ``rate_in`` to ``rate_out`` Hz (high-quality soxr)."""
    import librosa

    if rate_in == rate_out:
        return audio
    return librosa.resample(np.asarray(audio, dtype=np.float32), orig_sr=rate_in, target_sr=rate_out,
                            res_type="soxr_hq").astype(np.float32)


def player(audio, rate: int, normalize: bool = True):
    """An ``IPython.display.Audio`` player for ``(channels, samples)``, ``(samples,)`` or a torch tensor.

    ``normalize=False`` plays the true level, so that a quiet stem sounds quiet
    next to the mixture.
    """
    from IPython.display import Audio

    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and audio.shape[0] == 1:
        audio = audio[0]
    if not np.isfinite(audio).all():
        raise ValueError("cannot play audio that contains NaN or Inf")
    if not normalize:
        audio = np.clip(audio, -1.0, 1.0)
    return Audio(audio, rate=rate, normalize=normalize)
