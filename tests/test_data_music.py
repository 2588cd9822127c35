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


# ---------------------------------------------------------------------------
# the SoundFont instruments, the singer and the recording chain (SYNTH_VERSION 6)

from tpsep.data import chorales, soundfont  # noqa: E402


@pytest.fixture(scope="module")
def sound_font():
    return soundfont.load()


@pytest.fixture(scope="module")
def one_chorale():
    """A short clean SATB chorale from music21's corpus."""
    from music21 import corpus

    path = next(p for p in corpus.getComposer("bach") if str(p).endswith("bwv251.mxl"))
    return chorales.read_chorale(path)


def _f0(x, rate, expected):
    """The fundamental (Hz) nearest ``expected``: the lag of the autocorrelation peak within +-2 semitones,
    refined by parabolic interpolation (octave errors of the estimate would show as 1200 cents)."""
    x = x - x.mean()
    ac = np.fft.irfft(np.abs(np.fft.rfft(x, 2 * len(x))) ** 2)[:len(x)]
    lo, hi = int(rate / (expected * 2 ** (2 / 12))), int(rate / (expected * 2 ** (-2 / 12))) + 1
    lag = lo + int(np.argmax(ac[lo:hi]))
    a, b, c = ac[lag - 1], ac[lag], ac[lag + 1]
    return rate / (lag + 0.5 * (a - c) / (a - 2 * b + c))


@pytest.mark.parametrize("program, key", [(0, 57), (0, 45), (52, 60), (33, 40), (48, 64), (56, 67), (24, 52)])
def test_soundfont_notes_are_in_tune(sound_font, program, key):
    """The zones' overriding root keys are honoured (symusic 0.5 ignores them: its piano is 13-23 semitones off)."""
    rate = 16000
    note = sound_font.note(0, program, key, 1.0, rate, velocity=100)
    expected = 440 * 2 ** ((key - 69) / 12)
    steady = note[int(0.3 * rate):int(0.9 * rate)]
    cents = 1200 * np.log2(_f0(steady, rate, expected) / expected)
    assert abs(cents) < 25, (sound_font.preset_name(0, program), key, cents)
    # and the pitch is the fundamental, not a sub-octave: the autocorrelation at half the lag is high
    lag = int(round(rate / expected))
    ac = [np.dot(steady[:-k], steady[k:]) / np.dot(steady, steady) for k in (lag, 2 * lag)]
    assert ac[0] > 0.3, (program, key, ac)


def test_soundfont_velocity_release_and_pitch_curve(sound_font):
    rate = 16000
    loud = sound_font.note(0, 0, 60, 0.5, rate, velocity=120)
    soft = sound_font.note(0, 0, 60, 0.5, rate, velocity=40)
    assert 15 < 20 * np.log10(np.abs(loud).max() / np.abs(soft).max()) < 23  # 40 log10(120 / 40) = 19 dB
    assert len(loud) > int(0.6 * rate)  # the release rings after the note-off ...
    assert np.abs(loud[int(0.52 * rate):]).max() > 1e-3
    assert np.abs(loud[-20:]).max() < 1e-2 * np.abs(loud).max()  # ... and fades out, no click
    # a pitch curve bends the note: +100 cents sounds a semitone higher
    bent = sound_font.note(0, 52, 60, 1.0, rate, cents=np.full(rate, 100.0))
    expected = 440 * 2 ** ((61 - 69) / 12)
    assert abs(1200 * np.log2(_f0(bent[int(0.3 * rate):int(0.9 * rate)], rate, expected) / expected)) < 25
    # the same note twice is the same audio, cached or not
    np.testing.assert_array_equal(sound_font.note(0, 0, 60, 0.5, rate, 90), sound_font.note(0, 0, 60, 0.5, rate, 90))


