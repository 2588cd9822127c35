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
from typing import NamedTuple

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


class SplitNotFound(ValueError):
    """A dataset that has no folder for the split asked for (a LibriMix without ``dev/``, ...).

    Its own class so that ``tpsep data info`` can count such a split as 0 tracks
    while every other ValueError (a damaged track, a missing stem) still stops it.
    """


def _check_root(root) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"dataset root not found: {root} (expected a folder of tracks, "
                                "or the name 'music' or 'speech' for the embedded datasets)")
    if not root.is_dir():
        raise ValueError(f"dataset root {root} is a file; expected a folder of tracks "
                         "(<root>/<track>/<stem>.wav, or a LibriMix or MUSDB18 folder)")
    return root


def _check_split(split: str) -> None:
    if split not in SPLITS + ("all",):
        # "dev" or "tt" are folder names: say which split they hold
        alias = next((s for s, names in SPLIT_FOLDERS.items() if split in names), None)
        hint = f" ({split}/ is the folder of split {alias!r})" if alias else ""
        raise ValueError(f"unknown split {split!r}; expected one of {list(SPLITS) + ['all']}{hint}")


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

def _audio_files(folder: Path) -> list:
    """The audio files directly in ``folder`` (hidden files, such as macOS's ``._x.wav``, left out)."""
    return [p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in STEM_EXTENSIONS and not p.name.startswith(".")]


def _stem_files(folder: Path) -> dict:
    """``{stem name: path}`` of a track folder; two files for one stem is an error, not a coin toss."""
    stems = {}
    for path in _audio_files(folder):
        if path.stem in stems:
            raise ValueError(f"track folder {folder} holds two files for stem {path.stem!r} "
                             f"({stems[path.stem].name}, {path.name}); expected one file per stem")
        stems[path.stem] = path
    return stems


def _track_folders(folder: Path) -> list:
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def _source_names(stem_names) -> tuple:
    """The sources of a dataset: every stem found in any track (the mixture aside).

    The union, not the first track's set: a track that lacks a stem the others
    have is then reported, instead of that stem silently vanishing from every
    track. MUSDB's four come first in MUSDB's order, the others after, sorted.
    """
    found = set().union(*stem_names) - {"mixture"}
    if all(s in found for s in MUSDB_SOURCES):
        return MUSDB_SOURCES + tuple(sorted(found - set(MUSDB_SOURCES)))
    return tuple(sorted(found))


def _split_folders_of(root: Path) -> dict:
    """``{split: [folders]}``: the split sub-folders of ``root`` under any of their usual names."""
    return {s: [root / f for f in SPLIT_FOLDERS[s] if (root / f).is_dir()] for s in SPLITS}


def _no_track_folders(root: Path, split_dirs: dict) -> ValueError:
    """The error for a dataset without a single track folder, with a hint at what is there instead."""
    split_folders = [d for dirs in split_dirs.values() for d in dirs]
    loose = [p for folder in [root] + split_folders for p in _audio_files(folder)]
    found = [f"its split folders {', '.join(d.name + '/' for d in split_folders)} hold none"] if split_folders else []
    if loose:
        found.append(f"found {len(loose)} audio files lying loose: put each track's stems in a folder of its own")
    found = "; ".join(found) or "it holds no sub-folder"
    return ValueError(f"{root} holds no track folders ({found}); expected <root>/<track>/<stem>.wav "
                      "(or <root>/train/<track>/..., <root>/test/<track>/...)")


