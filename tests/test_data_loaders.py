"""Tests for Track and the real-data loaders (folders of stems, MUSDB18-HQ, musdb, LibriMix)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tpsep.data import (ChunkDataset, SpectrogramPatchDataset, TrackDataset, describe, load_dataset,
                        load_librimix, load_stem_folder, memory_track)

REALDATA = Path(__file__).resolve().parents[1].parent / "shared" / "realdata"
HQ = REALDATA / "musdb18hq-sample"
STEMS = REALDATA / "musdb18-sample"
SOURCES = ("drums", "bass", "other", "vocals")


def write(path, audio, rate=8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio).T, rate, subtype="PCM_16")


def make_track(folder, rng, seconds=1.0, rate=8000, channels=2, stems=SOURCES, mixture=True):
    n = int(seconds * rate)
    audio = {s: (0.2 * rng.standard_normal((channels, n))).clip(-0.24, 0.24) for s in stems}
    for s, a in audio.items():
        write(folder / f"{s}.wav", a, rate)
    if mixture:
        write(folder / "mixture.wav", sum(audio.values()), rate)
    return audio


@pytest.fixture
def stem_root(tmp_path):
    rng = np.random.default_rng(0)
    for split, names in (("train", ["a", "b", "c"]), ("test", ["d"])):
        for name in names:
            make_track(tmp_path / split / name, rng)
    return tmp_path


def test_stem_folder_loads_tracks_per_split(stem_root):
    train = load_stem_folder(stem_root, "train")
    test = load_stem_folder(stem_root, "test")
    assert [t.name for t in train] == ["a", "b", "c"] and [t.name for t in test] == ["d"]
    track = train[0]
    assert track.source_names == SOURCES and track.rate == 8000 and track.channels == 2
    assert track.mixture.shape == (2, 8000) and track.mixture.dtype == np.float32
    assert all(track.sources[s].shape == track.mixture.shape for s in SOURCES)
    assert track.meta["split"] == "train"
    # the mixture file is the sum of the stems up to 16-bit rounding
    np.testing.assert_allclose(track.mixture, sum(track.sources.values()), atol=3 / 32768)
    accompaniment = track.stem("accompaniment")
    np.testing.assert_allclose(accompaniment, track.sources["drums"] + track.sources["bass"] + track.sources["other"],
                               atol=1e-6)
    with pytest.raises(KeyError, match="no stem 'piano'"):
        track.stem("piano")


def test_flat_folder_without_mixture_split_by_seed(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(10):
        make_track(tmp_path / f"song{i}", rng, stems=("voice", "guitar"), mixture=False, channels=1)
    everything = load_dataset(str(tmp_path), split="all")
    assert len(everything) == 10 and everything[0].source_names == ("guitar", "voice")
    np.testing.assert_array_equal(everything[0].mixture, everything[0].sources["guitar"] + everything[0].sources["voice"])
    splits = {s: {t.name for t in load_dataset(str(tmp_path), split=s)} for s in ("train", "valid", "test")}
    assert len(splits["train"]) == 8 and len(splits["valid"]) == 1 and len(splits["test"]) == 1
    assert set.union(*splits.values()) == {t.name for t in everything}


def test_tracks_pickle_for_dataloader_workers(stem_root):
    import pickle

    track = load_stem_folder(stem_root, "test")[0]
    copy = pickle.loads(pickle.dumps(track))
    np.testing.assert_array_equal(copy.read(10, 20)[0], track.read(10, 20)[0])


def test_read_part_of_a_track(stem_root):
    track = load_stem_folder(stem_root, "test")[0]
    mixture, sources = track.read(100, 50)
    assert mixture.shape == (2, 50)
    np.testing.assert_array_equal(mixture, track.mixture[:, 100:150])
    np.testing.assert_array_equal(sources["vocals"], track.sources["vocals"][:, 100:150])


def test_missing_root_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset root not found"):
        load_dataset(str(tmp_path / "nowhere"), split="train")
    with pytest.raises(ValueError, match="unknown dataset 'musik'"):
        load_dataset("musik")
    with pytest.raises(ValueError, match="unknown split"):
        load_dataset(str(tmp_path), split="training")


def test_missing_stem_names_the_folder(stem_root):
    (stem_root / "train" / "b" / "bass.wav").unlink()
    with pytest.raises(ValueError, match=r"train/b is missing stem\(s\) \['bass'\]"):
        load_stem_folder(stem_root, "train")


def test_stems_of_different_lengths_or_rates(stem_root):
    rng = np.random.default_rng(2)
    write(stem_root / "train" / "a" / "vocals.wav", rng.standard_normal((2, 7000)) * 0.1)
    with pytest.raises(ValueError, match=r"vocals.wav has length in samples 7000"):
        load_stem_folder(stem_root, "train")
    write(stem_root / "train" / "a" / "vocals.wav", rng.standard_normal((2, 8000)) * 0.1, rate=16000)
    with pytest.raises(ValueError, match=r"vocals.wav has sample rate 16000"):
        load_stem_folder(stem_root, "train")


def test_silent_stem_and_non_audio_file(stem_root):
    write(stem_root / "train" / "c" / "other.wav", np.zeros((2, 8000)))
    track = load_stem_folder(stem_root, "train")[2]
    with pytest.raises(ValueError, match=r"other.wav is completely silent"):
        track.mixture
    assert np.any(load_stem_folder(stem_root, "train", allow_silent=True)[2].mixture)
    (stem_root / "train" / "b" / "drums.wav").write_text("this is not audio")
    with pytest.raises(ValueError, match=r"drums.wav is not a readable audio file"):
        load_stem_folder(stem_root, "train")


def test_librimix_layout_and_detection(tmp_path):
    rng = np.random.default_rng(3)
    base = tmp_path / "Libri2Mix" / "wav8k" / "min"
    for split in ("train-100", "dev", "test"):
        for i in range(2):
            s1, s2, noise = (0.1 * rng.standard_normal((1, 4000)) for _ in range(3))
            for folder, audio in (("s1", s1), ("s2", s2), ("noise", noise), ("mix_clean", s1 + s2),
                                  ("mix_both", s1 + s2 + noise)):
                write(base / split / folder / f"{i}_x.wav", audio)
    test = load_dataset(str(tmp_path / "Libri2Mix"), split="test")
    assert len(test) == 2 and test[0].source_names == ("s1", "s2") and test[0].rate == 8000
    np.testing.assert_allclose(test[0].mixture, test[0].sources["s1"] + test[0].sources["s2"], atol=2 / 32768)
    assert len(load_dataset(str(tmp_path / "Libri2Mix"), split="valid")) == 2
    noisy = load_librimix(tmp_path / "Libri2Mix", "train", noisy=True)
    assert noisy[0].source_names == ("s1", "s2", "noise")
    np.testing.assert_allclose(noisy[0].mixture, sum(noisy[0].sources.values()), atol=3 / 32768)
    (base / "test" / "s2" / "1_x.wav").unlink()
    with pytest.raises(ValueError, match=r"s2/1_x.wav is missing"):
        load_librimix(tmp_path / "Libri2Mix", "test")


def test_describe_table(stem_root):
    table = describe(load_stem_folder(stem_root, "train"))
    assert list(table.columns[:4]) == ["name", "split", "duration", "rate"]
    assert len(table) == 3 and table["duration"].tolist() == [1.0, 1.0, 1.0]


def memory_tracks(n=3, rate=8000, seconds=3.0, seed=0):
    rng = np.random.default_rng(seed)
    tracks = []
    for i in range(n):
        sources = {s: rng.standard_normal((1, int(seconds * rate))).astype(np.float32) * 0.1 for s in SOURCES}
        tracks.append(memory_track(f"t{i}", rate, sum(sources.values()), sources, {"split": "train"}))
    return tracks


def test_chunk_dataset_shapes_and_seeding():
    tracks = memory_tracks()
    data = ChunkDataset(tracks, seconds=0.5, seed=1)
    mixture, sources = data[0]
    assert mixture.shape == (1, 4000) and sources.shape == (4, 1, 4000)
    torch.testing.assert_close(mixture, sources.sum(0), atol=1e-5, rtol=0)
    again = ChunkDataset(tracks, seconds=0.5, seed=1)
    torch.testing.assert_close(again[5][0], data[5][0])
    assert not torch.equal(data[5][0], data[6][0])
    data.set_epoch(1)
    assert not torch.equal(data[5][0], again[5][0])
    augmented = ChunkDataset(tracks, seconds=0.5, random_gains=(-6, 6), remix=True, seed=1)
    mixture, sources = augmented[2]
    torch.testing.assert_close(mixture, sources.sum(0))
    resampled = ChunkDataset(tracks, seconds=0.25, rate=16000)
    assert resampled[0][0].shape == (1, 4000)
    batch = next(iter(torch.utils.data.DataLoader(data, batch_size=2)))
    assert batch[0].shape == (2, 1, 4000) and batch[1].shape == (2, 4, 1, 4000)
    with pytest.raises(ValueError, match="no source"):
        ChunkDataset(tracks, 0.5, sources=("piano",))


def test_spectrogram_patches_for_the_unet():
    tracks = memory_tracks(n=2, rate=16000, seconds=14.0)
    data = SpectrogramPatchDataset(tracks, target="vocals", seed=0)
    mixture_mag, target_mag = data[0]
    assert mixture_mag.shape == (512, 128) and target_mag.shape == (512, 128)
    assert mixture_mag.dtype == torch.float32 and (mixture_mag >= 0).all()
    torch.testing.assert_close(SpectrogramPatchDataset(tracks, seed=0)[1][0], data[1][0])
    ordered = SpectrogramPatchDataset(tracks, target="accompaniment", random=False)
    assert len(ordered) == 2  # 14 s at 8192 Hz / hop 768 = 150 frames: one whole patch per track


def test_track_dataset():
    tracks = memory_tracks(n=2)
    data = TrackDataset(tracks)
    mixture, sources = data[1]
    assert len(data) == 2 and data.names == ["t0", "t1"]
    assert mixture.shape == (1, 24000) and sources.shape == (4, 1, 24000)


@pytest.mark.skipif(not HQ.is_dir(), reason="shared real-data sample absent")
def test_musdb18hq_sample():
    tracks = load_dataset(str(HQ), split="train")
    assert len(tracks) == 1
    track = tracks[0]
    assert track.rate == 44100 and track.channels == 2 and track.frames == 300032
    assert track.source_names == SOURCES
    stems = [track.mixture] + [track.sources[s] for s in SOURCES]
    assert len(stems) == 5 and all(s.shape == (2, 300032) for s in stems)
    error = np.linalg.norm(track.mixture - sum(track.sources.values())) / np.linalg.norm(track.mixture)
    assert error < 0.05  # AAC-decoded stems sum to the mixture only approximately
    assert load_dataset(str(HQ), split="test") == []


@pytest.mark.skipif(not STEMS.is_dir() or shutil.which("ffmpeg") is None,
                    reason="needs the shared real-data sample and ffmpeg")
def test_musdb_stem_file_agrees_with_hq():
    stem_tracks = load_dataset(str(STEMS), split="train")
    assert [t.name for t in stem_tracks] == ["Music Delta - 80s Rock"]
    stem, hq = stem_tracks[0], load_dataset(str(HQ), split="train")[0]
    assert stem.rate == 44100 and stem.source_names == SOURCES
    n = min(stem.mixture.shape[1], hq.mixture.shape[1])
    assert abs(stem.mixture.shape[1] - hq.mixture.shape[1]) < 2048
    for name in ("mixture",) + SOURCES:
        a, b = stem.stem(name)[:, :n], hq.stem(name)[:, :n]
        assert np.linalg.norm(a - b) / np.linalg.norm(b) < 0.03, name


def test_musdb_without_ffmpeg_names_ffmpeg(tmp_path, monkeypatch):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "x.stem.mp4").write_bytes(b"")
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="ffmpeg"):
        load_dataset(str(tmp_path), split="train")