def test_every_drawn_instrument_sounds_across_its_range(sound_font):
    """A preset with a gap in its key zones would leave silent notes: every program tpsep draws
    sounds on every key a chorale part can give it (after the octave folding of chorales._in_range)."""
    rate = 8000
    tables = {"bass": (chorales.BASS_PROGRAMS, range(26, 52)),
              "keys": ({**chorales.KEYS_PROGRAMS, **chorales.GUITAR_PROGRAMS, **chorales.ROCK_GUITAR_PROGRAMS,
                        **chorales.STRINGS_PROGRAMS, **chorales.PAD_PROGRAMS}, range(40, 86)),
              "winds": ({**chorales.HIGH_WIND_PROGRAMS, **chorales.LOW_WIND_PROGRAMS}, range(40, 86)),
              "voice": (chorales.VOICE_PROGRAMS, range(40, 86))}
    for name, (programs, keys) in tables.items():
        for program in programs:
            for key in keys[::3]:
                played = chorales._in_range(sound_font, program, key)
                note = sound_font.note(0, program, played, 0.4, rate, velocity=90)
                assert np.sqrt(np.mean(note[:int(0.4 * rate)] ** 2)) > 1e-3, (name, program, key)
    for kit in chorales.DRUM_KITS:
        for key in (*chorales.GM_DRUMS.values(), 40, 44, 51, *chorales.TOMS):
            assert np.abs(sound_font.note(128, kit, key, 0.2, rate, 100)).max() > 1e-2, (kit, key)


def test_missing_or_broken_soundfont_is_a_clear_error(tmp_path, monkeypatch):
    import pretty_midi

    with pytest.raises(soundfont.SoundFontError, match=r"expected the General MIDI SoundFont TimGM6mb\.sf2 at"):
        chorales.music_params(soundfont_path=tmp_path / "missing.sf2")
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"RIFF\0\0\0\0WAVEfmt ")
    with pytest.raises(soundfont.SoundFontError, match="not a SoundFont 2 file"):
        chorales.music_params(soundfont_path=fake)
    # pretty_midi installed without its SoundFont: load_dataset says what it expected, and where
    monkeypatch.setattr(pretty_midi, "__file__", str(tmp_path / "pretty_midi" / "__init__.py"))
    with pytest.raises(FileNotFoundError, match=r"TimGM6mb\.sf2 at .*pretty_midi.*pip install"):
        load_dataset("music", **SMALL)
    assert chorales.music_params(instruments="synth")["soundfont"] is None  # the synthesizer alone needs none
    monkeypatch.setenv("TPSEP_CACHE", str(tmp_path / "cache"))
    tracks = load_dataset("music", split="test", instruments="synth", **SMALL)
    assert tracks[0].meta["instruments"]["drums"] == "synth" and tracks[0].meta["voice"]["kind"] == "synth"


def test_new_parameters_change_the_cache_key(tmp_path):
    base = chorales.music_params()
    assert base["synth_version"] == chorales.SYNTH_VERSION >= 6
    assert base["soundfont"].startswith("TimGM6mb.sf2:")  # the SoundFont's content hash is in the key
    keys = {cache.params_key(base)}
    for options in ({"instruments": "soundfont"}, {"instruments": "synth"}):
        keys.add(cache.params_key(chorales.music_params(**options)))
    other = tmp_path / "other.sf2"  # the same file with one byte changed: another key
    data = bytearray(soundfont.default_soundfont().read_bytes())
    data[-1] ^= 1
    other.write_bytes(bytes(data))
    keys.add(cache.params_key(chorales.music_params(soundfont_path=other)))
    assert len(keys) == 4
    assert cache.params_key(chorales.music_params()) == cache.params_key(base)  # and stable
    with pytest.raises(ValueError, match="instruments='banjo'"):
        chorales.music_params(instruments="banjo")


def test_render_chorale_is_deterministic_and_every_part_sounds(one_chorale, sound_font):
    rate = 16000
    first, info = chorales.render_chorale(one_chorale, rate, 1, np.random.default_rng(7), sound_font=sound_font)
    again, _ = chorales.render_chorale(one_chorale, rate, 1, np.random.default_rng(7), sound_font=sound_font)
    for stem in first:
        np.testing.assert_array_equal(first[stem], again[stem])
    for stem, notes in info["notes"].items():
        audio = first[stem][0]
        level = np.sqrt(np.mean(audio ** 2))
        for start, end, _ in notes:
            if end - start < 0.25:
                continue
            a, b = int((start + 0.05) * rate), int((end - 0.02) * rate)
            assert np.sqrt(np.mean(audio[a:b] ** 2)) > 10 ** (-35 / 20) * level, (stem, start, end, info["instruments"])


