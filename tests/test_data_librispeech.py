"""Tests for the embedded speech dataset: LibriMix-style mixtures of the vendored LibriSpeech voices."""

import itertools
import json
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from tpsep.data import EMBEDDED, cache, dataset_folder, librispeech, load_dataset

SMALL = {"n_train": 20, "n_valid": 6, "n_test": 9, "progress": False}
TINY = {"n_train": 3, "n_valid": 3, "n_test": 3, "progress": False}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One small render shared by the tests that read audio: ``{split: tracks}``."""
    root = tmp_path_factory.mktemp("libri")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TPSEP_CACHE", str(root))
        return {s: load_dataset("speech", split=s, **SMALL) for s in ("train", "valid", "test")}


@pytest.fixture(scope="module")
def corpus():
    speakers = librispeech.corpus_speakers()
    return speakers, librispeech.speaker_splits(speakers)


def test_speech_is_the_librispeech_set_and_espeak_stays_by_name():
    assert EMBEDDED["speech"] == EMBEDDED["libri2mix-mini"] == "libri2mix-mini"
    assert EMBEDDED["espeak"] == EMBEDDED["speech2mix"] == "speech2mix"
    params = librispeech.librimix_params()
    assert cache.dataset_dir(EMBEDDED["speech"], params).name.startswith("libri2mix-mini-")
    assert (params["rate"], params["n_train"], params["n_valid"], params["n_test"]) == (8000, 600, 60, 90)


def test_splits_are_speaker_disjoint_and_balanced(corpus):
    speakers, splits = corpus
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [231, 20, 10]
    for a, b in itertools.combinations(splits.values(), 2):
        assert not set(a) & set(b)
    assert {speakers[s]["subset"] for s in splits["test"]} == {"test-other"}
    assert {speakers[s]["subset"] for s in splits["train"] + splits["valid"]} == {"train-clean-100"}
    assert Counter(speakers[s]["sex"] for s in splits["valid"]) == {"F": 10, "M": 10}
    assert Counter(speakers[s]["sex"] for s in splits["test"]) == {"F": 5, "M": 5}


def test_rendered_mixtures_keep_speakers_apart_and_hold_every_pair_kind(rendered, corpus):
    speakers, splits = corpus
    assert [len(rendered[s]) for s in ("train", "valid", "test")] == [20, 6, 9]
    heard = {split: {spk for t in tracks for spk in t.meta["speakers"]} for split, tracks in rendered.items()}
    for split in heard:
        assert heard[split] <= set(splits[split]), split
    assert not heard["train"] & heard["valid"] and not heard["train"] & heard["test"]
    assert not heard["valid"] & heard["test"]
    for split in ("valid", "test"):
        assert {t.meta["pair"] for t in rendered[split]} == {"FF", "FM", "MM"}, split
    for track in rendered["train"] + rendered["valid"] + rendered["test"]:
        a, b = track.meta["speakers"]
        assert a != b and track.name.endswith(f"_{a}_{b}")
        assert track.meta["sexes"] == [speakers[a]["sex"], speakers[b]["sex"]]
        assert track.meta["pair"] == "".join(sorted(track.meta["sexes"]))
        assert [u.split("-")[0] for u in track.meta["utterances"]] == [a, b]
        assert track.meta["origin"] == "libri2mix-mini"


def test_sources_sum_to_the_mixture_at_the_drawn_level(rendered, corpus):
    speakers, _ = corpus
    for track in rendered["valid"] + rendered["test"]:
        assert track.source_names == ("s1", "s2") and track.rate == 8000 and track.channels == 1
        np.testing.assert_array_equal(track.mixture, track.sources["s1"] + track.sources["s2"])
        s1, s2 = (np.sqrt(np.mean(track.sources[s] ** 2)) for s in ("s1", "s2"))
        level = track.meta["relative_level_db"]
        assert 0 <= level <= 5 and abs(20 * np.log10(s1 / s2) - level) < 0.05
        assert 0.05 < np.abs(track.mixture).max() <= 0.9 + 1e-4
        # "min" mode: as long as the shorter utterance, which is used from its start
        lengths = [sf.info(str(speakers[spk]["utterances"][utt])).frames // 2
                   for spk, utt in zip(track.meta["speakers"], track.meta["utterances"])]
        assert abs(track.frames - min(lengths)) <= 1
        assert min(track.meta["starts"]) == 0
        assert max(track.meta["starts"]) <= max(lengths) - track.frames + 1


def test_the_longer_utterance_is_cut_at_different_places(corpus):
    speakers, splits = corpus
    plans = librispeech.plan_split("train", speakers, splits["train"], 600, seed=0)
    cuts = [p["cut"] for p in plans]
    assert len(set(cuts)) == len(cuts) and 0.3 < np.mean(cuts) < 0.7
    assert len({p["name"] for p in plans}) == 600


def test_default_test_split_uses_every_pair_of_speakers_twice(corpus):
    speakers, splits = corpus
    plans = librispeech.plan_split("test", speakers, splits["test"], 90, seed=0)
    pairs = Counter(frozenset(p["speakers"]) for p in plans)
    assert len(pairs) == 45 and set(pairs.values()) == {2}
    assert Counter(p["pair"] for p in plans) == {"FF": 20, "FM": 50, "MM": 20}
    # each speaker reads its 10 utterances in turn: none used more than twice over 18 mixtures
    uses = Counter(u for p in plans for u in p["utterances"])
    assert len(uses) == 100 and set(uses.values()) <= {1, 2}
    # s1 is not always the speaker with the smaller id
    assert 20 < sum(int(p["speakers"][0]) < int(p["speakers"][1]) for p in plans) < 70


def test_noisy_variant_at_16k_keeps_the_same_speech(tmp_path, monkeypatch):
    monkeypatch.setenv("TPSEP_CACHE", str(tmp_path))
    noisy = load_dataset("speech", split="test", noisy=True, rate=16000, **TINY)
    clean = load_dataset("speech", split="test", rate=16000, **TINY)
    for n, c in zip(noisy, clean):
        assert n.source_names == ("s1", "s2", "noise") and n.rate == 16000
        np.testing.assert_array_equal(n.mixture, sum(n.sources.values()))
        assert np.sqrt(np.mean(n.sources["noise"] ** 2)) > 1e-3 and -3 <= n.meta["snr_db"] <= 6
        assert "snr_db" not in c.meta
        # the noisy render mixes the same utterances, cut at the same places, with the same level
        for key in ("speakers", "utterances", "starts", "relative_level_db"):
            assert n.meta[key] == c.meta[key], key
        assert n.frames == c.frames
    assert list((tmp_path).glob("libri2mix-mini-*/wav16k/min/test/mix_both"))


def test_render_is_deterministic(tmp_path, monkeypatch):
    files = []
    for name in ("a", "b"):
        monkeypatch.setenv("TPSEP_CACHE", str(tmp_path / name))
        folder = dataset_folder("speech", **TINY)
        manifest = json.loads((folder / "manifest.json").read_text())
        files.append({rel: entry["blake2b"] for rel, entry in manifest["files"].items()})
    assert len(files[0]) == 3 * 9 + 1  # mix_clean, s1, s2 of 9 mixtures, and tracks.json
    assert files[0] == files[1]


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match="rate=22050: .*8000 or 16000"):
        load_dataset("speech", rate=22050, progress=False)
    with pytest.raises(ValueError, match="n_test=0: .*at least one"):
        load_dataset("speech", n_test=0, progress=False)
    with pytest.raises(ValueError, match="n_train=2.5"):
        librispeech.librimix_params(n_train=2.5)
    with pytest.raises(TypeError, match="utterances_per_speaker"):  # an espeak option, not a LibriSpeech one
        load_dataset("speech", utterances_per_speaker=3, progress=False)


def test_data_info_options_follow_the_dataset():
    from tpsep.data.commands import render_options

    assert render_options(["speech"], {"noisy": True}) == {"speech": {"noisy": True}}
    with pytest.raises(ValueError, match="utterances_per_speaker"):
        render_options(["speech"], {"utterances_per_speaker": 3})
    assert render_options(["espeak"], {"utterances_per_speaker": 3}) == {"espeak": {"utterances_per_speaker": 3}}


def test_a_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="LibriSpeech recordings .* missing .*vendor_librispeech"):
        librispeech.corpus_files(tmp_path)


def test_vendored_corpus_ships_its_license_and_attribution(corpus):
    speakers, _ = corpus
    folder = librispeech.CORPUS
    assert "Creative Commons Attribution 4.0" in (folder / "LICENSE.TXT").read_text()
    readme = (folder / "README.md").read_text()
    for words in ("Panayotov", "openslr.org/12", "CC BY 4.0", "Opus", "Vassil Panayotov"):
        assert words in readme, words
    files = librispeech.corpus_files()
    assert len(files) == 351 and len(speakers) == 261
    assert set(librispeech.read_sexes()) == set(speakers)  # one SPEAKERS.TXT line per speaker shipped
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 20e6  # the repository must stay small
    for path in files[::10]:
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "OPUS")
        assert path.relative_to(folder).parts[0] in ("train-clean-100", "test-other")
        assert len(path.relative_to(folder).parts) <= 3  # within pyproject's package-data patterns
