"""A catalogue of bad inputs to the library and the CLI, each with the error it must get.

Every case names the message fragment it expects, so that it fails if the error goes away,
changes into an obscure one from inside torch or numpy, or turns into a silent wrong result.
The data loaders have their own catalogue (tests/test_bad_inputs_data.py).
"""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import torch

from tpsep import audio, metrics, spectral
from tpsep.checkpoints import load_checkpoint, model_config, save_checkpoint
from tpsep.cli import main
from tpsep.data import ChunkDataset, memory_track
from tpsep.devices import choose_device
from tpsep.models.convtasnet import ConvTasNet, ConvTasNetConfig
from tpsep.models.unet import UNet, UNetConfig, UNetSeparator
from tpsep.recipes import DataSettings
from tpsep.separate import separate, write_estimates
from tpsep.train import TrainConfig, check_config

TINY_UNET = UNetConfig(depth=6, channels=4, max_channels=8)
TINY_TASNET = ConvTasNetConfig(N=16, B=16, H=16, Sc=16, X=2, R=1)
NOISE = (0.1 * np.random.default_rng(0).standard_normal((1, 8192))).astype(np.float32)


def unet():
    torch.manual_seed(0)
    return UNetSeparator(TINY_UNET)


def speech_track():
    rng = np.random.default_rng(1)
    sources = {name: (0.1 * rng.standard_normal((1, 8000))).astype(np.float32) for name in ("s1", "s2")}
    return memory_track("pair", 8000, sources["s1"] + sources["s2"], sources)


# ---- API: (callable, expected exception, message fragment) ----

