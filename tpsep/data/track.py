"""The ``Track``: one piece of audio with its mixture and its sources.

Every dataset in tpsep (the rendered chorales, the rendered speech mixtures,
MUSDB18, MUSDB18-HQ, a folder of stems, LibriMix) is a list of ``Track``
objects, so a notebook changes dataset by changing one string. Audio is read
lazily: building the list only reads file headers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from ..audio import check_complete, truncation_error

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")
MUSDB_SOURCES = ("drums", "bass", "other", "vocals")


@dataclass
class Track:
    """One track: a mixture and its sources, float32 numpy ``(channels, samples)``.

    Attributes:
        name: unique within its dataset.
        rate: sample rate in Hz.
        source_names: e.g. ``("drums", "bass", "other", "vocals")`` or ``("s1", "s2")``.
        frames: length in samples (known without reading the audio).
        channels: number of channels.
        meta: split, origin, rendering parameters, file paths...
    """

    name: str
    rate: int
    source_names: tuple
    frames: int
    channels: int
    meta: dict = field(default_factory=dict)
    # loader(start, frames) -> (mixture (C, T), {source: (C, T)}); frames=None means "to the end"
    loader: Callable | None = field(default=None, repr=False)
    _cache: tuple | None = field(default=None, repr=False, compare=False)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.frames / self.rate

    def read(self, start: int = 0, frames: int | None = None):
        """Read part of the track: ``(mixture (C, frames), {source: (C, frames)})``.

        Reads only the requested samples from disk (no whole-track load), which is
        what the random-chunk datasets use.
        """
        if start < 0 or start > self.frames:
            raise ValueError(f"{self.name}: start={start} outside the track's {self.frames} samples")
        if self._cache is not None:
            stop = self.frames if frames is None else start + frames
            mix, srcs = self._cache
            return mix[:, start:stop], {k: v[:, start:stop] for k, v in srcs.items()}
        return self.loader(start, frames)

    def load(self) -> "Track":
        """Read the whole track into memory (later calls are free); returns ``self``."""
        if self._cache is None:
            self._cache = self.loader(0, None)
        return self

    def unload(self) -> None:
        """Forget the audio held in memory, if it can be read again (a track made from
        arrays, :func:`memory_track`, has nothing else to read from and keeps it)."""
        if self.loader is not None:
            self._cache = None

    @property
    def mixture(self) -> np.ndarray:
        """The mixture, float32 ``(channels, samples)``."""
        return self.load()._cache[0]

    @property
    def sources(self) -> dict:
        """``{source_name: float32 (channels, samples)}``, same shape as the mixture."""
        return self.load()._cache[1]

    def stem(self, name: str) -> np.ndarray:
        """One source by name, ``(channels, samples)``; also ``"mixture"`` and, for music,
        ``"accompaniment"`` (the sum of every source but the vocals)."""
        if name == "mixture":
            return self.mixture
        if name in self.source_names:
            return self.sources[name]
        if name == "accompaniment" and "vocals" in self.source_names:
            others = [v for k, v in self.sources.items() if k != "vocals"]
            return np.sum(others, axis=0, dtype=np.float32)
        extra = ", 'accompaniment'" if "vocals" in self.source_names else ""
        raise KeyError(f"track {self.name!r} has no stem {name!r}; expected one of "
                       f"{list(self.source_names)} or 'mixture'{extra}")

    def __repr__(self) -> str:
        split = self.meta.get("split", "?")
        return (f"Track({self.name!r}, split={split!r}, {self.duration:.1f} s, {self.rate} Hz, "
                f"{self.channels} ch, sources={list(self.source_names)})")


# ---------------------------------------------------------------------------
# reading audio files with clear errors

def audio_info(path: Path):
    """``soundfile.info`` with an error that names the file when it is not audio, or is truncated."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        info = sf.info(str(path))
    except Exception as error:  # soundfile raises LibsndfileError / RuntimeError
        raise ValueError(f"{path} is not a readable audio file (expected WAV/FLAC/OGG): {error}") from None
    check_complete(path)
    return info


