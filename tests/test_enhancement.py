"""Speech enhancement as a task of the speech models: data, training, evaluation (issue 14).

The enhancement set is ``load_dataset("speech", task="enhance")``: the speaker s1 of
each clean mixture alone in noise, sources ("speech", "noise"). Renders are small
(a few mixtures per split) and go to a temporary cache.
"""

import hashlib
import json

import librosa
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr
import torch

from tpsep import evaluation, metrics
from tpsep.data import dataset_folder, dataset_with_options, librispeech, load_dataset, load_librimix
from tpsep.data import split_dataset_options
from tpsep.losses import pit_si_snr_loss, si_snr

SMALL = {"n_train": 4, "n_valid": 3, "n_test": 6}
# the same small set, named the way a command line or a checkpoint gives it
SMALL_SPEECH = dataset_with_options("speech", **SMALL)
TINY = {"n_train": 3, "n_valid": 3, "n_test": 3, "progress": False}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A temporary cache holding the small enhancement and clean sets (rendered once for the module)."""
    root = tmp_path_factory.mktemp("enhancement-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TPSEP_CACHE", str(root))
        for task in ("enhance", "separate"):
            for split in ("train", "valid", "test"):
                load_dataset("speech", split=split, task=task, progress=False, **SMALL)
    return root


@pytest.fixture
def in_cache(cache, monkeypatch):
    monkeypatch.setenv("TPSEP_CACHE", str(cache))
    return cache


def sha1_of_samples(folder) -> str:
    """A hash of the 16-bit samples of every file of a rendered set (not of the FLAC bytes, which
    depend on the encoder's version)."""
    manifest = json.loads((folder / "manifest.json").read_text())
    digest = hashlib.sha1()
    for rel in sorted(manifest["files"]):
        if rel.endswith(".flac"):
            digest.update(rel.encode())
            digest.update(sf.read(str(folder / rel), dtype="int16")[0].tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------- data

def test_enhancement_mixture_is_the_clean_s1_plus_noise_at_its_snr(in_cache):
    enhance = load_dataset("speech", split="test", task="enhance", **SMALL)
    clean = load_dataset("speech", split="test", **SMALL)
    low, high = librispeech.ENHANCE_SNR_DB
    assert (low, high) == (-5, 10)
    for noisy, pair in zip(enhance, clean):
        assert noisy.source_names == ("speech", "noise") and noisy.meta["task"] == "enhance"
        speech, noise = noisy.sources["speech"], noisy.sources["noise"]
        np.testing.assert_array_equal(noisy.mixture, speech + noise)
        measured = 10 * np.log10(np.sum(speech.astype(np.float64) ** 2) / np.sum(noise.astype(np.float64) ** 2))
        assert noisy.meta["snr_db"] == pytest.approx(measured, abs=2e-3)
        assert low - 0.01 <= noisy.meta["snr_db"] <= high + 0.01
        # the noisy input scores about its SNR against the voice: the noise is the only error
        input_score = float(metrics.si_sdr(torch.from_numpy(noisy.mixture), torch.from_numpy(speech)).mean())
        assert abs(input_score - noisy.meta["snr_db"]) < 1.0
        # the voice is the clean mixture's s1: same speaker, utterance, cut and length, another level
        assert noisy.name == pair.name and noisy.frames == pair.frames
        for key in ("speakers", "sexes", "utterances", "starts"):
            assert noisy.meta[key] == pair.meta[key][:1], key
        assert "pair" not in noisy.meta and "relative_level_db" not in noisy.meta
        assert np.corrcoef(speech[0], pair.sources["s1"][0])[0, 1] > 0.9999


def test_enhancement_snrs_are_spread_over_the_stated_range():
    speakers = librispeech.corpus_speakers()
    ids = librispeech.speaker_splits(speakers)["test"]
    snrs = np.array([p["enhance_snr_db"] for p in librispeech.plan_split("test", speakers, ids, 90, seed=0)])
    assert snrs.min() >= -5 and snrs.max() <= 10
    assert snrs.min() < -3 and snrs.max() > 8 and 1 < snrs.mean() < 4   # uniform: mean 2.5 dB
    # each mixture's SNR is its own: more test mixtures leave the first ones as they were
    fewer = librispeech.plan_split("test", speakers, ids, 9, seed=0)
    assert [p["enhance_snr_db"] for p in fewer] == list(snrs[:9])


def test_the_separation_sets_are_unchanged(tmp_path, monkeypatch):
    # the separation sets keep their cache key: no re-render for anyone who has them
    clean, noisy, enhance = (librispeech.librimix_params(task=t) for t in ("separate", "separate_noisy", "enhance"))
    assert clean == librispeech.librimix_params() and "task" not in clean and clean["noisy"] is False
    assert noisy == librispeech.librimix_params(noisy=True) == librispeech.librimix_params(task="sep_noisy")
    assert enhance["task"] == "enhance" and "noisy" not in enhance
    assert librispeech.task_of(clean) == "separate" and librispeech.task_of(enhance) == "enhance"
    # ...and the same samples: hashes of the tiny sets rendered before the enhancement task existed
    if (sf.__libsndfile_version__, soxr.__version__, librosa.__version__, librispeech.corpus_fingerprint()) != \
            ("1.2.2", "1.1.0", "0.11.0", "bd56c6c22f7d"):
        pytest.skip("the recorded hashes are those of libsndfile 1.2.2, soxr 1.1.0, librosa 0.11.0 and this corpus")
    monkeypatch.setenv("TPSEP_CACHE", str(tmp_path))
    assert sha1_of_samples(dataset_folder("speech", **TINY)) == "ea280fdd4901d9220115812a1b2218a4442abcb0"
    assert sha1_of_samples(dataset_folder("speech", noisy=True, **TINY)) == "9f231859907a57f0dc0455f1607c845fef588519"


def test_task_options_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'denoise'.*'enhance'.*enh_single"):
        load_dataset("speech", task="denoise", progress=False)
    with pytest.raises(ValueError, match="noisy=True asks for the noisy separation task"):
        librispeech.librimix_params(noisy=True, task="enhance")
    assert librispeech.librimix_params(task="enh_single") == librispeech.librimix_params(task="enhance")
    # a folder of music stems has no task to choose
    rng = np.random.default_rng(0)
    for track in ("a", "b"):
        for stem in ("vocals", "other"):
            write(tmp_path / "stems" / track / f"{stem}.wav", 0.1 * rng.standard_normal(800))
    with pytest.raises(ValueError, match="task= and noisy= choose a task of a LibriMix folder"):
        load_dataset(str(tmp_path / "stems"), split="all", task="enhance")


def test_dataset_options_travel_with_the_name():
    assert SMALL_SPEECH == "speech?n_train=4&n_valid=3&n_test=6"
    assert dataset_with_options(SMALL_SPEECH, task="enhance") == "speech?n_train=4&n_valid=3&n_test=6&task=enhance"
    assert split_dataset_options("speech?task=enhance&n_test=9") == ("speech", {"task": "enhance", "n_test": 9})
    assert split_dataset_options("/data/Libri2Mix") == ("/data/Libri2Mix", {})
    assert dataset_with_options("speech") == "speech"
    with pytest.raises(ValueError, match=r"option\(s\) \['task'\] given twice"):
        load_dataset("speech?task=enhance", task="separate")
    with pytest.raises(ValueError, match="expected NAME\\?key=value"):
        load_dataset("speech?enhance")


def write(path, audio, rate=8000):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio, dtype=np.float32), rate, subtype="PCM_16")


