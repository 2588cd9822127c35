"""Datasets for the course: embedded defaults rendered offline, real datasets, PyTorch wrappers.

>>> from tpsep.data import load_dataset, describe
>>> tracks = load_dataset("music", split="test")     # Bach chorales, rendered once and cached
>>> describe(tracks)                                  # a small table: name, split, duration, rate
>>> track = tracks[0]; track.mixture.shape            # (channels, samples), float32
>>> track.sources["vocals"]                           # same shape as the mixture

>>> speech = load_dataset("speech", split="test")     # real read speech (LibriSpeech), two speakers at once
>>> speech[0].meta["pair"]                            # "FF", "FM" or "MM": the sexes of the two speakers
>>> noisy = load_dataset("speech", split="test", task="enhance")   # one speaker in noise
>>> noisy[0].source_names, noisy[0].meta["snr_db"]    # ("speech", "noise") and the SNR in dB

``load_dataset`` also reads real data from a folder: MUSDB18 (``.stem.mp4``,
needs ffmpeg), MUSDB18-HQ, any folder of stems ``<track>/<stem>.wav``, and
LibriMix / wsj0-2mix. Changing ``DATASET = "music"`` into a path is all a
notebook needs to do.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

from .cache import cache_root, dataset_dir, render_once
from .track import MUSDB_SOURCES, Track, files_track, memory_track
from .real import LIBRIMIX_TASKS, load_librimix, load_musdb, load_real, load_stem_folder

# name a notebook may use -> the renderer (and cache folder prefix) behind it
EMBEDDED = {"music": "chorales", "chorales": "chorales",
            "speech": "libri2mix-mini", "libri2mix-mini": "libri2mix-mini",  # LibriSpeech voices, LibriMix-style
            "espeak": "speech2mix", "speech2mix": "speech2mix"}  # the earlier espeak-ng voices, kept by name

# the tasks of the speech sets (and of LibriMix folders): separate, separate_noisy, enhance
TASKS = tuple(LIBRIMIX_TASKS)

__all__ = ["Track", "load_dataset", "describe", "dataset_folder", "cache_root", "MUSDB_SOURCES", "TASKS",
           "load_stem_folder", "load_musdb", "load_librimix", "memory_track", "files_track",
           "dataset_with_options", "split_dataset_options",
           "ChunkDataset", "SpectrogramPatchDataset", "TrackDataset"]


def embedded_renderer(name: str) -> tuple:
    """``(make_params, render)`` of the embedded dataset ``name``: its parameter function and its renderer."""
    kind = EMBEDDED[name]
    if kind == "chorales":
        from .chorales import music_params, render_music
        return music_params, render_music
    if kind == "speech2mix":
        from .speech import render_speech, speech_params
        return speech_params, render_speech
    from .librispeech import librimix_params, render_librimix
    return librimix_params, render_librimix


def _split_options(name: str, options: dict) -> tuple:
    """Separate the rendering parameters of an embedded dataset from the loading options."""
    import inspect

    make_params, _ = embedded_renderer(name)
    keys = tuple(inspect.signature(make_params).parameters)  # every argument of the parameter function
    loading = ("progress", "verify")
    unknown = [k for k in options if k not in keys + loading]
    if unknown:
        raise TypeError(f"load_dataset({name!r}) got unknown option(s) {unknown}; expected any of {list(keys + loading)}")
    return make_params(**{k: options[k] for k in keys if k in options}), {k: options[k] for k in loading if k in options}


def dataset_folder(name: str = "music", progress: bool = True, verify: bool = True, **params) -> Path:
    """Render the embedded dataset ``name`` if it is not cached yet and return its folder.

    The folder is keyed by the rendering parameters (``$TPSEP_CACHE/chorales-<key>/``);
    a partial or corrupted folder (manifest missing, sizes or checksums wrong)
    is rendered again.
    """
    kind = EMBEDDED.get(name)
    if kind is None:
        raise ValueError(f"unknown embedded dataset {name!r}; expected 'music', 'speech' or 'espeak'")
    params, _ = _split_options(name, params)
    _, render = embedded_renderer(name)
    # tqdm's own TQDM_DISABLE loses to an explicit disable= argument, so honour it here
    # (pytest sets it: a progress bar in a notebook's stored outputs differs on every run)
    progress = progress and not os.environ.get("TQDM_DISABLE")
    return render_once(kind, params, lambda folder: render(folder, params, progress), checksums=verify)


def load_dataset(name: str = "music", split: str = "train", **options) -> list:
    """Load a dataset as a list of :class:`Track` (audio is read lazily, when first used).

    Args:
        name: ``"music"`` (Bach chorales rendered as drums/bass/other/vocals, 16 kHz mono, with
            sampled instruments from a General MIDI SoundFont, a sung voice and simulated rooms),
            ``"speech"`` (two-speaker mixtures s1/s2 of real LibriSpeech voices, made as
            LibriMix, 8 kHz; also called ``"libri2mix-mini"``), ``"espeak"`` (the older
            two-speaker mixtures of espeak-ng voices, alias ``"speech2mix"``), or the path of a
            real dataset (auto-detected; force with ``kind="musdb" | "musdbhq" | "stems" | "librimix"``).
        split: ``"train"``, ``"valid"``, ``"test"`` or ``"all"``.
        **options: music: ``n_chorales=40, rate=16000, channels=1, seed=0, augment=0,
            n_valid=4, n_test=8, instruments="mixed"`` (``"soundfont"``: sampled instruments
            only, ``"synth"``: the synthesizer only), ``soundfont_path=None`` (another .sf2); speech: ``n_train=600, n_valid=60, n_test=90, rate=8000,
            seed=0, task="separate"`` (sources s1, s2), ``"separate_noisy"`` (s1, s2, noise; also
            ``noisy=True``) or ``"enhance"`` (one speaker in noise: sources speech, noise; see
            :mod:`tpsep.data.librispeech`); espeak: ``n_train=600, n_valid=100, n_test=100, rate=8000,
            seed=0, noisy=False, utterances_per_speaker=60``; all: ``progress=True`` (tqdm bar
            while rendering), ``verify=True`` (checksum the cache). Real data: ``kind=``,
            ``sources=``, ``allow_silent=``, ``task=`` or ``noisy=`` (LibriMix). The options may
            also follow the name, as a checkpoint records them: ``"speech?task=enhance"``
            (:func:`dataset_with_options`).

    Returns:
        list of Track, each with ``mixture`` and ``sources`` float32 ``(channels, samples)``.
    """
    if split not in ("train", "valid", "test", "all"):
        raise ValueError(f"unknown split {split!r}; expected 'train', 'valid', 'test' or 'all'")
    name, options = _merge_named_options(name, options)
    if isinstance(name, str) and name in EMBEDDED:
        params, loading = _split_options(name, options)
        folder = dataset_folder(name, **loading, **_options_without(options, loading))
        manifest = json.loads((folder / "manifest.json").read_text())
        per_track = json.loads((folder / "tracks.json").read_text())
        if EMBEDDED[name] == "chorales":
            tracks = load_stem_folder(folder, split, kind="chorales")
        else:
            from .librispeech import task_of

            tracks = load_librimix(folder, split, task=task_of(params), rate=params["rate"])
        for track in tracks:
            track.meta.update(per_track.get(track.name, {}))
            track.meta.update(origin=EMBEDDED[name], params=params,
                              render_seconds=manifest["info"].get("render_seconds"))
        return tracks
    if isinstance(name, str) and not any(c in name for c in "/\\.~") and not Path(name).exists():
        raise ValueError(f"unknown dataset {name!r}; expected 'music', 'speech', 'espeak' or the path of a dataset folder")
    return load_real(Path(name), split, **options)


def _options_without(options: dict, loading: dict) -> dict:
    return {k: v for k, v in options.items() if k not in loading}


def dataset_with_options(name: str, **options) -> str:
    """A dataset and the options it is loaded with, in one string: ``"speech?task=enhance"``.

    What a checkpoint records as its dataset, so that ``tpsep evaluate`` loads the same
    data; :func:`load_dataset` reads it (:func:`split_dataset_options` takes it apart).

    Args:
        name: ``"music"``, ``"speech"``, ... or the path of a dataset.
        **options: options of :func:`load_dataset` (numbers, booleans or words).

    Returns:
        ``name`` alone without options, else ``name?key=value&key=value``.
    """
    name, named = split_dataset_options(name)   # a name that already holds options keeps them
    options = {**named, **options}
    if not options:
        return name
    return f"{name}?" + "&".join(f"{key}={value}" for key, value in options.items())


def split_dataset_options(text: str) -> tuple:
    """``"speech?task=enhance"`` -> ``("speech", {"task": "enhance"})``; a plain name or path -> ``(text, {})``.

    Values are read as Python literals when they are one (``n_test=9`` is a number),
    as words otherwise. A path that exists is never taken apart, even with a ``?`` in it.
    """
    text = str(text)
    if "?" not in text or Path(text).exists():
        return text, {}
    name, _, query = text.rpartition("?")
    options = {}
    for item in query.split("&"):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise ValueError(f"dataset {text!r}: expected NAME?key=value&key=value after the name, got {item!r}")
        try:
            options[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key] = value
    return name, options


def _merge_named_options(name, options: dict) -> tuple:
    """The options given after the name (``"speech?task=enhance"``) joined to those given as arguments."""
    if not isinstance(name, str):
        return name, options
    name, named = split_dataset_options(name)
    clashes = [key for key in named if key in options and options[key] != named[key]]
    if clashes:
        raise ValueError(f"dataset {name!r}: option(s) {clashes} given twice, as {[named[k] for k in clashes]} "
                         f"after the name and as {[options[k] for k in clashes]}; give them once")
    return name, {**named, **options}


def describe(tracks):
    """A small pandas table of ``tracks``: name, split, duration (s), rate, channels, sources."""
    import pandas as pd

    rows = [{"name": t.name, "split": t.meta.get("split"), "duration": round(t.duration, 2), "rate": t.rate,
             "channels": t.channels, "sources": ", ".join(t.source_names)} for t in tracks]
    return pd.DataFrame(rows, columns=["name", "split", "duration", "rate", "channels", "sources"])


def __getattr__(name):  # the PyTorch datasets import torch only when asked for
    if name in ("ChunkDataset", "SpectrogramPatchDataset", "TrackDataset"):
        from . import torch_datasets
        return getattr(torch_datasets, name)
    raise AttributeError(f"module 'tpsep.data' has no attribute {name!r}")