API_CASES = {
    # audio into a separator: layout, dtype, values, rate
    "separate-samples-channels-layout": (lambda: separate(unet(), np.ones((8192 * 2, 2), np.float32), 8192),
                                         ValueError, "pass mixture.T"),
    "separate-3d-array": (lambda: separate(unet(), np.ones((2, 3, 8192), np.float32), 8192),
                          ValueError, "expected a mixture (channels, samples)"),
    "separate-many-channels": (lambda: separate(unet(), np.ones((16, 8192), np.float32), 8192),
                               ValueError, "more than tpsep separates"),
    "separate-nan": (lambda: separate(unet(), np.full((1, 8192), np.nan, np.float32), 8192), ValueError, "NaN"),
    "separate-inf": (lambda: separate(unet(), np.full((1, 8192), np.inf, np.float32), 8192), ValueError, "Inf"),
    "separate-silence": (lambda: separate(unet(), np.zeros((1, 8192), np.float32), 8192), ValueError, "silent"),
    "separate-text-dtype": (lambda: separate(unet(), np.array([["a", "b"]]), 8192), ValueError, "dtype"),
    "separate-rate-zero": (lambda: separate(unet(), NOISE, 0), ValueError, "rate must be a positive integer"),
    "separate-rate-float": (lambda: separate(unet(), NOISE, 44100.5), ValueError, "rate must be a positive integer"),
    "separate-rate-negative": (lambda: separate(unet(), NOISE, -8000), ValueError, "rate must be a positive integer"),
    # STFT settings and spectrogram shapes
    "stft-n_fft-zero": (lambda: spectral.stft(NOISE, n_fft=0), ValueError, "n_fft must be a positive integer"),
    "stft-n_fft-float": (lambda: spectral.stft(NOISE, n_fft=1024.0), ValueError, "n_fft must be a positive integer"),
    "stft-hop-negative": (lambda: spectral.stft(NOISE, hop=-1), ValueError, "hop must be a positive integer"),
    "stft-hop-longer-than-frame": (lambda: spectral.stft(NOISE, n_fft=256, hop=512), ValueError,
                                   "longer than the frame"),
    "stft-nan": (lambda: spectral.stft(np.full(4096, np.nan, np.float32)), ValueError, "NaN"),
    "stft-inf": (lambda: spectral.stft(np.full(4096, np.inf, np.float32)), ValueError, "NaN or Inf"),
    "stft-integer-pcm": (lambda: spectral.stft(np.ones(4096, np.int16)), TypeError, "floating-point"),
    "stft-too-short": (lambda: spectral.stft(np.ones(100, np.float32)), ValueError, "too short"),
    "istft-512-bins": (lambda: spectral.istft(torch.ones(512, 10, dtype=torch.complex64)), ValueError,
                       "call restore_bins first"),
    "istft-hop-zero": (lambda: spectral.istft(torch.ones(513, 10, dtype=torch.complex64), hop=0), ValueError,
                       "hop must be a positive integer"),
    "crop-bins-twice": (lambda: spectral.crop_bins(torch.ones(512, 10)), ValueError, "never an already-cropped"),
    "reconstruct-mask-misfit": (lambda: spectral.reconstruct(torch.ones(513, 10), torch.ones(513, 10,
                                                             dtype=torch.complex64), 100), ValueError,
                                "does not fit the mixture STFT"),
    # models
    "unet-513-bins": (lambda: UNet(TINY_UNET, verbose=False)(torch.ones(1, 513, 128)), ValueError,
                      "crop the Nyquist bin"),
    "unet-rank": (lambda: UNet(TINY_UNET, verbose=False)(torch.ones(512, 128)), ValueError,
                  "(batch, freq, frames)"),
    "unet-separator-513-bins": (lambda: unet().mask(torch.ones(1, 513, 200)), ValueError, "crop the Nyquist bin"),
    "unet-n_fft-not-halvable": (lambda: UNetSeparator(UNetConfig(n_fft=1000)), ValueError, "not a multiple of"),
    "convtasnet-samples-channels": (lambda: ConvTasNet(TINY_TASNET, verbose=False)(torch.ones(2, 8000, 2)),
                                    ValueError, "transpose"),
    "convtasnet-4d": (lambda: ConvTasNet(TINY_TASNET, verbose=False)(torch.ones(1, 2, 1, 8000)), ValueError,
                      "(batch, channels, samples)"),
    "convtasnet-numpy": (lambda: ConvTasNet(TINY_TASNET, verbose=False)(np.ones((1, 1, 8000), np.float32)),
                         TypeError, "expects a torch tensor"),
    "convtasnet-odd-L": (lambda: ConvTasNet(ConvTasNetConfig(L=7), verbose=False), ValueError, "L must be even"),
    # metrics
    "bss-eval-samples-channels-layout": (lambda: metrics.bss_eval(np.ones((2, 44100, 2)), np.ones((2, 44100, 2)),
                                                                  rate=44100), ValueError, "transpose(0, 2, 1)"),
    "bss-eval-shape-mismatch": (lambda: metrics.bss_eval(np.ones((2, 1, 8000)), np.ones((2, 1, 7000)), rate=8000),
                                ValueError, "same shape"),
    "bss-eval-silent-reference": (lambda: metrics.bss_eval(np.zeros((1, 1, 8000)), np.ones((1, 1, 8000)),
                                                           rate=8000), ValueError, "all zeros"),
    "bss-eval-nan": (lambda: metrics.bss_eval(np.ones((1, 1, 8000)), np.full((1, 1, 8000), np.nan), rate=8000),
                     ValueError, "NaN"),
    "si-sdr-silent-reference": (lambda: metrics.si_sdr(torch.ones(1, 100), torch.zeros(1, 100)), ValueError,
                                "all zeros"),
    "si-sdr-shape-mismatch": (lambda: metrics.si_sdr(torch.ones(1, 100), torch.ones(1, 99)), ValueError, "si_sdr"),
    # rates and resampling
    "resample-rate-zero": (lambda: audio.resample(NOISE, 0, 8000), ValueError, "rate_in must be a positive integer"),
    "resample-bad-method": (lambda: audio.resample(NOISE, 16000, 8000, method="linear"), ValueError,
                            "method must be 'soxr' or 'polyphase'"),
    # training options
    "train-negative-clip": (lambda: check_config(TrainConfig(grad_clip=-1.0)), ValueError,
                            "grad_clip must be a positive number"),
    "train-zero-lr": (lambda: check_config(TrainConfig(lr=0.0)), ValueError, "lr must be a positive number"),
    "train-nan-lr": (lambda: check_config(TrainConfig(lr=float("nan"))), ValueError, "lr must be a positive number"),
    "train-zero-accumulate": (lambda: check_config(TrainConfig(accumulate=0)), ValueError,
                              "accumulate must be a positive number"),
    "train-fractional-steps": (lambda: check_config(TrainConfig(max_steps=2.5)), ValueError, "whole number"),
    "train-bad-schedule": (lambda: check_config(TrainConfig(schedule="linear")), ValueError,
                           "schedule must be one of"),
    "train-bad-precision": (lambda: check_config(TrainConfig(precision="fp16")), ValueError,
                            "precision must be one of"),
    "train-ema-one": (lambda: check_config(TrainConfig(ema=1.0)), ValueError, "ema is a decay"),
    "train-zero-patience": (lambda: check_config(TrainConfig(patience=0)), ValueError, "patience must be >= 1"),
    "train-negative-warmup": (lambda: check_config(TrainConfig(warmup_steps=-5)), ValueError,
                              "warmup_steps must be >= 0"),
    "data-zero-batch": (lambda: DataSettings(batch_size=0), ValueError, "batch_size must be positive"),
    "data-negative-workers": (lambda: DataSettings(num_workers=-1), ValueError, "num_workers must be >= 0"),
    "model-option-unknown-key": (lambda: model_config("convtasnet", {"Q": 3}), ValueError, "unknown config key(s)"),
    "model-unknown": (lambda: model_config("resnet", {}), ValueError, "unknown model 'resnet'"),
    "device-unknown": (lambda: choose_device("tpu"), ValueError, "unknown device"),
    # datasets of chunks
    "chunks-zero-seconds": (lambda: ChunkDataset([speech_track()], seconds=0), ValueError, "empty chunk"),
    "chunks-unknown-source": (lambda: ChunkDataset([speech_track()], 0.5, sources=("vocals",)), ValueError,
                              "has no source"),
    "chunks-no-tracks": (lambda: ChunkDataset([], 0.5), ValueError, "empty list"),
}
if not torch.cuda.is_available():
    API_CASES["device-cuda-without-gpu"] = (lambda: choose_device("cuda"), ValueError, "no CUDA GPU")