def _dataset_track_folders(root: Path, seed: int) -> list:
    """``[(split, track folder)]`` for every track of the dataset at ``root``, whatever split is asked for.

    With split sub-folders, a track's split is its folder's (MUSDB18-HQ has no
    ``valid/``: musdb's 14 validation tracks are taken out of ``train/``).
    Without, the flat folder is split 80/10/10 by a permutation seeded with ``seed``.
    """
    split_dirs = _split_folders_of(root)
    if not any(split_dirs.values()):
        folders = _track_folders(root)
        if not folders:
            raise _no_track_folders(root, split_dirs)
        names = [p.name for p in folders]
        split_of = {name: s for s in SPLITS for name in _seeded_split(names, s, seed)}
        return [(split_of[p.name], p) for p in folders]
    every = [(s, p) for s in SPLITS for d in split_dirs[s] for p in _track_folders(d)]
    if not every:
        raise _no_track_folders(root, split_dirs)
    validation = musdb_validation_tracks()
    if not split_dirs["valid"] and any(s == "train" and p.name in validation for s, p in every):
        every = [("valid" if s == "train" and p.name in validation else s, p) for s, p in every]
    # a track folder beside train/ and test/ would belong to no split, and be silently left out
    known = {d for dirs in split_dirs.values() for d in dirs}
    for folder in _track_folders(root):
        if folder not in known and _audio_files(folder):
            raise ValueError(f"{folder} is a track folder outside the split folders "
                             f"{', '.join(d.name + '/' for d in sorted(known))} of {root}; expected every track "
                             "under one of them (move it there, or out of the dataset)")
    return every


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
        sources: the source names to expect (default: every stem found in any track
            of the dataset, MUSDB's four first); a track missing one is an error.
    """
    root = _check_root(root)
    _check_split(split)
    every_track = _dataset_track_folders(root, seed)
    # listing every track folder (not just this split's) costs a directory read each, and makes
    # every split agree on the sources
    stems_of = {folder: _stem_files(folder) for _, folder in every_track}
    if sources is None:
        sources = _source_names(stems_of.values())
    elif isinstance(sources, str):  # sources="vocals" means one source, not six letters
        sources = (sources,)
    sources = tuple(sources)

    tracks = []
    for track_split, folder in every_track:
        if split != "all" and track_split != split:
            continue
        stems = dict(stems_of[folder])
        if not stems:
            raise ValueError(f"track folder {folder} holds no audio stems; expected files like "
                             f"mixture.wav, {', '.join(s + '.wav' for s in sources)}")
        mixture = stems.pop("mixture", None)
        missing = [s for s in sources if s not in stems]
        if missing:
            # a stem in a format tpsep does not read (vocals.m4a) is worth naming
            unread = [p.name for p in sorted(folder.iterdir()) if p.stem in missing and p.is_file()]
            raise ValueError(
                f"track folder {folder} is missing stem(s) {missing}; expected {[s + '.wav' for s in sources]} "
                f"like every track of {root} (found {sorted(stems) + (['mixture'] if mixture else [])})"
                + (f"; {', '.join(unread)}: not a format tpsep reads (expected {', '.join(STEM_EXTENSIONS)})"
                   if unread else ""))
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
        raise SplitNotFound(f"no MUSDB18 tracks for split {split!r} under {root}; expected "
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


class LibriMixTask(NamedTuple):
    """Which folders of a LibriMix split make up one task."""

    mixtures: tuple   # the mixture's folder: the first of these found (none found: the sum of the sources)
    sources: dict     # source name -> the folder of its files


# LibriMix's three tasks (its sep_clean, sep_noisy and enh_single), named by what they ask of a model.
# Enhancement has one target, the voice, named "speech": a model enhances with one output, and a
# score of "speech" is that of the enhanced voice (LibriMix keeps it in s1/).
LIBRIMIX_TASKS = {
    "separate": LibriMixTask(MIX_FOLDERS, {"s1": "s1", "s2": "s2"}),
    "separate_noisy": LibriMixTask(("mix_both",), {"s1": "s1", "s2": "s2", "noise": "noise"}),
    "enhance": LibriMixTask(("mix_single",), {"speech": "s1", "noise": "noise"}),
}
LIBRIMIX_TASK_NAMES = {"sep_clean": "separate", "sep_noisy": "separate_noisy", "enh_single": "enhance"}


def resolve_task(task: str = "separate", noisy: bool = False) -> str:
    """The name of a task in :data:`LIBRIMIX_TASKS`.

    Args:
        task: ``"separate"``, ``"separate_noisy"``, ``"enhance"``, or LibriMix's name for
            one of them (``"sep_clean"``, ``"sep_noisy"``, ``"enh_single"``).
        noisy: the older way to ask for ``"separate_noisy"``; with another task, an error.

    Returns:
        ``"separate"``, ``"separate_noisy"`` or ``"enhance"``.
    """
    name = LIBRIMIX_TASK_NAMES.get(task, task)
    if name not in LIBRIMIX_TASKS:
        raise ValueError(f"unknown task {task!r}; expected one of {list(LIBRIMIX_TASKS)} "
                         f"(or LibriMix's names {list(LIBRIMIX_TASK_NAMES)})")
    if noisy and name == "separate":
        return "separate_noisy"
    if noisy and name != "separate_noisy":
        raise ValueError(f"noisy=True asks for the noisy separation task, task={task!r} for another one; "
                         f"give task={task!r} alone")
    return name


def _librimix_split_dir(root: Path, split: str, rate: int | None) -> list:
    """Folders holding s1/ for ``split``: tries <root>/<split>, <root>/wav8k/min/<split>, ...

    s1/ alone marks a split folder, whatever the task: the loader then names the folder
    that its task misses (s2/ to separate, noise/ to enhance), instead of finding no split.
    """
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
            if (candidate / "s1").is_dir():
                found.append(candidate)
        if found:
            return found
    return found


def is_librimix(root) -> bool:
    root = Path(root)
    return any(_librimix_split_dir(root, s, None) for s in SPLITS) or (root / "s1").is_dir()


def load_librimix(root, split: str = "train", noisy: bool = False, rate: int | None = None,
                  allow_silent: bool = False, task: str = "separate") -> list:
    """LibriMix / wsj0-2mix folders, for one of LibriMix's three tasks.

    Looks under ``<root>/<split>``, ``<root>/wav8k/min/<split>`` and the like
    (``train-360``/``train-100``/``tr``, ``dev``/``cv``, ``test``/``tt``).

    Args:
        task: which folders make a track (:data:`LIBRIMIX_TASKS`):

            - ``"separate"``: the mixture ``mix_clean/`` (or ``mix/``), the sources ``s1/``, ``s2/``;
            - ``"separate_noisy"`` (also ``noisy=True``): ``mix_both/``; ``s1/``, ``s2/``, ``noise/``;
            - ``"enhance"``: ``mix_single/``; the sources ``speech`` (read from ``s1/``) and ``noise/``.

            Without its mixture folder, a track's mixture is the sum of its sources.
        noisy: the older way to ask for ``task="separate_noisy"``.
        rate: read ``wav8k/`` or ``wav16k/`` only (default: the first found).

    Returns:
        list of Track, their sources in the order above.
    """
    root = _check_root(root)
    _check_split(split)
    task = resolve_task(task, noisy)
    layout = LIBRIMIX_TASKS[task]
    wanted = SPLITS if split == "all" else (split,)
    folders = [(s, d) for s in wanted for d in _librimix_split_dir(root, s, rate)]
    if not folders and (root / "s1").is_dir():
        folders = [(split, root)]
    if not folders:
        expected = "{" + ",".join((layout.mixtures[0], *layout.sources.values())) + "}"
        raise SplitNotFound(f"no LibriMix/wsj0-2mix folder for split {split!r} under {root}; expected "
                         f"{root}/wav8k/min/{SPLIT_FOLDERS[split][0]}/{expected}/*.wav "
                         f"or {root}/{SPLIT_FOLDERS[split][0]}/{expected}/")
    tracks = []
    source_names = tuple(layout.sources)
    for track_split, folder in folders:
        mix_dir = next((folder / m for m in layout.mixtures if (folder / m).is_dir()), None)
        missing = [sub for sub in layout.sources.values() if not (folder / sub).is_dir()]
        if missing:
            # a LibriMix downloaded for enhancement only has no s2/: say which task it is made for
            hint = ("; its mix_single/ is made for task='enhance'"
                    if task != "enhance" and (folder / "mix_single").is_dir() else "")
            raise ValueError(f"{folder} has no {missing[0]}/ folder; the task {task!r} reads "
                             f"{[layout.mixtures[0] + '/'] + [sub + '/' for sub in layout.sources.values()]}{hint}")
        # one file per mixture in every folder: the names are the union over the folders, so a
        # file that only s2/ (or only the mixture folder) holds is reported, not dropped
        folders_of = {name: folder / sub for name, sub in layout.sources.items()}
        if mix_dir is not None:
            folders_of["mixture"] = mix_dir
        files_in = {key: {p.name for p in _audio_files(d)} for key, d in folders_of.items()}
        names = sorted(set().union(*files_in.values()))
        if not names:
            raise ValueError(f"{folders_of[source_names[0]]} holds no audio files; expected one file per "
                             f"mixture in each of {[d.name + '/' for d in folders_of.values()]}")
        for name in names:
            for key, files in files_in.items():
                if name not in files:
                    holder = next(k for k, f in files_in.items() if name in f)
                    raise ValueError(f"{folders_of[key] / name} is missing; expected one file per mixture in "
                                     f"each of {[d.name + '/' for d in folders_of.values()]} "
                                     f"({folders_of[holder].name}/{name} has no counterpart)")
            meta = {"split": track_split, "origin": "librimix", "path": str(folder), "task": task}
            mixture = folders_of["mixture"] / name if mix_dir is not None else None
            tracks.append(files_track(Path(name).stem, mixture, {k: folders_of[k] / name for k in source_names},
                                      meta, allow_silent=allow_silent))
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
    if kind in ("librimix", "wsj0-2mix", "wsj0mix"):
        return load_librimix(root, split, **options)
    if kind in ("musdb", "stems", "musdbhq", "musdb18hq") and ("task" in options or "noisy" in options):
        raise ValueError(f"task= and noisy= choose a task of a LibriMix folder; {root} is read as a "
                         f"{kind!r} dataset (a LibriMix split folder holds s1/)")
    if kind == "musdb":
        return load_musdb(root, split, **options)
    if kind in ("stems", "musdbhq", "musdb18hq"):
        return load_stem_folder(root, split, kind=kind, **options)
    raise ValueError(f"unknown dataset kind {kind!r}; expected 'musdb', 'musdbhq', 'stems' or 'librimix'")
