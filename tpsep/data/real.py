"""Loaders for real datasets: MUSDB18 (stem files), MUSDB18-HQ, folders of stems, LibriMix.

Each returns a list of :class:`~tpsep.data.track.Track`, the same structure as the
embedded datasets, so a notebook switches from the rendered chorales to real
MUSDB18 by changing one string.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from pathlib import Path

import numpy as np

from .track import AUDIO_EXTENSIONS, MUSDB_SOURCES, Track, files_track

SPLITS = ("train", "valid", "test")
# folder names that real datasets use for each split
SPLIT_FOLDERS = {
    "train": ("train", "train-360", "train-100", "tr", "training"),
    "valid": ("valid", "validation", "val", "dev", "cv"),
    "test": ("test", "tt", "eval"),
}
STEM_EXTENSIONS = AUDIO_EXTENSIONS + (".mp3",)


def _check_root(root) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset root not found: {root} (expected a folder of tracks, "
                                "or the name 'music' or 'speech' for the embedded datasets)")
    if not root.is_dir():
        raise ValueError(f"dataset root {root} is a file; expected a folder")
    return root


def _check_split(split: str) -> None:
    if split not in SPLITS + ("all",):
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS) + ['all']}")


def musdb_validation_tracks() -> set:
    """The 14 MUSDB18 training tracks that musdb reserves for validation (read from musdb's config,
    without importing musdb, which needs ffmpeg)."""
    spec = importlib.util.find_spec("musdb")
    if spec is None or not spec.submodule_search_locations:
        return set()
    config = Path(list(spec.submodule_search_locations)[0]) / "configs" / "mus.yaml"
    names, inside = set(), False
    for line in config.read_text().splitlines():
        if line.startswith("validation_tracks"):
            inside = True
        elif inside and line.startswith("- "):
            names.add(line[2:].strip().strip("'\""))
        elif inside and line.strip():
            inside = False
    return names


# ---------------------------------------------------------------------------
# folder of stems (also MUSDB18-HQ)

def _stem_files(folder: Path) -> dict:
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in STEM_EXTENSIONS and not p.name.startswith(".")}


def _track_folders(folder: Path) -> list:
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def _seeded_split(names: list, split: str, seed: int) -> list:
    """80/10/10 split of a flat folder by a seeded permutation (stable for a given seed)."""
    order = np.random.default_rng(seed).permutation(len(names))
    n_valid = n_test = len(names) // 10
    parts = {"test": order[:n_test], "valid": order[n_test:n_test + n_valid], "train": order[n_test + n_valid:]}
    return [names[i] for i in sorted(parts[split])]


def load_stem_folder(root, split: str = "train", sources=None, allow_silent: bool = False,
                     seed: int = 0, kind: str = "stems") -> list:
    """Read ``<root>/[<split>/]<track>/<stem>.wav`` (any of WAV/FLAC/OGG) as Tracks.

    ``mixture.<ext>`` is the mixture if present (else the sum of the stems); every
    other file is a source. MUSDB18-HQ is this layout with ``train/`` and ``test/``;
    its ``valid`` split is musdb's list of 14 training tracks. A flat folder (no
    split sub-folders) is split 80/10/10 by a permutation seeded with ``seed``;
    ``split="all"`` returns every track.

    Args:
        sources: the source names to expect (default: MUSDB's four if present,
            else every stem found); a track missing one is an error.
    """
    root = _check_root(root)
    _check_split(split)
    split_dirs = {s: [root / f for f in SPLIT_FOLDERS[s] if (root / f).is_dir()] for s in SPLITS}
    has_splits = any(split_dirs.values())
    validation = musdb_validation_tracks()
    if has_splits:
        wanted = SPLITS if split == "all" else (split,)
        folders = []
        for s in wanted:
            for d in split_dirs[s]:
                folders += [(s, p) for p in _track_folders(d)]
        # MUSDB18-HQ has no valid/ folder: musdb takes 14 named tracks out of train/
        musdb_like = not split_dirs["valid"] and any(p.name in validation for p in _track_folders(split_dirs["train"][0])) \
            if split_dirs["train"] else False
        if musdb_like and split in ("train", "valid"):
            folders = [("train" if p.name not in validation else "valid", p)
                       for p in _track_folders(split_dirs["train"][0])]
            folders = [(s, p) for s, p in folders if s == split]
    else:
        folders = _track_folders(root)
        if not folders:
            raise ValueError(f"{root} holds no track folders; expected <root>/<track>/<stem>.wav "
                             "(or <root>/train/<track>/..., <root>/test/<track>/...)")
        names = [p.name for p in folders]
        keep = set(names) if split == "all" else set(_seeded_split(names, split, seed))
        folders = [(split, p) for p in folders if p.name in keep]

    tracks = []
    for track_split, folder in folders:
        stems = _stem_files(folder)
        if not stems:
            raise ValueError(f"track folder {folder} holds no audio stems; expected files like "
                             f"mixture.wav, {', '.join(s + '.wav' for s in MUSDB_SOURCES)}")
        mixture = stems.pop("mixture", None)
        if sources is None:
            sources = MUSDB_SOURCES if all(s in stems for s in MUSDB_SOURCES) else tuple(sorted(stems))
        missing = [s for s in sources if s not in stems]
        if missing:
            raise ValueError(f"track folder {folder} is missing stem(s) {missing}; expected "
                             f"{[s + '.wav' for s in sources]} (found {sorted(stems) + (['mixture'] if mixture else [])})")
        meta = {"split": track_split, "origin": kind, "path": str(folder)}
        tracks.append(files_track(folder.name, mixture, {s: stems[s] for s in sources}, meta,
                                  allow_silent=allow_silent))
    return tracks


# ---------------------------------------------------------------------------
# MUSDB18 stem files through musdb

def load_musdb(root, split: str = "train", allow_silent: bool = True) -> list:
    """MUSDB18 in its native ``.stem.mp4`` format, decoded by the ``musdb`` package (needs ffmpeg).

    Tracks are 44.1 kHz stereo with sources drums, bass, other, vocals; the
    ``valid`` split is musdb's 14 validation tracks taken out of ``train``.
    AAC stems cannot be read in pieces: every read decodes the whole track, so for
    training on random chunks prefer MUSDB18-HQ (or call ``track.load()`` first).
    """
    root = _check_root(root)
    _check_split(split)
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise RuntimeError(
            f"{root} holds MUSDB18 .stem.mp4 files, which are decoded by ffmpeg, but ffmpeg is not "
            "installed. Install ffmpeg (apt-get install ffmpeg, brew install ffmpeg or "
            "conda install -c conda-forge ffmpeg), or use the MUSDB18-HQ wav layout instead.")
    import musdb  # imported here: it needs ffmpeg at import time

    wanted = {"train": [("train", "train")], "valid": [("train", "valid")], "test": [("test", None)],
              "all": [("train", None), ("test", None)]}[split]
    tracks = []
    for subset, musdb_split in wanted:
        if not (root / subset).is_dir():
            continue
        db = musdb.DB(root=str(root), subsets=subset, split=musdb_split)
        for mtrack in db.tracks:
            tracks.append(_musdb_track(mtrack, split if split != "all" else subset, root, allow_silent))
    if not tracks:
        raise ValueError(f"no MUSDB18 tracks for split {split!r} under {root}; expected "
                         f"{root}/train/*.stem.mp4 and {root}/test/*.stem.mp4")
    return tracks


def _musdb_track(mtrack, split: str, root: Path, allow_silent: bool) -> Track:
    rate = int(mtrack.rate)
    # musdb knows the duration from ffprobe without decoding
    frames = int(round(mtrack.duration * rate))

    def loader(start, n):
        stems = np.asarray(mtrack.stems, dtype=np.float32)  # (5, samples, channels): mix, drums, bass, other, vocals
        stop = stems.shape[1] if n is None else start + n
        audio = np.ascontiguousarray(stems[:, start:stop].transpose(0, 2, 1))
        sources = {name: audio[mtrack.stems_ids[name] if hasattr(mtrack, "stems_ids") else i + 1]
                   for i, name in enumerate(MUSDB_SOURCES)}
        if not allow_silent and n is None:
            for name, value in sources.items():
                if not np.any(value):
                    raise ValueError(f"{mtrack.path}: stem {name!r} is completely silent")
        return audio[0], sources

    track = Track(name=mtrack.name, rate=rate, source_names=MUSDB_SOURCES, frames=frames, channels=2,
                  meta={"split": split, "origin": "musdb18", "path": str(mtrack.path)}, loader=loader)
    # the exact length is known once decoded; fix the estimate then
    original = track.load

    def load():
        original()
        track.frames = track._cache[0].shape[1]
        return track
    track.load = load
    return track


# ---------------------------------------------------------------------------
# LibriMix / wsj0-2mix folders

MIX_FOLDERS = ("mix_clean", "mix", "mix_both")


def _librimix_split_dir(root: Path, split: str, rate: int | None) -> list:
    """Folders holding s1/ and s2/ for ``split``: tries <root>/<split>, <root>/wav8k/min/<split>, ..."""
    bases = [root]
    for wav in sorted(root.glob("wav*k")) + sorted(root.glob("*/wav*k")):
        if rate is not None and wav.name != f"wav{rate // 1000}k":
            continue
        for mode in ("min", "max"):
            if (wav / mode).is_dir():
                bases.append(wav / mode)
                break
    found = []
    for base in bases:
        for folder in SPLIT_FOLDERS[split]:
            candidate = base / folder
            if (candidate / "s1").is_dir() and (candidate / "s2").is_dir():
                found.append(candidate)
        if found:
            return found
    return found


def is_librimix(root) -> bool:
    root = Path(root)
    return any(_librimix_split_dir(root, s, None) for s in SPLITS) or (root / "s1").is_dir()


def load_librimix(root, split: str = "train", noisy: bool = False, rate: int | None = None,
                  allow_silent: bool = False) -> list:
    """LibriMix / wsj0-2mix folders: ``mix_clean/`` (or ``mix/``), ``s1/``, ``s2/``, optionally ``noise/``.

    Looks under ``<root>/<split>``, ``<root>/wav8k/min/<split>`` and the like
    (``train-360``/``train-100``/``tr``, ``dev``/``cv``, ``test``/``tt``).
    With ``noisy=True`` the mixture is ``mix_both`` and ``noise`` is a third source.
    """
    root = _check_root(root)
    _check_split(split)
    wanted = SPLITS if split == "all" else (split,)
    folders = [(s, d) for s in wanted for d in _librimix_split_dir(root, s, rate)]
    if not folders and (root / "s1").is_dir():
        folders = [(split, root)]
    if not folders:
        raise ValueError(f"no LibriMix/wsj0-2mix folder for split {split!r} under {root}; expected "
                         f"{root}/wav8k/min/{SPLIT_FOLDERS[split][0]}/{{mix_clean,s1,s2}}/*.wav "
                         f"or {root}/{SPLIT_FOLDERS[split][0]}/{{mix_clean,s1,s2}}/")
    tracks = []
    for track_split, folder in folders:
        source_names = ("s1", "s2", "noise") if noisy else ("s1", "s2")
        mix_candidates = ("mix_both",) if noisy else MIX_FOLDERS
        mix_dir = next((folder / m for m in mix_candidates if (folder / m).is_dir()), None)
        for name in source_names:
            if not (folder / name).is_dir():
                raise ValueError(f"{folder} has no {name}/ folder; expected {list(source_names)} "
                                 f"{'(noisy=True needs noise/ and mix_both/)' if noisy else ''}")
        for path in sorted(p for p in (folder / "s1").iterdir() if p.suffix.lower() in STEM_EXTENSIONS):
            paths = {}
            for name in source_names:
                candidate = folder / name / path.name
                if not candidate.is_file():
                    raise ValueError(f"{candidate} is missing; expected one file per mixture in each of "
                                     f"{list(source_names)}")
                paths[name] = candidate
            mixture = mix_dir / path.name if mix_dir is not None else None
            if mixture is not None and not mixture.is_file():
                raise ValueError(f"{mixture} is missing; expected the mixture of {path.name}")
            meta = {"split": track_split, "origin": "librimix", "path": str(folder)}
            tracks.append(files_track(path.stem, mixture, paths, meta, allow_silent=allow_silent))
    return tracks


# ---------------------------------------------------------------------------

def detect_kind(root) -> str:
    """Guess the layout of a real dataset: "musdb", "librimix" or "stems"."""
    root = _check_root(root)
    if any(root.glob("*.stem.mp4")) or any(root.glob("*/*.stem.mp4")):
        return "musdb"
    if is_librimix(root):
        return "librimix"
    return "stems"


def load_real(root, split: str = "train", kind: str | None = None, **options) -> list:
    """Load a real dataset from a folder; ``kind`` ("musdb", "musdbhq", "stems", "librimix") forces the layout."""
    kind = kind or detect_kind(root)
    if kind == "musdb":
        return load_musdb(root, split, **options)
    if kind in ("stems", "musdbhq", "musdb18hq"):
        return load_stem_folder(root, split, kind=kind, **options)
    if kind in ("librimix", "wsj0-2mix", "wsj0mix"):
        return load_librimix(root, split, **options)
    raise ValueError(f"unknown dataset kind {kind!r}; expected 'musdb', 'musdbhq', 'stems' or 'librimix'")
