"""Whole-track separation: patching, stitching, reconstruction, the separate command."""

import json

import numpy as np
import pytest
import torch

from tpsep import spectral
from tpsep.models.unet import UNet, UNetConfig
from tpsep.separate import (full_band_mask, make_patches, predict_mask, reconstruct, separate_track,
                            stitch_patches, wiener_refine)

torch.set_num_threads(1)


class PointwiseMask(torch.nn.Module):
    """A stand-in network whose mask at a bin depends only on that bin: x / (1 + x)."""

    def __init__(self):
        super().__init__()
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        assert x.shape[1:] == (512, 128), x.shape
        return x / (1 + x) + 0 * self.dummy


class ConstantMask(PointwiseMask):
    def __init__(self, value):
        super().__init__()
        self.value = value

    def forward(self, x):
        return torch.full_like(x, self.value)


@pytest.mark.parametrize("frames", [1, 100, 128, 129, 300, 320])
def test_stitching_undoes_patching(frames):
    mag = torch.rand(512, frames)
    patches = make_patches(mag, 128, 64)
    assert patches.shape[1:] == (512, 128)
    assert (patches.shape[0] - 1) * 64 + 128 >= frames
    assert torch.allclose(stitch_patches(patches, 64, frames), mag, atol=1e-6)


def test_patches_overlap_by_half_by_default():
    mag = torch.arange(300.0).expand(4, 300)
    patches = make_patches(mag)
    assert patches.shape == (4, 4, 128)
    assert torch.equal(patches[1, 0, :64], patches[0, 0, 64:])
    assert float(patches[-1, 0, -1]) == 0.0  # zero padding at the end


def test_stitching_cross_fades_different_patches():
    """Where two patches disagree, the seam is a weighted average, inside their range."""
    patches = torch.stack([torch.zeros(2, 128), torch.ones(2, 128)])
    stitched = stitch_patches(patches, 64, 192)
    assert float(stitched[0, 0]) == 0.0 and float(stitched[0, -1]) == 1.0
    seam = stitched[0, 64:128]
    assert torch.all(seam[1:] >= seam[:-1]) and 0 < float(seam[32]) < 1


def test_stitch_refuses_too_many_frames():
    with pytest.raises(ValueError, match="total_frames"):
        stitch_patches(torch.rand(2, 8, 128), 64, 500)


def test_predict_mask_matches_the_pointwise_model_everywhere():
    mag = torch.rand(2, 512, 250) * 3
    mask = predict_mask(PointwiseMask(), mag, batch_size=3)
    assert mask.shape == mag.shape
    assert torch.allclose(mask, mag / (1 + mag), atol=1e-6)


def test_predict_mask_refuses_513_bins():
    with pytest.raises(ValueError, match="512 frequency bins"):
        predict_mask(PointwiseMask(), torch.rand(513, 200))


def test_full_band_mask_repeats_the_top_bin():
    mask = torch.rand(3, 512, 10)
    full = full_band_mask(mask)
    assert full.shape == (3, 513, 10)
    assert torch.equal(full[:, 512], mask[:, 511]) and torch.equal(full[:, :512], mask)


def test_reconstruct_with_ones_gives_the_mixture_and_with_zeros_silence():
    x = torch.randn(2, 8192 * 3)
    X = spectral.stft(x, n_fft=1024, hop=768)
    ones = reconstruct(torch.ones(2, 512, X.shape[-1]), X, length=x.shape[-1])
    assert ones.shape == x.shape
    assert torch.allclose(ones, x, atol=1e-4)
    assert float(reconstruct(torch.zeros(2, 512, X.shape[-1]), X, length=x.shape[-1]).abs().max()) < 1e-6


def test_reconstruct_refuses_a_mask_that_does_not_fit():
    X = spectral.stft(torch.randn(8192), n_fft=1024, hop=768)
    with pytest.raises(ValueError, match="does not fit"):
        reconstruct(torch.ones(513, X.shape[-1]), X, length=8192)


def test_separate_track_at_the_model_rate_is_exact():
    rng = np.random.default_rng(0)
    mixture = (0.1 * rng.standard_normal((2, 8192 * 20))).astype(np.float32)
    estimates = separate_track(ConstantMask(0.25), mixture, 8192)
    assert set(estimates) == {"vocals", "accompaniment"}
    assert estimates["vocals"].shape == mixture.shape and estimates["vocals"].dtype == np.float32
    np.testing.assert_allclose(estimates["vocals"], 0.25 * mixture, atol=1e-4)
    np.testing.assert_allclose(estimates["vocals"] + estimates["accompaniment"], mixture, atol=1e-6)


