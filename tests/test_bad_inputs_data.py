"""A catalogue of bad inputs to the data loaders: each one is a clear error that names the file.

"Bad input gets a clear error and loses nothing": a folder of stems, a LibriMix
folder, a WAV file or a ``tpsep data info`` call that is wrong in some way must
stop with an error that says which file (or folder, or name) is wrong, what was
expected and what arrived. It must never load a track without one of its stems,
load a third of a truncated file, or report "0 tracks" and exit 0.

Every case builds a tiny dataset of WAV files in ``tmp_path`` (a few thousand
samples at 8 kHz), then calls either the Python API (``load_dataset``,
``load_stem_folder``, ``load_librimix``, ``tpsep.audio.load``) or the
``tpsep data info`` command in-process, and expects an exception whose message
holds a given fragment (a regular expression).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tpsep import audio
from tpsep.data import cache, load_dataset, load_librimix, load_stem_folder
from tpsep.data.commands import add_data_command

SOURCES = ("drums", "bass", "other", "vocals")
RATE = 8000
FRAMES = 8000  # one second at 8 kHz
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------------
# tiny fixtures

def write(path: Path, frames: int = FRAMES, rate: int = RATE, channels: int = 2, seed: int = 0,
          subtype: str = "PCM_16") -> Path:
    """A WAV (or FLAC, by its suffix) of quiet noise, ``(frames, channels)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = 0.1 * np.random.default_rng(seed).standard_normal((frames, channels))
    sf.write(str(path), noise.clip(-0.3, 0.3), rate, subtype=subtype)
    return path


def make_track(folder: Path, stems=SOURCES, mixture: bool = True, **options) -> Path:
    """``folder/<stem>.wav`` for every stem (plus ``mixture.wav``)."""
    for i, stem in enumerate(stems):
        write(folder / f"{stem}.wav", seed=i, **options)
    if mixture:
        write(folder / "mixture.wav", seed=99, **options)
    return folder


def make_stem_root(root: Path, names=("a", "b", "c"), split: str | None = None) -> Path:
    """A folder of complete tracks, flat (``root/<track>``) or under ``root/<split>/<track>``."""
    for name in names:
        make_track(root / split / name if split else root / name)
    return root


def truncate(path: Path, keep: float = 1 / 3) -> Path:
    """Cut a file to ``keep`` of its bytes, as an interrupted copy or download does."""
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    return path


def make_librimix(root: Path, splits=("train-100", "dev", "test"), n: int = 2) -> Path:
    """``root/wav8k/min/<split>/{mix_clean,s1,s2}/<i>_x.wav``, mono."""
    for split in splits:
        for i in range(n):
            for folder in ("s1", "s2", "mix_clean"):
                write(root / "wav8k" / "min" / split / folder / f"{i}_x.wav", frames=4000, channels=1, seed=i)
    return root


def read_everything(tracks) -> list:
    """Read every stem of every track (the loaders read lazily: some errors only show on reading)."""
    for track in tracks:
        track.load()
        assert track.mixture.shape[1] == track.frames
    return tracks


def data_info(*arguments: str):
    """``tpsep data info ARGUMENTS`` in-process: the parser that ``tpsep.cli`` builds for ``data``."""
    parser = argparse.ArgumentParser(prog="tpsep")
    add_data_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "info", *arguments, "--quiet"])
    status = args.func(args)
    # a command may also report failure by its exit status; these cases expect an error message
    assert status == 0, f"tpsep data info exited with {status}"
    return status


# ---------------------------------------------------------------------------
# the catalogue: (scenario, expected exception, message fragment)

def first_track_lacks_vocals(tmp_path, cli=False):
    root = make_stem_root(tmp_path / "stems")
    (root / "a" / "vocals.wav").unlink()
    if cli:
        return data_info(str(root))
    return read_everything(load_dataset(str(root), split="all"))