@pytest.mark.parametrize("call, error, message", API_CASES.values(), ids=API_CASES.keys())
def test_api_bad_input_gets_a_clear_error(call, error, message):
    with pytest.raises(error) as raised:
        call()
    assert message in str(raised.value)


def test_integer_pcm_is_scaled_not_taken_as_float():
    """int16 PCM once came out of separate with vocals peaking at 25,000."""
    pcm = (NOISE * 20000).astype(np.int16)
    estimates = separate(unet(), pcm, 8192)
    assert max(float(np.abs(e).max()) for e in estimates.values()) < 1.0


# ---- files: checkpoints and outputs ----

def test_checkpoint_files(tmp_path):
    cases = {"missing": (tmp_path / "missing.pt", FileNotFoundError, "no checkpoint at"),
             "folder": (tmp_path, IsADirectoryError, "is a folder"),
             "junk": (tmp_path / "junk.pt", ValueError, "not a readable checkpoint"),
             "truncated": (tmp_path / "cut.pt", ValueError, "not a readable checkpoint"),
             "not-tpsep": (tmp_path / "other.pt", ValueError, "not a tpsep checkpoint")}
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    torch.save({"weights": {}}, tmp_path / "other.pt")
    save_checkpoint(tmp_path / "whole.pt", UNet(TINY_UNET, verbose=False))
    whole = (tmp_path / "whole.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(whole[: len(whole) // 3])
    for name, (path, error, message) in cases.items():
        with pytest.raises(error, match=message):
            load_checkpoint(path)


def test_estimates_are_never_overwritten_silently(tmp_path):
    write_estimates({"vocals": NOISE}, 8192, tmp_path)
    with pytest.raises(FileExistsError, match="refusing to overwrite"):
        write_estimates({"vocals": NOISE}, 8192, tmp_path)
    assert write_estimates({"vocals": NOISE}, 8192, tmp_path, overwrite=True)


# ---- the command line: one line on stderr, exit status 2 ----

@pytest.fixture
def files(tmp_path):
    """A U-Net and a Conv-TasNet checkpoint, a song, and a file that is not audio."""
    save_checkpoint(tmp_path / "unet.pt", UNet(TINY_UNET, verbose=False),
                    extra={"model_name": "unet", "model_config": asdict(TINY_UNET)})
    save_checkpoint(tmp_path / "tasnet.pt", ConvTasNet(TINY_TASNET, verbose=False),
                    extra={"model_name": "convtasnet", "model_config": asdict(TINY_TASNET)})
    save_checkpoint(tmp_path / "alien.pt", torch.nn.Linear(2, 2), extra={"model_name": "resnet"})
    audio.save(tmp_path / "song.wav", np.tile(NOISE, (2, 2)), 8192)
    (tmp_path / "notes.txt").write_text("not audio")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    return tmp_path


CLI_CASES = {
    "train-negative-grad-clip": (["train", "convtasnet", "--grad-clip", "-1"], "grad_clip must be a positive"),
    "train-zero-lr": (["train", "convtasnet", "--lr", "0"], "lr must be a positive number"),
    "train-zero-batch": (["train", "convtasnet", "--batch-size", "0"], "batch_size must be positive"),
    "train-option-without-value": (["train", "convtasnet", "--option", "X"], "expects KEY=VALUE"),
    "train-option-unknown-key": (["train", "unet", "--option", "N=3"], "unknown config key(s) ['N']"),
    "train-option-of-another-model": (["train", "convtasnet", "--option", "depth=3"], "unknown config key"),
    "separate-missing-checkpoint": (["separate", "{d}/none.pt", "{d}/song.wav", "--out", "{d}/o"],
                                    "no checkpoint at"),
    "separate-junk-checkpoint": (["separate", "{d}/junk.pt", "{d}/song.wav", "--out", "{d}/o"],
                                 "not a readable checkpoint"),
    "separate-unknown-model": (["separate", "{d}/alien.pt", "{d}/song.wav", "--out", "{d}/o"],
                               "unknown model 'resnet'"),
    "separate-missing-audio": (["separate", "{d}/unet.pt", "{d}/nothing.wav", "--out", "{d}/o"],
                               "audio file not found"),
    "separate-not-audio": (["separate", "{d}/unet.pt", "{d}/notes.txt", "--out", "{d}/o"], "not an audio file"),
    "separate-refine-on-convtasnet": (["separate", "{d}/tasnet.pt", "{d}/song.wav", "--refine", "--out", "{d}/o"],
                                      "--refine is for mask models"),
    "separate-would-overwrite": (["separate", "{d}/unet.pt", "{d}/song.wav", "--out", "{d}/done"], "--overwrite"),
    "evaluate-junk-checkpoint": (["evaluate", "{d}/junk.pt"], "not a readable checkpoint"),
    "evaluate-missing-checkpoint": (["evaluate", "{d}/none.pt"], "no checkpoint at"),
    "evaluate-unknown-model": (["evaluate", "{d}/alien.pt"], "unknown model 'resnet'"),
}


@pytest.mark.parametrize("argv, message", CLI_CASES.values(), ids=CLI_CASES.keys())
def test_cli_bad_input_is_one_line_and_a_nonzero_exit(files, capsys, argv, message):
    write_estimates({"vocals": NOISE, "accompaniment": NOISE}, 8192, files / "done" / "song")
    status = main([arg.format(d=files) for arg in argv])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_debug_shows_the_traceback(files):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        main(["--debug", "separate", str(files / "none.pt"), str(files / "song.wav")])


def test_grade_csv_has_no_terminal_colours():
    from tpsep.course import strip_colours

    assert strip_colours("\x1b[0;31mValueError\x1b[0m: shape (2, 3)") == "ValueError: shape (2, 3)"
