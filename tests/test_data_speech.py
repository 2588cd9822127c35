"""Tests for the rendered two-speaker espeak-ng dataset ("espeak", formerly the default "speech")."""

import numpy as np
import pytest

from tpsep.data import load_dataset, speech

SMALL = {"n_train": 6, "n_valid": 2, "n_test": 3, "utterances_per_speaker": 2, "progress": False}


def espeak_available() -> bool:
    try:
        speech.espeak()
        return True
    except RuntimeError:
        return False


pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeakng-loader has no engine on this platform")


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TPSEP_CACHE", str(tmp_path))
    return tmp_path


def test_two_speaker_mixtures(tmp_cache):
    splits = {s: load_dataset("espeak", split=s, **SMALL) for s in ("train", "valid", "test")}
    assert [len(v) for v in splits.values()] == [6, 2, 3]
    speakers = {s: {spk for t in tracks for spk in t.meta["speakers"]} for s, tracks in splits.items()}
    assert not speakers["test"] & speakers["train"] and not speakers["valid"] & speakers["train"]
    assert not speakers["test"] & speakers["valid"]
    for tracks in splits.values():
        for track in tracks:
            assert track.source_names == ("s1", "s2") and track.rate == 8000 and track.channels == 1
            assert track.meta["speakers"][0] != track.meta["speakers"][1]
            assert 1.0 < track.duration < 6.0
            np.testing.assert_array_equal(track.mixture, track.sources["s1"] + track.sources["s2"])
            s1, s2 = (np.sqrt(np.mean(track.sources[s] ** 2)) for s in ("s1", "s2"))
            # the two utterances have equal RMS before the [0, 5] dB relative level (then cut to the shorter)
            assert -1.5 < 20 * np.log10(s1 / s2) < 6.5
            assert 0 <= track.meta["relative_level_db"] <= 5
            assert len(track.meta["texts"]) == 2


def test_sentences_and_voices_differ():
    rng = np.random.default_rng(0)
    sentences = {speech.make_sentence(rng) for _ in range(300)}
    assert len(sentences) > 250
    assert len({s[1] for s in speech.SPEAKERS}) >= 8
    first, second = (speech.utterance(s, "The clock on the wall is slow.", 8000) for s in speech.SPEAKERS[:2])
    assert len(first) != len(second) or not np.allclose(first, second)


def test_noisy_variant_and_16k(tmp_cache):
    track = load_dataset("espeak", split="test", noisy=True, rate=16000, **SMALL)[0]
    assert track.source_names == ("s1", "s2", "noise") and track.rate == 16000
    np.testing.assert_array_equal(track.mixture, sum(track.sources.values()))
    assert np.sqrt(np.mean(track.sources["noise"] ** 2)) > 1e-3
    with pytest.raises(ValueError, match="8000 or 16000"):
        load_dataset("espeak", rate=44100, **SMALL)


def test_render_is_deterministic(tmp_path, monkeypatch):
    arrays = []
    for folder in ("a", "b"):
        monkeypatch.setenv("TPSEP_CACHE", str(tmp_path / folder))
        arrays.append(load_dataset("espeak", split="valid", **SMALL)[1].mixture)
    np.testing.assert_array_equal(*arrays)


def test_missing_engine_is_a_clear_error(monkeypatch):
    import espeakng_loader

    monkeypatch.setattr(speech, "_engine", None)
    monkeypatch.setattr(espeakng_loader, "get_library_path", lambda: "/nonexistent/libespeak-ng.so")
    with pytest.raises(RuntimeError, match="espeakng-loader"):
        speech.espeak()