def read_audio(path: Path, start: int = 0, frames: int | None = None, total: int | None = None) -> np.ndarray:
    """Read ``frames`` samples from ``start``: float32 ``(channels, samples)``.

    ``total`` is the file's length as listed (from its header): a read that
    returns less than the header promised is an error, not a shorter array.
    """
    try:
        data, _ = sf.read(str(path), start=start, frames=-1 if frames is None else frames,
                          dtype="float32", always_2d=True)
    except Exception as error:
        promise = f" (its header promises {total} frames)" if total is not None else ""
        raise ValueError(f"could not read audio from {path}{promise}: {error}; "
                         "the file is truncated or damaged") from None
    if total is not None:
        expected = total - start if frames is None else min(frames, total - start)
        if data.shape[0] < expected:
            raise truncation_error(path, total, start + data.shape[0])
    return np.ascontiguousarray(data.T)


def check_silent(path, audio: np.ndarray) -> None:
    if not np.any(audio):
        raise ValueError(f"{path} is completely silent (all samples are zero); "
                         "expected a non-silent stem (pass allow_silent=True to accept it)")


def files_track(name: str, mixture_path: Path | None, source_paths: dict, meta: dict | None = None,
                allow_silent: bool = False) -> Track:
    """A lazily-read ``Track`` from one audio file per source (and optionally a mixture file).

    Every file must have the same sample rate, channel count and length; the error
    names the file that differs. Without a mixture file, the mixture is the sum of
    the sources.
    """
    paths = dict(source_paths)
    if mixture_path is not None:
        paths = {"mixture": mixture_path, **paths}
    infos = {k: audio_info(p) for k, p in paths.items()}
    first_key = next(iter(infos))
    ref = infos[first_key]
    for key, info in infos.items():
        for what, a, b in (("sample rate", info.samplerate, ref.samplerate),
                           ("channel count", info.channels, ref.channels),
                           ("length in samples", info.frames, ref.frames)):
            if a != b:
                raise ValueError(
                    f"track {name!r}: {paths[key]} has {what} {a} but {paths[first_key]} has {b}; "
                    "expected every stem of a track to share sample rate, channels and length")
    if ref.frames == 0:
        raise ValueError(f"track {name!r}: {paths[first_key]} holds no samples (0 frames); "
                         "expected every stem of a track to hold its audio")
    names = tuple(source_paths)
    meta = dict(meta or {})
    meta.setdefault("files", {k: str(p) for k, p in paths.items()})
    return Track(name=name, rate=int(ref.samplerate), source_names=names, frames=int(ref.frames),
                 channels=int(ref.channels), meta=meta,
                 loader=FilesLoader(mixture_path, {k: source_paths[k] for k in names}, allow_silent,
                                    frames=int(ref.frames)))


class FilesLoader:
    """Reads a track from one file per source (a class, not a closure, so that DataLoader
    workers started with "spawn", as on macOS and Windows, can pickle the tracks)."""

    def __init__(self, mixture_path, source_paths: dict, allow_silent: bool = False, frames: int | None = None):
        self.mixture_path, self.source_paths, self.allow_silent = mixture_path, dict(source_paths), allow_silent
        self.frames = frames  # the length every file promised when the track was listed

    def __call__(self, start: int, frames: int | None):
        sources = {}
        for key, path in self.source_paths.items():
            audio = read_audio(path, start, frames, total=self.frames)
            if not self.allow_silent and start == 0 and frames is None:
                check_silent(path, audio)
            sources[key] = audio
        if self.mixture_path is not None:
            mixture = read_audio(self.mixture_path, start, frames, total=self.frames)
        else:
            mixture = np.sum(list(sources.values()), axis=0, dtype=np.float32)
        return mixture, sources


def memory_track(name: str, rate: int, mixture: np.ndarray, sources: dict, meta: dict | None = None) -> Track:
    """A ``Track`` around arrays already in memory (``(channels, samples)`` each)."""
    mixture = np.asarray(mixture, dtype=np.float32)
    if mixture.ndim != 2:
        raise ValueError(f"track {name!r}: expected mixture (channels, samples), got shape {mixture.shape}")
    for key, value in sources.items():
        if np.shape(value) != mixture.shape:
            raise ValueError(f"track {name!r}: source {key!r} has shape {np.shape(value)}, "
                             f"expected the mixture's {mixture.shape}")
    track = Track(name=name, rate=int(rate), source_names=tuple(sources), frames=mixture.shape[1],
                  channels=mixture.shape[0], meta=dict(meta or {}))
    track._cache = (mixture, {k: np.asarray(v, dtype=np.float32) for k, v in sources.items()})
    return track
