"""Tests for the rendered Bach-chorale dataset, its cache, its synthesizer and ``tpsep data info``."""

import argparse
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from tpsep.data import cache, load_dataset, synth
from tpsep.data.commands import add_data_command

SMALL = {"n_chorales": 3, "n_valid": 1, "n_test": 1, "progress": False}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One small render shared by the tests (rendering is the slow part)."""
    root = tmp_path_factory.mktemp("rendered")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TPSEP_CACHE", str(root))
        load_dataset("music", split="test", **SMALL)
    return root


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch, rendered):
    """A private cache that already holds the small render."""
    shutil.copytree(rendered, tmp_path / "cache")
    monkeypatch.setenv("TPSEP_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_small_render_has_disjoint_splits_and_exact_mixtures(tmp_cache):
    splits = {s: load_dataset("music", split=s, **SMALL) for s in ("train", "valid", "test")}
    assert [len(v) for v in splits.values()] == [1, 1, 1]
    titles = [t.meta["title"] for tracks in splits.values() for t in tracks]
    assert len(set(titles)) == 3  # no chorale in two splits
    for split, tracks in splits.items():
        track = tracks[0]
        assert track.meta["split"] == split and track.meta["origin"] == "chorales"
        assert track.rate == 16000 and track.channels == 1
        assert track.source_names == ("drums", "bass", "other", "vocals")
        assert track.duration > 10
        np.testing.assert_array_equal(track.mixture, sum(track.sources.values()))  # exact, not approximate
        assert np.abs(track.mixture).max() < 1.0
        for name, audio in track.sources.items():
            assert np.sqrt(np.mean(audio ** 2)) > 1e-3, name  # every stem really plays
    assert len(load_dataset("music", split="all", **SMALL)) == 3


def test_render_is_deterministic_and_cached(tmp_cache, tmp_path, monkeypatch):
    first = next(tmp_cache.glob("chorales-*"))
    manifest = json.loads((first / "manifest.json").read_text())
    mtime = (first / "manifest.json").stat().st_mtime_ns
    load_dataset("music", split="train", **SMALL)  # cached: not rendered again
    assert (first / "manifest.json").stat().st_mtime_ns == mtime
    # a second cache folder rendered from scratch holds bit-identical files
    monkeypatch.setenv("TPSEP_CACHE", str(tmp_path / "other"))
    load_dataset("music", split="test", **SMALL)
    second = next((tmp_path / "other").glob("chorales-*"))
    assert second.name == first.name
    again = json.loads((second / "manifest.json").read_text())
    assert {k: v["blake2b"] for k, v in again["files"].items()} == {k: v["blake2b"] for k, v in manifest["files"].items()}


def test_changed_parameters_render_anew_and_stereo(tmp_cache):
    a = load_dataset("music", split="test", **SMALL)[0]
    options = dict(channels=2, rate=22050, seed=1, augment=1, **SMALL)
    track = load_dataset("music", split="test", **options)[0]
    assert len(list(tmp_cache.glob("chorales-*"))) == 2
    train = load_dataset("music", split="train", **options)
    assert len(train) == 2 and sorted(t.meta["augmented"] for t in train) == [False, True]
    original, augmented = sorted(train, key=lambda t: t.meta["augmented"])
    assert augmented.name == original.name + "+aug1"
    assert (augmented.meta["transpose"], augmented.frames) != (0, original.frames)
    assert a.meta["path"] != track.meta["path"]
    assert track.channels == 2 and track.rate == 22050 and track.mixture.shape[0] == 2
    left, right = track.sources["other"]
    assert not np.allclose(left, right)  # alto and tenor are panned apart
    with pytest.raises(ValueError, match="channels=3"):
        load_dataset("music", channels=3, **SMALL)
    with pytest.raises(TypeError, match="unknown option"):
        load_dataset("music", n_songs=3)


def test_corrupted_or_partial_cache_is_rendered_again(tmp_cache):
    track = load_dataset("music", split="test", **SMALL)[0]
    vocals = track.meta["files"]["vocals"]
    good = sf.read(vocals)[0]
    with open(vocals, "r+b") as f:  # truncate a file, as an interrupted copy would
        f.truncate(1000)
    track = load_dataset("music", split="test", **SMALL)[0]
    np.testing.assert_array_equal(sf.read(track.meta["files"]["vocals"])[0], good)
    folder = next(tmp_cache.glob("chorales-*"))
    (folder / "manifest.json").unlink()  # a render that never finished has no manifest
    assert not cache.verify(folder)
    assert not (folder / "manifest.json").is_file()


def test_data_info_command(tmp_cache, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_data_command(parser.add_subparsers())
    out = tmp_path / "info.json"
    args = parser.parse_args(["data", "info", "music", "--quiet", "--json", str(out),
                              "--set", "n_chorales=3", "--set", "n_valid=1", "--set", "n_test=1"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-1].startswith("data | music: 3 tracks")
    figures = json.loads(out.read_text())["datasets"][0]
    assert figures["splits"]["train"]["tracks"] == 1 and figures["render_seconds"] > 0
    assert figures["disk_mb"] > 0


def test_syllables_and_instruments():
    assert synth.syllable_sounds("Schön") == ("sch", "e")
    assert synth.syllable_sounds("Herz") == ("h", "e")
    assert synth.syllable_sounds("und") == ("", "u")
    assert synth.syllable_sounds("Geist") == ("g", "a") and synth.syllable_sounds("Freu-") == ("fr", "o")
    assert synth.syllable_sounds(None) == ("", None)
    rng = np.random.default_rng(0)
    for kind in synth.INSTRUMENTS:
        note = synth.instrument_note(kind, 60, 0.5, 16000, rng)
        assert np.all(np.isfinite(note)) and np.abs(note).max() > 0.05, kind
        # no energy above Nyquist folds back: the spectrum is band-limited below 0.95 * Nyquist
        spectrum = np.abs(np.fft.rfft(note * np.hanning(len(note))))
        top = int(len(spectrum) * 0.97)  # above 0.97 * Nyquist nothing was synthesised
        assert spectrum[top:].max() < 1e-3 * spectrum.max(), kind
    with pytest.raises(ValueError, match="unknown instrument"):
        synth.instrument_note("banjo", 60, 0.5, 16000, rng)


def test_silent_vocal_chunks_are_drawn_again():
    """About 3 % of 1-s vocal chunks of the chorales are digital silence; the chunk dataset redraws them."""
    from tpsep.data import ChunkDataset

    tracks = load_dataset("music", split="train")

    def rms_levels(dataset):
        return np.array([np.sqrt(np.mean(dataset[i][1].numpy() ** 2)) for i in range(len(dataset))])

    unfiltered = rms_levels(ChunkDataset(tracks, 1.0, sources=("vocals",), chunks_per_epoch=300, min_level_db=None))
    filtered = rms_levels(ChunkDataset(tracks, 1.0, sources=("vocals",), chunks_per_epoch=300))
    assert np.sum(unfiltered == 0) >= 3                  # the silence is there without the filter ...
    assert filtered.min() > 10 ** (-60 / 20)             # ... and never reaches training with it
    with pytest.raises(ValueError, match="min_level_db=None"):
        ChunkDataset(tracks, 1.0, sources=("vocals",), min_level_db=+10)[0]
