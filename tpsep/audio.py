"""Reading, writing, resampling and playing audio.

Arrays are float32 ``(channels, samples)`` throughout tpsep, the layout torch
models use; soundfile and MUSDB use ``(samples, channels)``, so the transpose
happens here and nowhere else.
"""

from __future__ import annotations

import os
import struct
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

    A file shorter than its header promises (an interrupted copy or download) is
    a ValueError naming the frames promised and found, not a shorter array.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"audio file not found: {path}")
    if path.is_dir():
        raise ValueError(f"{path} is a folder; expected an audio file (wav, flac, ogg, ...)")
    try:
        info = sf.info(str(path))
    except sf.LibsndfileError as error:
        raise ValueError(f"{path} is not an audio file soundfile can read ({error})") from None
    # libsndfile reads a truncated WAV without a word, and reports the frames it found
    # as the file's length: only the header still holds the number it promised
    check_complete(path)
    try:
        data, file_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except sf.LibsndfileError as error:  # a FLAC cut short fails here, past its intact header
        raise ValueError(f"{path}: its header promises {info.frames} frames but reading them failed ({error}); "
                         "the file is truncated or damaged") from None
    # an MP3's frame count is an estimate; every other format states it exactly
    if info.format != "MPEG" and data.shape[0] < info.frames:
        raise truncation_error(path, info.frames, data.shape[0])
    audio = np.ascontiguousarray(data.T)
    if channels is not None:
        audio = set_channels(audio, channels)
    if rate is not None and rate != file_rate:
        audio, file_rate = resample(audio, file_rate, rate), rate
    return audio, file_rate


# ---- files shorter than their header promises ----

# WAV format tags whose data is whole frames of block_align bytes each (PCM, float,
# A-law, mu-law, and WAVE_FORMAT_EXTENSIBLE around them); for compressed tags
# (ADPCM, GSM, ...) the frame count cannot be read off the byte count.
_FRAME_ALIGNED_WAV_TAGS = (1, 3, 6, 7, 0xFFFE)
# A streaming writer (ffmpeg to a pipe, a live recorder) cannot go back to fill in
# the data size, and leaves one of these instead: "unknown", not a promise.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)


