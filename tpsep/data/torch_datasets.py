"""PyTorch datasets over lists of Tracks: random chunks, spectrogram patches, whole tracks.

All three are seeded: item ``i`` of epoch ``e`` is the same on every run, and
``set_epoch(e)`` (which :func:`tpsep.train.fit` calls at the start of every epoch)
draws new chunks, so training sees fresh examples each epoch while curves in the
notebooks stay reproducible.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import spectral
from ..audio import resample

SILENCE_TRIES = 20  # redraws of a chunk whose source is silent before giving up with an error


def _check_tracks(tracks, what: str) -> list:
    tracks = list(tracks)
    if not tracks:
        raise ValueError(f"{what} needs at least one track, got an empty list (is the split empty?)")
    return tracks


class ChunkDataset(torch.utils.data.Dataset):
    """Random fixed-length chunks for waveform models (Conv-TasNet, band-split, GridNet).

    Item ``i`` returns ``(mixture, sources)``: float32 tensors ``(channels, samples)`` and
    ``(n_sources, channels, samples)`` with ``samples = round(seconds * rate)``.

    Args:
        tracks: list of Track.
        seconds: chunk length.
        rate: resample to this rate (default: the tracks' own, which must then agree).
        chunks_per_epoch: dataset length (default: total duration / seconds).
        random_gains: ``(low_db, high_db)``: each source scaled by a random gain; the mixture
            is then the sum of the scaled sources.
        remix: take each source from a different random track (more variety, mixtures that
            never existed); the mixture is the sum of the sources.
        sources: which sources, in which order (default: the first track's).
        seed: base seed.
        min_level_db: every source of a chunk must be louder than this (RMS in dB full scale);
            a quieter one is drawn again, from the same seeded generator. On by default
            (-60 dB): about 3 % of 1-s vocal chunks of the chorales are digital silence, and a
            silent reference makes SI-SNR and any ``x / x.std()`` NaN. None keeps every chunk.
    """

    def __init__(self, tracks, seconds: float, rate: int | None = None, chunks_per_epoch: int | None = None,
                 random_gains: tuple | None = None, remix: bool = False, sources=None, seed: int = 0,
                 min_level_db: float | None = -60.0):
        self.tracks = _check_tracks(tracks, "ChunkDataset")
        rates = {t.rate for t in self.tracks}
        if rate is None and len(rates) > 1:
            raise ValueError(f"tracks have different sample rates {sorted(rates)}; pass rate= to resample them")
        self.rate = int(rate or rates.pop())
        self.samples = int(round(seconds * self.rate))
        if self.samples <= 0:
            raise ValueError(f"seconds={seconds} gives an empty chunk")
        self.source_names = tuple(sources or self.tracks[0].source_names)
        for track in self.tracks:
            missing = [s for s in self.source_names if s not in track.source_names and s != "accompaniment"]
            if missing:
                raise ValueError(f"track {track.name!r} has no source(s) {missing}; it has {list(track.source_names)}")
        total = sum(t.duration for t in self.tracks)
        self.length = int(chunks_per_epoch or max(1, total // seconds))
        self.random_gains, self.remix, self.seed, self.epoch = random_gains, remix, seed, 0
        self.min_level_db = min_level_db
        self.weights = np.array([t.frames for t in self.tracks], dtype=np.float64)
        self.weights /= self.weights.sum()

    def set_epoch(self, epoch: int) -> None:
        """Draw different chunks for a new epoch (still deterministic)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def _read(self, track, rng, source: str | None):
        """A chunk of one track at ``self.rate``: mixture and sources ``(channels, samples)``."""
        need = int(np.ceil(self.samples * track.rate / self.rate)) + (0 if track.rate == self.rate else 16)
        start = int(rng.integers(0, max(track.frames - need, 0) + 1))
        mixture, sources = track.read(start, min(need, track.frames - start))
        if "accompaniment" in self.source_names:
            sources = {**sources, "accompaniment": np.sum([v for k, v in sources.items() if k != "vocals"], axis=0)}
        names = self.source_names if source is None else (source,)
        stack = np.stack([mixture] + [sources[s] for s in names]).astype(np.float32)
        stack = resample(stack, track.rate, self.rate)[..., :self.samples]
        if stack.shape[-1] < self.samples:  # a track shorter than a chunk: pad with silence
            stack = np.pad(stack, ((0, 0), (0, 0), (0, self.samples - stack.shape[-1])))
        return stack[0], stack[1:]

    def _loud_enough(self, sources: np.ndarray) -> bool:
        """True when every source ``(n, channels, samples)`` is above ``min_level_db``."""
        if self.min_level_db is None:
            return True
        rms = np.sqrt(np.mean(sources.astype(np.float64) ** 2, axis=(-2, -1)))
        return bool(np.all(20 * np.log10(rms + 1e-20) > self.min_level_db))

    def _draw(self, rng, source: str | None):
        """A random chunk (of one source, or of the whole track), drawn again while a source is silent."""
        for _ in range(SILENCE_TRIES):
            mixture, sources = self._read(self.tracks[rng.choice(len(self.tracks), p=self.weights)], rng, source)
            if self._loud_enough(sources):
                return mixture, sources
        raise ValueError(f"ChunkDataset: {SILENCE_TRIES} chunks of {self.samples / self.rate:g} s in a row had a "
                         f"source below {self.min_level_db} dB (sources {list(self.source_names)}); the tracks "
                         "are mostly silent, or pass min_level_db=None to keep silent chunks")

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} chunks")
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.remix:
            sources = np.stack([self._draw(rng, s)[1][0] for s in self.source_names])
            mixture = None
        else:
            mixture, sources = self._draw(rng, None)
        if self.random_gains is not None:
            low, high = self.random_gains
            gains = 10 ** (rng.uniform(low, high, size=len(self.source_names)) / 20)
            sources = sources * gains[:, None, None].astype(np.float32)
            mixture = None
        if mixture is None:
            mixture = sources.sum(axis=0)
        return torch.from_numpy(np.ascontiguousarray(mixture)), torch.from_numpy(np.ascontiguousarray(sources))


class SpectrogramPatchDataset(torch.utils.data.Dataset):
    """Magnitude-spectrogram patches for the U-Net of Jansson et al. (2017).

    Each track is made mono, resampled to ``rate`` (8192 Hz), transformed with
    ``tpsep.spectral.stft`` (``n_fft`` 1024, ``hop`` 768) and cropped to ``bins`` (512)
    frequency bins. Item ``i`` returns ``(mixture_mag, target_mag)``, float32 tensors
    ``(bins, frames)`` = ``(512, 128)`` (about 12 s of audio).

    Args:
        target: the source to extract ("vocals", "accompaniment", "s1", ...).
        patches_per_epoch: dataset length (default: the number of non-overlapping patches).
        random: random patch positions (training); False lists consecutive patches in order
            (evaluation, visualisation).
    """

    def __init__(self, tracks, target: str = "vocals", rate: int = 8192, n_fft: int = 1024,
                 hop: int = 768, bins: int = 512, frames: int = 128,
                 patches_per_epoch: int | None = None, random: bool = True, seed: int = 0):
        self.tracks = _check_tracks(tracks, "SpectrogramPatchDataset")
        if bins != n_fft // 2:
            raise ValueError(f"bins={bins} but n_fft={n_fft} gives {n_fft // 2 + 1} bins; expected bins = n_fft // 2 "
                             "(the top, Nyquist bin is dropped)")
        self.target, self.frames, self.random, self.seed, self.epoch = target, frames, random, seed, 0
        self.mixture_mags, self.target_mags = [], []
        for track in self.tracks:
            was_loaded = track._cache is not None
            pair = np.stack([track.mixture.mean(axis=0), track.stem(target).mean(axis=0)])
            if not was_loaded:
                track.unload()
            pair = resample(pair, track.rate, rate)
            mags = spectral.crop_bins(spectral.magnitude(spectral.stft(pair.astype(np.float32), n_fft=n_fft, hop=hop)), bins)
            if mags.shape[-1] < frames:  # shorter than a patch: pad with silence
                mags = torch.nn.functional.pad(mags, (0, frames - mags.shape[-1]))
            self.mixture_mags.append(mags[0].float().contiguous())
            self.target_mags.append(mags[1].float().contiguous())
        counts = [m.shape[-1] // frames for m in self.mixture_mags]
        self.patch_index = [(t, k * frames) for t, c in enumerate(counts) for k in range(c)]
        self.length = int(patches_per_epoch or len(self.patch_index))
        lengths = np.array([m.shape[-1] - frames + 1 for m in self.mixture_mags], dtype=np.float64)
        self.weights = lengths / lengths.sum()

    def set_epoch(self, epoch: int) -> None:
        """Draw different patches for a new epoch (still deterministic)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} patches")
        if self.random:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            t = int(rng.choice(len(self.mixture_mags), p=self.weights))
            start = int(rng.integers(0, self.mixture_mags[t].shape[-1] - self.frames + 1))
        else:
            t, start = self.patch_index[index % len(self.patch_index)]
        window = slice(start, start + self.frames)
        return self.mixture_mags[t][:, window], self.target_mags[t][:, window]


class TrackDataset(torch.utils.data.Dataset):
    """Whole tracks for evaluation: item ``i`` is ``(mixture (channels, samples), sources
    (n_sources, channels, samples))`` as float32 tensors; ``names[i]`` is the track's name.
    Use ``DataLoader(..., batch_size=1)`` since tracks differ in length."""

    def __init__(self, tracks, sources=None):
        self.tracks = _check_tracks(tracks, "TrackDataset")
        self.source_names = tuple(sources or self.tracks[0].source_names)
        self.names = [t.name for t in self.tracks]

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, index: int):
        track = self.tracks[index]
        sources = np.stack([track.stem(s) for s in self.source_names])
        return torch.from_numpy(np.ascontiguousarray(track.mixture)), torch.from_numpy(sources)