def test_separate_track_resamples_back_to_the_track_rate():
    t = np.arange(16000 * 5) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    estimates, mask = separate_track(ConstantMask(1.0), tone, 16000, target="drums", return_mask=True)
    assert set(estimates) == {"drums", "rest"}
    assert estimates["drums"].shape == tone.shape
    middle = slice(2000, -2000)  # a 440 Hz tone survives 16 kHz -> 8192 Hz -> 16 kHz
    np.testing.assert_allclose(estimates["drums"][:, middle], tone[:, middle], atol=1e-2)
    assert mask.shape[:2] == (1, 512)


def test_separate_track_with_a_real_unet_and_refinement():
    torch.manual_seed(0)
    model = UNet(UNetConfig(depth=6, channels=4, max_channels=8), verbose=False)
    mixture = np.random.default_rng(1).standard_normal((1, 8192 * 12)).astype(np.float32) * 0.1
    plain = separate_track(model, mixture, 8192)
    refined = separate_track(model, mixture, 8192, refine=True)
    assert not np.allclose(plain["vocals"], refined["vocals"])
    assert np.isfinite(refined["vocals"]).all()


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 8192 * 2), np.float32), "silent"),
    (np.full((1, 8192 * 2), np.nan, np.float32), "NaN"),
    (np.ones(8192 * 2, np.float32), "channels, samples"),
])
def test_separate_track_bad_input_is_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        separate_track(ConstantMask(0.5), bad, 8192)


def test_wiener_refinement_sharpens_the_mask():
    mask = torch.tensor([0.0, 0.2, 0.5, 0.8, 1.0])
    refined = wiener_refine(mask)
    assert torch.allclose(refined, torch.tensor([0.0, 0.04 / 0.68, 0.5, 0.64 / 0.68, 1.0]), atol=1e-6)


def test_separate_command_writes_wavs_and_key_figures(tmp_path, capsys):
    from tpsep import audio
    from tpsep.cli import main

    torch.manual_seed(0)
    config = UNetConfig(depth=6, channels=4, max_channels=8)
    model = UNet(config, verbose=False)
    checkpoint = tmp_path / "unet.pt"
    torch.save({"model": model.state_dict(),
                "extra": {"model_name": "unet", "model_config": vars(config), "target": "vocals"}}, checkpoint)
    song = tmp_path / "song.wav"
    audio.save(song, 0.1 * np.random.default_rng(0).standard_normal((2, 11025 * 4)).astype(np.float32), 11025)
    figures_path = tmp_path / "figures.json"
    main(["separate", str(checkpoint), str(song), "--out", str(tmp_path / "out"), "--json", str(figures_path)])
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line.startswith("separate: files=1 audio_seconds=4.0 target=vocals")
    for name in ("vocals", "accompaniment"):
        written, rate = audio.load(tmp_path / "out" / "song" / f"{name}.wav")
        assert rate == 11025 and written.shape == (2, 11025 * 4)
    figures = json.loads(figures_path.read_text())
    assert figures["files"] == 1 and figures["target"] == "vocals"


def test_separate_command_refuses_another_model(tmp_path):
    from tpsep.separate import load_separator_model

    checkpoint = tmp_path / "other.pt"
    torch.save({"model": {}, "extra": {"model_name": "convtasnet", "model_config": {}}}, checkpoint)
    with pytest.raises(ValueError, match="unet"):
        load_separator_model(str(checkpoint))


def test_evaluate_loader_understands_unet_checkpoints_only(tmp_path):
    import argparse

    from tpsep import evaluation
    from tpsep.data import memory_track
    from tpsep.separate import evaluate_checkpoint_loader

    assert evaluate_checkpoint_loader in evaluation.CHECKPOINT_LOADERS
    other = tmp_path / "other.pt"
    torch.save({"model": {}, "extra": {"model_name": "convtasnet"}}, other)
    assert evaluate_checkpoint_loader(str(other), argparse.Namespace()) is None

    config = UNetConfig(depth=6, channels=4, max_channels=8)
    checkpoint = tmp_path / "unet.pt"
    torch.save({"model": UNet(config, verbose=False).state_dict(),
                "extra": {"model_name": "unet", "model_config": vars(config), "target": "vocals"}}, checkpoint)
    separator = evaluate_checkpoint_loader(str(checkpoint), argparse.Namespace())
    rng = np.random.default_rng(0)
    sources = {name: (0.1 * rng.standard_normal((1, 16000 * 3))).astype(np.float32)
               for name in ("drums", "bass", "other", "vocals")}
    track = memory_track("t", 16000, sum(sources.values()), sources)
    estimates = separator(track)
    assert set(estimates) == {"vocals", "accompaniment"}
    assert estimates["vocals"].shape == track.mixture.shape