def promised_frames(path) -> tuple | None:
    """``(frames the header promises, frames the file holds)`` for a WAV or AIFF file, else None.

    libsndfile quietly reads what is there when a file is shorter than its header
    says (an interrupted copy or download), so ``soundfile.info`` reports the
    frames found, never the frames promised: the only place the promise is
    written is the header itself, which this reads (RIFF/RIFX/RF64 WAV, AIFF).
    Returns None when the header holds no usable promise (another format, a
    compressed encoding, a size left unknown by a streaming writer).
    """
    with open(path, "rb") as file:
        head = file.read(12)
        if len(head) < 12:
            return None
        kind, form = head[:4], head[8:12]
        if kind in (b"RIFF", b"RF64", b"RIFX") and form == b"WAVE":
            order = ">" if kind == b"RIFX" else "<"
        elif kind == b"FORM" and form == b"AIFF":
            order = ">"
        else:
            return None
        file_size = os.fstat(file.fileno()).st_size
        fields = {}  # what the format chunk says, read on the way to the data
        while True:
            chunk = file.read(8)
            if len(chunk) < 8:
                return None
            name, size = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
            body = file.tell()
            if name == b"ds64" and len(data := file.read(16)) == 16:  # RF64 keeps 64-bit sizes here
                fields["data_size"] = struct.unpack("<Q", data[8:16])[0]
            elif name == b"fmt " and len(data := file.read(16)) == 16:
                tag, _, _, _, block_align, _ = struct.unpack(order + "HHIIHH", data)
                fields.update(tag=tag, block_align=block_align)
            elif name == b"COMM" and len(data := file.read(8)) == 8:
                channels, frames, bits = struct.unpack(">hIh", data)
                fields.update(frames=frames, frame_bytes=channels * ((bits + 7) // 8))
            elif name == b"data":
                if kind == b"RF64" and size == 0xFFFFFFFF:
                    size = fields.get("data_size", size)
                if fields.get("tag") not in _FRAME_ALIGNED_WAV_TAGS or not fields.get("block_align") \
                        or size in _UNKNOWN_SIZES:
                    return None
                align = fields["block_align"]
                return size // align, min(size, file_size - body) // align
            elif name == b"SSND":
                if not fields.get("frame_bytes") or "frames" not in fields:
                    return None  # COMM after SSND is legal but rare: no promise to check
                offset = struct.unpack(">I", file.read(4))[0] if file_size - body >= 4 else 0
                available = max(file_size - body - 8 - offset, 0)
                return fields["frames"], min(fields["frames"], available // fields["frame_bytes"])
            file.seek(body + size + (size & 1))  # chunks are padded to an even size


def truncation_error(path, promised: int, found: int) -> ValueError:
    return ValueError(f"{path} is truncated: its header promises {promised} frames but the file holds only "
                      f"{found}; expected a complete file (an interrupted copy or download? copy it again)")


def check_complete(path) -> None:
    """Raise a ValueError naming ``path`` when a WAV/AIFF holds fewer frames than its header promises."""
    frames = promised_frames(path)
    if frames is not None and frames[1] < frames[0]:
        raise truncation_error(path, *frames)


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


def check_rate(rate, owner: str, name: str = "rate") -> None:
    """A sample rate must be a positive integer number of Hz (not a float, not a bool)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise ValueError(f"{owner}: {name} must be a positive integer in Hz, got {rate!r}")


def as_mixture(mixture, rate: int, owner: str = "separate") -> np.ndarray:
    """``mixture`` as float32 ``(channels, samples)``, checked; integer PCM is scaled to [-1, 1).

    A ``(samples, channels)`` array (soundfile's layout) is refused with the transpose named,
    never guessed into thousands of channels.
    """
    check_rate(rate, owner)
    if hasattr(mixture, "detach"):  # a torch tensor
        mixture = mixture.detach().cpu().numpy()
    mixture = np.asarray(mixture)
    if np.issubdtype(mixture.dtype, np.integer):
        scale = float(2 ** (8 * mixture.dtype.itemsize - 1))
        mixture = mixture.astype(np.float32) / scale   # int16 PCM: 32767 -> 0.99997
    elif not np.issubdtype(mixture.dtype, np.floating):
        raise ValueError(f"{owner}: expected float or integer PCM audio, got dtype {mixture.dtype}")
    mixture = mixture.astype(np.float32, copy=False)
    if mixture.ndim == 1:
        mixture = mixture[None]
    if mixture.ndim != 2:
        raise ValueError(f"{owner}: expected a mixture (channels, samples), got shape {mixture.shape}")
    if mixture.shape[0] > 8 and mixture.shape[1] <= 8:
        raise ValueError(f"{owner}: shape {mixture.shape} looks like (samples, channels), soundfile's layout; "
                         f"pass mixture.T, shape {mixture.shape[::-1]}")
    if mixture.shape[0] > 8:
        raise ValueError(f"{owner}: {mixture.shape[0]} channels is more than tpsep separates (at most 8); "
                         f"expected (channels, samples), got {mixture.shape}")
    if not np.isfinite(mixture).all():
        raise ValueError(f"{owner}: the mixture contains NaN or Inf")
    if np.abs(mixture).max(initial=0.0) == 0:
        raise ValueError(f"{owner}: the mixture is silent (all zeros): nothing to separate")
    return mixture


def to_mono(audio, owner: str = "tpsep", name: str = "audio") -> np.ndarray:
    """``(samples,)`` float32 from ``(samples,)``, ``(channels, samples)`` (channels averaged) or a
    torch tensor. Anything else, or NaN/Inf, is a ValueError that names ``owner`` and ``name``."""
    if hasattr(audio, "detach"):
        audio = audio.detach().cpu().numpy()
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2:
        audio = audio.mean(axis=0)
    if audio.ndim != 1:
        raise ValueError(f"{owner}: {name} must be (samples,) or (channels, samples), got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise ValueError(f"{owner}: the {name} contains NaN or Inf")
    return audio


def resample(audio: np.ndarray, rate_in: int, rate_out: int, method: str = "soxr") -> np.ndarray:
    """Resample ``(..., samples)`` from ``rate_in`` to ``rate_out`` Hz: tpsep's one resampler.

    ``method``: "soxr" (high quality, librosa's soxr_hq; the default everywhere) or
    "polyphase" (scipy's polyphase filter, which the speech renderer has always used:
    changing it would change every rendered utterance).
    """
    check_rate(rate_in, "resample", "rate_in")
    check_rate(rate_out, "resample", "rate_out")
    if rate_in == rate_out:
        return audio
    if method == "soxr":
        import librosa
        return librosa.resample(np.asarray(audio, dtype=np.float32), orig_sr=rate_in, target_sr=rate_out, res_type="soxr_hq").astype(np.float32)
    if method == "polyphase":
        from fractions import Fraction

        from scipy import signal
        ratio = Fraction(int(rate_out), int(rate_in))
        return signal.resample_poly(np.asarray(audio), ratio.numerator, ratio.denominator, axis=-1).astype(np.float32)
    raise ValueError(f"resample: method must be 'soxr' or 'polyphase', got {method!r}")


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