def last_track_lacks_vocals(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    (root / "c" / "vocals.wav").unlink()
    return read_everything(load_dataset(str(root), split="all"))


def train_split_lacks_a_stem_the_test_split_has(tmp_path):
    root = tmp_path / "hq"
    for name in ("a", "b"):
        make_track(root / "train" / name, stems=("drums", "bass", "other"))
    make_track(root / "test" / "c")
    return read_everything(load_stem_folder(root, "train"))


def one_track_has_an_extra_stem(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    write(root / "b" / "piano.wav")
    return read_everything(load_stem_folder(root, "all"))


def two_files_for_one_stem(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    write(root / "b" / "vocals.flac")
    return read_everything(load_stem_folder(root, "all"))


def track_outside_the_split_folders(tmp_path):
    root = make_stem_root(tmp_path / "hq", split="train")
    make_stem_root(root, names=("lost",), split="test")
    make_track(root / "forgotten")  # a track folder beside train/ and test/
    return data_info(str(root))


def stems_of_different_lengths(tmp_path, cli=False):
    root = make_stem_root(tmp_path / "stems")
    write(root / "b" / "vocals.wav", frames=7000)
    if cli:
        return data_info(str(root))
    return read_everything(load_stem_folder(root, "all"))


def stems_of_different_rates(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    write(root / "b" / "bass.wav", rate=16000)
    return data_info(str(root))


def stems_of_different_channels(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    write(root / "c" / "other.wav", channels=1)
    return data_info(str(root))


def stem_that_is_not_audio(tmp_path, cli=False):
    root = make_stem_root(tmp_path / "stems")
    (root / "b" / "drums.wav").write_text("this is not audio")
    if cli:
        return data_info(str(root))
    return read_everything(load_stem_folder(root, "all"))


def missing_stem_cli(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    (root / "c" / "bass.wav").unlink()
    return data_info(str(root))


def empty_stem_cli(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    for stem in SOURCES + ("mixture",):  # every stem empty: the lengths agree, the track holds nothing
        write(root / "b" / f"{stem}.wav", frames=0)
    return data_info(str(root))


def track_folder_without_stems_cli(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    (root / "d").mkdir()
    (root / "d" / "README.txt").write_text("stems to come")
    return data_info(str(root))


def truncated_wav_audio_load(tmp_path, subtype="PCM_16"):
    path = truncate(write(tmp_path / "song.wav", subtype=subtype))
    return audio.load(path)


def truncated_float_wav_audio_load(tmp_path):
    return truncated_wav_audio_load(tmp_path, subtype="FLOAT")


def truncated_flac_audio_load(tmp_path):
    path = truncate(write(tmp_path / "song.flac"))
    return audio.load(path)


def truncated_aiff_audio_load(tmp_path):
    path = truncate(write(tmp_path / "song.aiff"))
    return audio.load(path)


def stem_truncated_after_listing(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    track = load_stem_folder(root, "all")[1]
    truncate(root / "b" / "bass.wav")  # the copy still running while the notebook reads
    return track.read(0, FRAMES)


def truncated_stem_in_a_track(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    truncate(root / "b" / "vocals.wav")
    return read_everything(load_stem_folder(root, "all"))


def every_stem_of_a_track_truncated(tmp_path, cli=False):
    root = make_stem_root(tmp_path / "stems")
    for path in (root / "b").iterdir():  # all cut alike: their lengths agree, each holds a third
        truncate(path)
    if cli:
        return data_info(str(root))
    return read_everything(load_stem_folder(root, "all"))


def truncated_librimix_mixture(tmp_path):
    root = make_librimix(tmp_path / "Libri2Mix")
    for folder in ("s1", "s2", "mix_clean"):
        truncate(root / "wav8k" / "min" / "test" / folder / "1_x.wav")
    return read_everything(load_librimix(root, "test"))


def missing_folder(tmp_path, cli=False):
    if cli:
        return data_info(str(tmp_path / "nowhere"))
    return load_dataset(str(tmp_path / "nowhere"), split="train")


def file_instead_of_folder(tmp_path, cli=False):
    path = write(tmp_path / "song.wav")
    if cli:
        return data_info(str(path))
    return load_dataset(str(path), split="train")


def empty_folder(tmp_path, cli=False):
    (tmp_path / "empty").mkdir()
    if cli:
        return data_info(str(tmp_path / "empty"))
    return load_dataset(str(tmp_path / "empty"), split="all")


def empty_split_folders(tmp_path):
    for split in ("train", "test"):
        (tmp_path / "hq" / split).mkdir(parents=True)
    return load_stem_folder(tmp_path / "hq", "train")


def folder_of_wavs_without_track_folders(tmp_path):
    for stem in SOURCES:
        write(tmp_path / "loose" / f"{stem}.wav")
    return data_info(str(tmp_path / "loose"))


def unknown_dataset_name(tmp_path, cli=False):
    if cli:
        return data_info("musik")
    return load_dataset("musik")


def unknown_dataset_kind(tmp_path):
    return load_dataset(str(make_stem_root(tmp_path / "stems")), kind="musdb19")


def bad_split_name(tmp_path):
    return load_dataset(str(make_stem_root(tmp_path / "stems")), split="training")


def bad_split_name_stem_folder(tmp_path):
    return load_stem_folder(make_stem_root(tmp_path / "stems"), "Test")


def bad_split_name_librimix(tmp_path):
    return load_librimix(make_librimix(tmp_path / "Libri2Mix"), "dev")


def librimix_source_file_missing(tmp_path):
    root = make_librimix(tmp_path / "Libri2Mix")
    (root / "wav8k" / "min" / "test" / "s2" / "1_x.wav").unlink()
    return load_librimix(root, "test")


def librimix_file_only_in_s2(tmp_path):
    root = make_librimix(tmp_path / "Libri2Mix")
    write(root / "wav8k" / "min" / "test" / "s2" / "2_x.wav", frames=4000, channels=1)
    return read_everything(load_librimix(root, "test"))


def librimix_mixture_missing_cli(tmp_path):
    root = make_librimix(tmp_path / "Libri2Mix")
    (root / "wav8k" / "min" / "dev" / "mix_clean" / "0_x.wav").unlink()
    return data_info(str(root))


def librimix_empty_source_folders(tmp_path):
    root = make_librimix(tmp_path / "Libri2Mix", splits=("train-100", "test"))
    for folder in ("s1", "s2", "mix_clean"):
        for path in (root / "wav8k" / "min" / "test" / folder).iterdir():
            path.unlink()
    return load_librimix(root, "test")


def set_without_value_cli(tmp_path):
    return data_info("music", "--set", "n_chorales")


def set_unknown_option_cli(tmp_path):
    return data_info("music", "--set", "n_chorale=10")


def render_options_for_a_real_dataset_cli(tmp_path):
    return data_info(str(make_stem_root(tmp_path / "stems")), "--rate", "16000")


def json_into_a_folder_cli(tmp_path):
    return data_info(str(make_stem_root(tmp_path / "stems")), "--json", str(tmp_path))


def json_into_missing_folder_cli(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    return data_info(str(root), "--json", str(tmp_path / "no" / "such" / "folder" / "data.json"))


CATALOGUE = [
    # the set of stems is the union over tracks
    pytest.param(first_track_lacks_vocals, ValueError, r"stems/a is missing stem\(s\) \['vocals'\]",
                 id="first-track-lacks-vocals"),
    pytest.param(lambda p: first_track_lacks_vocals(p, cli=True), ValueError,
                 r"stems/a is missing stem\(s\) \['vocals'\]", id="first-track-lacks-vocals-cli"),
    pytest.param(last_track_lacks_vocals, ValueError, r"stems/c is missing stem\(s\) \['vocals'\]",
                 id="last-track-lacks-vocals"),
    pytest.param(train_split_lacks_a_stem_the_test_split_has, ValueError,
                 r"train/a is missing stem\(s\) \['vocals'\]", id="train-split-lacks-a-stem-test-has"),
    pytest.param(one_track_has_an_extra_stem, ValueError, r"stems/a is missing stem\(s\) \['piano'\]",
                 id="one-track-has-an-extra-stem"),
    pytest.param(two_files_for_one_stem, ValueError, r"two files for stem 'vocals'.*vocals\.flac.*vocals\.wav",
                 id="two-files-for-one-stem"),
    pytest.param(track_outside_the_split_folders, ValueError, r"forgotten.*outside the split folders",
                 id="track-outside-split-folders-cli"),
    # a track whose stems disagree, or hold something that is not audio
    pytest.param(stems_of_different_lengths, ValueError, r"b/vocals\.wav has length in samples 7000 but .* has 8000",
                 id="stems-different-lengths"),
    pytest.param(lambda p: stems_of_different_lengths(p, cli=True), ValueError,
                 r"b/vocals\.wav has length in samples 7000", id="stems-different-lengths-cli"),
    pytest.param(stems_of_different_rates, ValueError, r"b/bass\.wav has sample rate 16000 but .* has 8000",
                 id="stems-different-rates-cli"),
    pytest.param(stems_of_different_channels, ValueError, r"c/other\.wav has channel count 1 but .* has 2",
                 id="stems-different-channels-cli"),
    pytest.param(stem_that_is_not_audio, ValueError, r"b/drums\.wav is not a readable audio file",
                 id="stem-not-audio"),
    pytest.param(lambda p: stem_that_is_not_audio(p, cli=True), ValueError,
                 r"b/drums\.wav is not a readable audio file", id="stem-not-audio-cli"),
    pytest.param(missing_stem_cli, ValueError, r"stems/c is missing stem\(s\) \['bass'\]", id="missing-stem-cli"),
    pytest.param(empty_stem_cli, ValueError, r"b/mixture\.wav holds no samples", id="empty-stems-cli"),
    pytest.param(track_folder_without_stems_cli, ValueError, r"stems/d holds no audio stems",
                 id="track-folder-without-stems-cli"),
    # a file shorter than its header promises
    pytest.param(truncated_wav_audio_load, ValueError,
                 r"song\.wav is truncated: its header promises 8000 frames but the file holds only 2659",
                 id="truncated-wav-audio-load"),
    pytest.param(truncated_float_wav_audio_load, ValueError,
                 r"song\.wav is truncated: its header promises 8000 frames but the file holds only 2659",
                 id="truncated-float-wav-audio-load"),
    pytest.param(truncated_flac_audio_load, ValueError, r"song\.flac: its header promises 8000 frames but",
                 id="truncated-flac-audio-load"),
    pytest.param(truncated_aiff_audio_load, ValueError,
                 r"song\.aiff is truncated: its header promises 8000 frames but the file holds only 2657",
                 id="truncated-aiff-audio-load"),
    pytest.param(stem_truncated_after_listing, ValueError,
                 r"b/bass\.wav is truncated: its header promises 8000 frames but the file holds only 2659",
                 id="stem-truncated-after-listing"),
    pytest.param(truncated_stem_in_a_track, ValueError, r"b/vocals\.wav is truncated: its header promises 8000",
                 id="truncated-stem-in-a-track"),
    pytest.param(every_stem_of_a_track_truncated, ValueError, r"b/\w+\.wav is truncated: its header promises 8000",
                 id="every-stem-of-a-track-truncated"),
    pytest.param(lambda p: every_stem_of_a_track_truncated(p, cli=True), ValueError,
                 r"b/\w+\.wav is truncated: its header promises 8000", id="every-stem-of-a-track-truncated-cli"),
    pytest.param(truncated_librimix_mixture, ValueError, r"1_x\.wav is truncated: its header promises 4000",
                 id="truncated-librimix-mixture"),
    # wrong paths, empty folders, unknown names and splits
    pytest.param(missing_folder, FileNotFoundError, r"dataset root not found: .*nowhere", id="missing-folder"),
    pytest.param(lambda p: missing_folder(p, cli=True), FileNotFoundError, r"dataset root not found: .*nowhere",
                 id="missing-folder-cli"),
    pytest.param(file_instead_of_folder, ValueError, r"song\.wav is a file; expected a folder",
                 id="file-instead-of-folder"),
    pytest.param(lambda p: file_instead_of_folder(p, cli=True), ValueError, r"song\.wav is a file; expected a folder",
                 id="file-instead-of-folder-cli"),
    pytest.param(empty_folder, ValueError, r"empty holds no track folders \(it holds no sub-folder\)",
                 id="empty-folder"),
    pytest.param(lambda p: empty_folder(p, cli=True), ValueError, r"empty holds no track folders",
                 id="empty-folder-cli"),
    pytest.param(empty_split_folders, ValueError,
                 r"hq holds no track folders \(its split folders train/, test/ hold none\)", id="empty-split-folders"),
    pytest.param(folder_of_wavs_without_track_folders, ValueError, r"loose holds no track folders.*4 audio files",
                 id="wavs-without-track-folders-cli"),
    pytest.param(unknown_dataset_name, ValueError, r"unknown dataset 'musik'", id="unknown-dataset-name"),
    pytest.param(lambda p: unknown_dataset_name(p, cli=True), ValueError, r"unknown dataset 'musik'",
                 id="unknown-dataset-name-cli"),
    pytest.param(unknown_dataset_kind, ValueError, r"unknown dataset kind 'musdb19'; expected", id="unknown-kind"),
    pytest.param(bad_split_name, ValueError, r"unknown split 'training'; expected", id="bad-split"),
    pytest.param(bad_split_name_stem_folder, ValueError, r"unknown split 'Test'; expected", id="bad-split-stems"),
    pytest.param(bad_split_name_librimix, ValueError, r"unknown split 'dev'; expected .*split 'valid'",
                 id="bad-split-librimix"),
    pytest.param(librimix_source_file_missing, ValueError, r"test/s2/1_x\.wav is missing",
                 id="librimix-source-file-missing"),
    pytest.param(librimix_file_only_in_s2, ValueError, r"test/s1/2_x\.wav is missing", id="librimix-file-only-in-s2"),
    pytest.param(librimix_mixture_missing_cli, ValueError, r"dev/mix_clean/0_x\.wav is missing",
                 id="librimix-mixture-missing-cli"),
    pytest.param(librimix_empty_source_folders, ValueError, r"test/s1 holds no audio files",
                 id="librimix-empty-source-folders"),
    pytest.param(set_without_value_cli, ValueError, r"--set expects KEY=VALUE, got 'n_chorales'",
                 id="set-without-value-cli"),
    pytest.param(set_unknown_option_cli, ValueError,
                 r"--rate/--set \['n_chorale'\]: no such option for \['music'\]; expected one of \[.*'n_chorales'",
                 id="set-unknown-option-cli"),
    pytest.param(render_options_for_a_real_dataset_cli, ValueError,
                 r"--rate/--set \['rate'\]: no such option .*expected an embedded dataset",
                 id="render-options-for-a-real-dataset-cli"),
    pytest.param(json_into_a_folder_cli, ValueError, r"--json .* is a folder; expected the path of a file",
                 id="json-into-a-folder-cli"),
    pytest.param(json_into_missing_folder_cli, FileNotFoundError, r"--json .*data\.json: folder .* does not exist",
                 id="json-into-missing-folder-cli"),
]


@pytest.mark.parametrize("scenario, error, fragment", CATALOGUE)
def test_bad_input_is_a_clear_error(scenario, error, fragment, tmp_path):
    with pytest.raises(error, match=fragment):
        scenario(tmp_path)


# ---------------------------------------------------------------------------
# render folders left half-written by a killed process

KILLED_RENDER = """
import os, signal
from tpsep.data.cache import render_once

def render(folder):
    (folder / "half.flac").write_bytes(b"fLaC")
    os.kill(os.getpid(), signal.SIGKILL)  # killed mid-render: no manifest, no rename

render_once("toy", {"seed": 0}, render)
"""


def finished_render(folder: Path) -> dict:
    (folder / "whole.txt").write_text("done")
    return {"render_seconds": 0.0}


def leftovers(root: Path) -> list:
    return sorted(p.name for p in root.iterdir() if ".partial-" in p.name or ".stale-" in p.name)


def killed_render(cache_dir: Path) -> None:
    """Leave a partial folder the way a killed process does: run a render and SIGKILL it."""
    env = {**os.environ, "TPSEP_CACHE": str(cache_dir), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", KILLED_RENDER], env=env, cwd=REPO, capture_output=True)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()


def stale_folder(cache_dir: Path) -> None:
    """A replaced render moved aside to be deleted, by a process killed before it deleted it."""
    final = cache.dataset_dir("toy", {"seed": 0})
    (final.parent / f".{final.name}.stale-0123abcd").mkdir(parents=True)
    (final.parent / f".{final.name}.stale-0123abcd" / "old.flac").write_bytes(b"fLaC")


def old_partial_folder_of_unknown_owner(cache_dir: Path) -> None:
    """A partial folder named without its owner (older tpsep), untouched for two days."""
    final = cache.dataset_dir("other", {"seed": 1})
    partial = final.parent / f".{final.name}.partial-89abcdef"
    partial.mkdir(parents=True)
    (partial / "half.flac").write_bytes(b"fLaC")
    two_days_ago = time.time() - 2 * 86400
    for path in (partial / "half.flac", partial):
        os.utime(path, (two_days_ago, two_days_ago))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
@pytest.mark.parametrize("leave_behind", [
    pytest.param(killed_render, id="partial-render-of-killed-process"),
    pytest.param(stale_folder, id="stale-folder-left-behind"),
    pytest.param(old_partial_folder_of_unknown_owner, id="old-partial-folder-of-unknown-owner"),
])
def test_partial_renders_are_cleaned_at_next_render(leave_behind, tmp_path, monkeypatch):
    monkeypatch.setenv("TPSEP_CACHE", str(tmp_path))
    leave_behind(tmp_path)
    assert leftovers(tmp_path), "the scenario should leave a partial folder behind"
    final = cache.render_once("toy", {"seed": 0}, finished_render)
    assert leftovers(tmp_path) == []
    assert cache.verify(final) and (final / "whole.txt").read_text() == "done"


# ---------------------------------------------------------------------------
# the good paths the fixes keep

def test_clean_flat_folder_loads_every_track_and_stem(tmp_path):
    root = make_stem_root(tmp_path / "stems", names=("a", "b", "c"))
    tracks = read_everything(load_dataset(str(root), split="all"))
    assert [t.name for t in tracks] == ["a", "b", "c"]
    assert all(t.source_names == SOURCES and t.frames == FRAMES and t.channels == 2 for t in tracks)


def test_clean_split_folder_through_the_command(tmp_path, capsys):
    root = make_stem_root(tmp_path / "hq", names=("a", "b"), split="train")
    make_stem_root(root, names=("c",), split="test")
    assert data_info(str(root)) == 0
    out = capsys.readouterr().out
    assert "train:    2 tracks" in out and "test :    1 tracks" in out
    assert "sources drums, bass, other, vocals" in out and out.splitlines()[-1].startswith("data | ")


def test_a_stem_every_track_has_is_kept(tmp_path):
    root = make_stem_root(tmp_path / "stems")
    for name in ("a", "b", "c"):
        write(root / name / "piano.wav")
    track = read_everything(load_stem_folder(root, "all"))[0]
    assert track.source_names == SOURCES + ("piano",)
    # asking for fewer sources is still allowed: the others are left out on purpose
    assert load_stem_folder(root, "all", sources=("vocals",))[0].source_names == ("vocals",)


def test_split_folder_without_a_valid_split_gives_no_tracks_not_an_error(tmp_path):
    root = make_stem_root(tmp_path / "hq", names=("a", "b"), split="train")
    assert load_stem_folder(root, "valid") == [] and len(load_stem_folder(root, "train")) == 2


def test_clean_librimix_loads_every_mixture(tmp_path, capsys):
    root = make_librimix(tmp_path / "Libri2Mix")
    tracks = read_everything(load_librimix(root, "all"))
    assert len(tracks) == 6 and {t.source_names for t in tracks} == {("s1", "s2")}
    assert data_info(str(root)) == 0
    assert "Libri2Mix: 6 tracks" in capsys.readouterr().out.splitlines()[-1]


def test_wav_with_an_unknown_data_size_still_loads(tmp_path):
    """Streaming writers (ffmpeg to a pipe, live recorders) leave the data size as 0 or 0xFFFFFFFF:
    not a promise, so not a truncation."""
    path = write(tmp_path / "streamed.wav", frames=1000, channels=1)
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    for unknown in (b"\xff\xff\xff\xff", b"\x00\x00\x00\x00"):
        data[at + 4:at + 8] = unknown
        path.write_bytes(bytes(data))
        audio_data, rate = audio.load(path)
        assert rate == RATE and audio_data.shape[0] == 1


def test_partial_folder_of_a_live_render_is_kept(tmp_path, monkeypatch):
    """Another process rendering right now must not lose its work."""
    monkeypatch.setenv("TPSEP_CACHE", str(tmp_path))
    live = cache.partial_folder(cache.dataset_dir("other", {"seed": 2}))  # named after this (living) process
    live.mkdir(parents=True)
    cache.render_once("toy", {"seed": 0}, finished_render)
    assert live.is_dir()