def test_instruments_voices_and_rooms_are_drawn_per_track(one_chorale, sound_font):
    infos = [chorales.render_chorale(one_chorale, 8000, 1, np.random.default_rng(seed), sound_font=sound_font)[1]
             for seed in range(6)]
    assert len({i["instruments"]["alto"] for i in infos}) >= 3
    assert len({i["instruments"]["bass"] for i in infos}) >= 3
    assert len({i["voice"]["type"] for i in infos}) >= 2 and len({i["voice"]["kind"] for i in infos}) >= 2
    assert len({i["bpm"] for i in infos}) == 6 and len({str(i["chains"]) for i in infos}) == 6
    assert any(str(i["instruments"]["alto"])[0].isdigit() for i in infos)  # some SoundFont programs ...
    synth_only = chorales.render_chorale(one_chorale, 8000, 1, np.random.default_rng(0), instruments="synth")[1]
    assert all(not str(v)[0].isdigit() for k, v in synth_only["instruments"].items()
               if k in ("alto", "tenor", "bass"))  # ... and none when asked for the synthesizer only


def test_small_render_draws_instruments_per_track(tmp_cache):
    tracks = load_dataset("music", split="all", **SMALL)
    programs = {(t.meta["instruments"]["alto"], t.meta["instruments"]["bass"]) for t in tracks}
    assert len(programs) >= 2
    assert "notes" not in tracks[0].meta  # the note lists stay out of tracks.json


def test_sung_contour_has_vibrato_scoops_and_consonants():
    rate = 16000
    rng = np.random.default_rng(3)
    singer = {**synth.draw_singer(rng, "soprano"), "vibrato_hz": 5.8, "vibrato_depth": 0.4, "scoop_prob": 1.0,
              "drift_cents": 0.0, "intonation_cents": 0.0, "jitter": 0.0}
    notes = [{"start": 0.2, "end": 2.2, "midi": 67, "vowel": "a", "onset": "s", "new_syllable": True},
             {"start": 2.2, "end": 4.2, "midi": 69, "vowel": "o", "onset": "t", "new_syllable": True}]
    total = int(4.6 * rate)
    contour = synth.sung_contour(notes, total, rate, rng, singer)
    held = contour["pitch"][int(1.0 * rate):int(2.1 * rate)] - 67
    assert 0.2 < np.ptp(held) / 2 < 0.8  # vibrato depth, in semitones
    spectrum = np.abs(np.fft.rfft((held - held.mean()) * np.hanning(len(held)), 16 * rate))
    assert 5.0 < np.argmax(spectrum) / 16 < 6.6  # vibrato rate, in Hz
    scoop = contour["pitch"][int(2.2 * rate) + 10] - 69
    assert scoop < -0.2  # the second note starts below its pitch ...
    assert abs(np.median(contour["pitch"][int(2.6 * rate):int(3.0 * rate)]) - 69) < 0.1  # ... and gets there
    noise = synth.articulation(notes, total, rate, rng, singer, contour)
    s_burst = noise[int(0.1 * rate):int(0.2 * rate)]
    assert np.sqrt(np.mean(s_burst ** 2)) > 0.05  # the "s" before the first vowel
    voice = synth.sing(notes, total, rate, rng, singer, contour)
    assert np.all(np.isfinite(voice)) and np.sqrt(np.mean(voice[int(0.5 * rate):int(2 * rate)] ** 2)) > 0.5


def test_recording_chain_keeps_the_mixture_a_sum():
    rate = 16000
    rng = np.random.default_rng(0)
    room = synth.room_response(rate, rng, 1.2, channels=2)
    assert room.shape[0] == 2 and np.allclose(np.sum(room ** 2, axis=-1), 1.0)
    decay = [np.sum(room[0, int(a * rate):int((a + 0.1) * rate)] ** 2) for a in (0.05, 0.6)]
    assert decay[1] < decay[0] * 10 ** (-15 / 10)  # about -60 dB per 1.2 s: -27 dB in 0.55 s
    # a +6 dB high shelf adds 6 dB at the top and nothing at the bottom
    noise = rng.standard_normal((1, 4 * rate))
    shelved = synth.equalise(noise, [("highshelf", 2000, 6.0, 0.7)], rate)
    spectra = [np.abs(np.fft.rfft(x[0])) ** 2 for x in (noise, shelved)]
    f = np.fft.rfftfreq(noise.shape[1], 1 / rate)
    gain = [10 * np.log10(spectra[1][band].sum() / spectra[0][band].sum()) for band in (f < 300, f > 5000)]
    assert abs(gain[0]) < 0.5 and abs(gain[1] - 6) < 0.5
    gain = synth.compressor_gain(noise * np.linspace(0.1, 1, noise.shape[1]), rate, -6, 4, 0.01, 0.1)
    assert gain[-100:].mean() < 0.7 < gain[:100].mean()