def test_a_real_librimix_folder_for_enhancement(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "Libri2Mix"
    base = root / "wav8k" / "min"
    for split in ("train-100", "dev", "test"):
        for i in range(2):
            speech, noise = 0.2 * rng.standard_normal(4000), 0.1 * rng.standard_normal(4000)
            for folder, audio in (("s1", speech), ("noise", noise), ("mix_single", speech + noise)):
                write(base / split / folder / f"{i}_x.wav", audio)
    tracks = load_dataset(str(root), split="test", task="enhance")
    assert len(tracks) == 2 and tracks[0].source_names == ("speech", "noise") and tracks[0].rate == 8000
    np.testing.assert_allclose(tracks[0].mixture, tracks[0].sources["speech"] + tracks[0].sources["noise"],
                               atol=2 / 32768)
    assert tracks[0].meta["task"] == "enhance"
    assert len(load_librimix(root, "valid", task="enh_single")) == 2     # LibriMix's name for the task
    # without s2/, the folder has no separation task, and says which folder it misses
    with pytest.raises(ValueError, match=r"test has no s2/ folder; the task 'separate' reads .*"
                                         r"mix_single/ is made for task='enhance'"):
        load_librimix(root, "test")
    for path in (base / "test" / "noise").iterdir():
        path.unlink()
    (base / "test" / "noise").rmdir()
    with pytest.raises(ValueError, match=r"test has no noise/ folder; the task 'enhance' reads "
                                         r"\['mix_single/', 's1/', 'noise/'\]"):
        load_librimix(root, "test", task="enhance")
    (base / "test" / "s1").rename(base / "test" / "speech")
    with pytest.raises(ValueError, match=r"no LibriMix/wsj0-2mix folder for split 'test' .*"
                                         r"wav8k/min/test/\{mix_single,s1,noise\}"):
        load_librimix(root, "test", task="enhance")


# ----------------------------------------------------------------------------- training and evaluation

def test_one_output_pit_loss_is_minus_the_si_snr():
    torch.manual_seed(0)
    estimate, reference = torch.randn(3, 1, 1, 800), torch.randn(3, 1, 1, 800)
    expected = -si_snr(estimate, reference).mean()
    assert float(pit_si_snr_loss(estimate, reference)) == pytest.approx(float(expected), abs=1e-5)


@pytest.mark.parametrize("model, options", [("convtasnet", {"N": 16, "B": 8, "H": 16, "Sc": 8, "X": 2, "R": 1}),
                                            ("stft_mask", {"hidden": 8}),
                                            ("gridnet", {"D": 4, "B": 1, "H": 8, "E": 2})])
def test_every_speech_model_learns_to_enhance(in_cache, model, options):
    from tpsep.recipes import MODELS, DataSettings

    entry = MODELS[model]
    separator = entry.separator(entry.config(C=1, **options), verbose=False)
    settings = DataSettings(dataset=SMALL_SPEECH, task="enhance", batch_size=2, seconds=0.25)
    recipe = entry.recipe(separator, settings, 0)
    assert recipe.dataset == f"{SMALL_SPEECH}&task=enhance"   # what the checkpoint records
    mixture, sources = next(iter(recipe.train_loader))
    assert sources.shape[1] == 2   # speech and noise: the noise stays for --remix
    loss = recipe.loss_fn(recipe.model, (mixture, sources))
    expected = -si_snr(recipe.model(mixture), sources[:, :1]).mean()   # against the voice alone
    assert torch.isfinite(loss) and loss.item() == pytest.approx(expected.item(), abs=1e-4)
    loss.backward()


def test_a_model_with_the_wrong_number_of_outputs_is_told_which_option_to_set(in_cache, capsys):
    from tpsep.cli import main

    tiny = ["--option", "N=8", "--option", "B=8", "--option", "H=8", "--option", "Sc=8", "--option", "X=1",
            "--option", "R=1", "--max-steps", "1", "--no-progress"]
    assert main(["train", "convtasnet", "--dataset", SMALL_SPEECH, "--task", "enhance", *tiny]) == 2
    error = capsys.readouterr().err
    assert "C=2 outputs, but the task is to enhance one voice" in error and "set --option C=1" in error
    assert main(["train", "convtasnet", "--dataset", SMALL_SPEECH, "--option", "C=1", *tiny]) == 2
    assert "set --option C=2" in capsys.readouterr().err
    assert main(["train", "unet", "--task", "enhance", "--max-steps", "1"]) == 2
    assert "--task chooses what the speech models learn" in capsys.readouterr().err


def test_train_then_evaluate_an_enhancement_model_by_snr(in_cache, tmp_path, capsys):
    from tpsep.checkpoints import load_checkpoint
    from tpsep.cli import main

    options = ["C=1", "N=16", "B=8", "H=16", "Sc=8", "X=2", "R=1"]
    assert main(["train", "convtasnet", "--dataset", SMALL_SPEECH, "--task", "enhance", "--max-steps", "2",
                 "--batch-size", "2", "--seconds", "0.5", "--out", str(tmp_path), "--no-progress",
                 *sum((["--option", o] for o in options), [])]) == 0
    assert load_checkpoint(str(tmp_path / "last.pt"))["extra"]["dataset"] == f"{SMALL_SPEECH}&task=enhance"
    capsys.readouterr()

    csv = tmp_path / "per_sample.csv"
    # no --dataset: the checkpoint says what it was trained on, and the test split of that is scored
    assert main(["evaluate", str(tmp_path / "last.pt"), "--metric", "si_sdr", "--per-sample", str(csv)]) == 0
    out = capsys.readouterr().out
    table = pd.read_csv(csv, index_col="track")
    assert len(table) == SMALL["n_test"] and "snr_db" in table.columns and "pair" not in table.columns
    # the input is the noisy mixture scored against the voice: about its SNR
    assert (abs(table["input"] - table["snr_db"]) < 1.0).all()
    np.testing.assert_allclose(table["improvement"], table["output"] - table["input"], atol=1e-6)
    assert "'speech?n_train=4&n_valid=3&n_test=6&task=enhance', split 'test': 6 tracks" in out
    assert out.strip().splitlines()[-1].startswith("speech SI-SDR (median over tracks): convtasnet")
    ranges = evaluation.snr_ranges(table["snr_db"])
    for label in ranges.cat.categories:
        assert f"{label} " in out    # one block per SNR range in the printed summary


def test_per_sample_summary_by_snr_range():
    table = pd.DataFrame({"input": [-4.0, -1.0, 1.0, 4.0, 6.0], "output": [5.0, 8.0, 9.0, 12.0, 14.0],
                          "snr_db": [-4.2, -0.5, 0.0, 4.9, 9.99]}, index=list("abcde"))
    table["improvement"] = table["output"] - table["input"]
    summary = evaluation.per_sample_summary(table, by="snr")
    assert list(dict.fromkeys(summary.index.get_level_values("snr"))) == ["-5 to 0 dB", "0 to 5 dB", "5 to 10 dB"]
    assert summary.loc[("0 to 5 dB", "improvement"), "count"] == 2    # 0 dB belongs to "0 to 5"
    assert summary.loc[("0 to 5 dB", "improvement"), "mean"] == pytest.approx(8.0)
    with pytest.raises(ValueError, match="no column 'snr_db' to group by SNR range"):
        evaluation.per_sample_summary(table.drop(columns="snr_db"), by="snr")


def test_enhancement_models_are_scored_on_the_voice_only():
    from tpsep.data import memory_track
    from tpsep.models.convtasnet import ConvTasNet, ConvTasNetConfig

    rng = np.random.default_rng(2)
    speech = np.sin(2 * np.pi * 220 * np.arange(8000) / 8000).astype(np.float32)[None]
    noise = (0.3 * rng.standard_normal((1, 8000))).astype(np.float32)
    track = memory_track("t", 8000, speech + noise, {"speech": speech, "noise": noise}, meta={"snr_db": 7.3})
    model = ConvTasNet(ConvTasNetConfig(C=1, N=8, B=8, H=8, Sc=8, X=1, R=1), verbose=False).eval()
    method = evaluation.track_method(model)
    estimates = method(track)
    assert sorted(estimates) == ["noise", "speech"]
    np.testing.assert_allclose(estimates["speech"] + estimates["noise"], track.mixture, atol=1e-6)
    table = evaluation.per_sample_table(model, [track])
    assert evaluation.default_targets(track.source_names) == ["speech"]
    expected = float(metrics.si_sdr(torch.from_numpy(track.mixture), torch.from_numpy(speech)).mean())
    assert table.loc["t", "input"] == pytest.approx(expected, abs=1e-4)
    pair = memory_track("p", 8000, speech + noise, {"s1": speech, "s2": noise})
    with pytest.raises(ValueError, match="enhances one voice .* score it on an enhancement set"):
        method(pair)
