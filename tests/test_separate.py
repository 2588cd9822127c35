"""Whole-track separation: patching, stitching, reconstruction, any separator on any audio, the command."""

import json

import numpy as np
import pytest
import torch

from tpsep import spectral
from tpsep.masks import wiener_refine
from tpsep.models.convtasnet import ConvTasNet, ConvTasNetConfig
from tpsep.models.unet import UNet, UNetConfig, UNetSeparator
from tpsep.audio import as_mixture
from tpsep.separate import separate, track_separator
from tpsep.spectral import full_band_mask, make_patches, reconstruct, stitch_patches

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


def unet_around(network, **front_end):
    return UNetSeparator(UNetConfig(**front_end), unet=network)


def test_separator_mask_matches_the_pointwise_model_everywhere():
    mag = torch.rand(2, 512, 250) * 3
    mask = unet_around(PointwiseMask()).mask(mag, batch_size=3)
    assert mask.shape == mag.shape
    assert torch.allclose(mask, mag / (1 + mag), atol=1e-6)


def test_separator_mask_refuses_513_bins():
    with pytest.raises(ValueError, match="crop the Nyquist bin"):
        unet_around(PointwiseMask()).mask(torch.rand(1, 513, 200))


def test_full_band_mask_repeats_the_top_bin():
    mask = torch.rand(3, 512, 10)
    full = full_band_mask(mask)
    assert full.shape == (3, 513, 10)
    assert torch.equal(full[:, 512], mask[:, 511]) and torch.equal(full[:, :512], mask)


def test_reconstruct_with_ones_gives_the_mixture_and_with_zeros_silence():
    x = torch.randn(2, 8192 * 3)
    X = spectral.stft(x, n_fft=1024, hop=768)
    ones = reconstruct(torch.ones(2, 512, X.shape[-1]), X, length=x.shape[-1], hop=768)
    assert ones.shape == x.shape
    assert torch.allclose(ones, x, atol=1e-4)
    assert float(reconstruct(torch.zeros(2, 512, X.shape[-1]), X, length=x.shape[-1], hop=768).abs().max()) < 1e-6


def test_reconstruct_refuses_a_mask_that_does_not_fit():
    X = spectral.stft(torch.randn(8192), n_fft=1024, hop=768)
    with pytest.raises(ValueError, match="does not fit"):
        reconstruct(torch.ones(513, X.shape[-1]), X, length=8192)


def test_unet_separator_at_the_model_rate_is_exact():
    rng = np.random.default_rng(0)
    mixture = (0.1 * rng.standard_normal((2, 8192 * 20))).astype(np.float32)
    estimates = separate(unet_around(ConstantMask(0.25)), mixture, 8192)
    assert list(estimates) == ["vocals", "accompaniment"]
    assert estimates["vocals"].shape == mixture.shape and estimates["vocals"].dtype == np.float32
    np.testing.assert_allclose(estimates["vocals"], 0.25 * mixture, atol=1e-4)
    np.testing.assert_allclose(estimates["vocals"] + estimates["accompaniment"], mixture, atol=1e-6)


def test_separate_resamples_back_to_the_input_rate_and_length():
    t = np.arange(16000 * 5 + 7) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
    estimates = separate(unet_around(ConstantMask(1.0), target="drums"), tone, 16000)
    assert list(estimates) == ["drums", "rest"]
    assert estimates["drums"].shape == tone.shape
    middle = slice(2000, -2000)  # a 440 Hz tone survives 16 kHz -> 8192 Hz -> 16 kHz
    np.testing.assert_allclose(estimates["drums"][:, middle], tone[:, middle], atol=1e-2)


def test_the_residual_keeps_what_the_model_never_heard():
    """The U-Net hears up to 4096 Hz; at 44.1 kHz a 10 kHz tone must land in the accompaniment."""
    t = np.arange(44100 * 3) / 44100
    high = (0.3 * np.sin(2 * np.pi * 10_000 * t)).astype(np.float32)
    mixture = np.stack([high, high])
    estimates = separate(unet_around(ConstantMask(1.0)), mixture, 44100)
    middle = slice(4410, -4410)  # the resampler's edges ring a little
    assert np.abs(estimates["vocals"][:, middle]).max() < 0.01 * np.abs(high).max()
    np.testing.assert_allclose(estimates["accompaniment"], mixture - estimates["vocals"], atol=1e-6)


def test_convtasnet_separates_44k_stereo_at_8k_and_returns_44k():
    torch.manual_seed(0)
    model = ConvTasNet(ConvTasNetConfig(N=16, B=16, H=16, Sc=16, X=2, R=1), verbose=False)
    mixture = (0.1 * np.random.default_rng(0).standard_normal((2, 44100 + 123))).astype(np.float32)
    estimates = separate(model, mixture, 44100)
    assert list(estimates) == ["s1", "s2"]
    assert all(e.shape == mixture.shape and e.dtype == np.float32 for e in estimates.values())


def test_unet_separator_with_a_real_unet_and_refinement():
    torch.manual_seed(0)
    config = UNetConfig(depth=6, channels=4, max_channels=8)
    model = UNet(config, verbose=False)
    mixture = np.random.default_rng(1).standard_normal((1, 8192 * 12)).astype(np.float32) * 0.1
    plain = separate(UNetSeparator(config, unet=model), mixture, 8192)
    refined = separate(UNetSeparator(UNetConfig(**{**vars(config), "refine": True}), unet=model), mixture, 8192)
    assert not np.allclose(plain["vocals"], refined["vocals"])
    assert np.isfinite(refined["vocals"]).all()


def test_int16_pcm_is_scaled_not_taken_as_float():
    pcm = (np.random.default_rng(0).standard_normal((1, 8192 * 2)) * 8000).astype(np.int16)
    mixture = as_mixture(pcm, 8192)
    assert mixture.dtype == np.float32 and np.abs(mixture).max() <= 1.0
    estimates = separate(unet_around(ConstantMask(0.5)), pcm, 8192)
    assert np.abs(estimates["vocals"]).max() < 1.0


@pytest.mark.parametrize("bad, message", [
    (np.zeros((1, 8192 * 2), np.float32), "silent"),
    (np.full((1, 8192 * 2), np.nan, np.float32), "NaN"),
    (np.ones((8192 * 2, 2), np.float32), "mixture.T"),
    (np.ones((2, 3, 8192), np.float32), "channels, samples"),
    (np.array([["a", "b"]]), "dtype"),
])
def test_separate_bad_input_is_a_clear_error(bad, message):
    with pytest.raises(ValueError, match=message):
        separate(unet_around(ConstantMask(0.5)), bad, 8192)


@pytest.mark.parametrize("rate", [0, -8000, 8000.5, True])
def test_separate_bad_rate_is_a_clear_error(rate):
    with pytest.raises(ValueError, match="rate must be a positive integer"):
        separate(unet_around(ConstantMask(0.5)), np.ones((1, 8192), np.float32), rate)


def test_wiener_refinement_sharpens_the_mask():
    mask = torch.tensor([0.0, 0.2, 0.5, 0.8, 1.0])
    refined = wiener_refine(mask)
    assert torch.allclose(refined, torch.tensor([0.0, 0.04 / 0.68, 0.5, 0.64 / 0.68, 1.0]), atol=1e-6)


def save_tiny(tmp_path, name):
    """A checkpoint as `tpsep train` writes it, of a small model of each kind."""
    from dataclasses import asdict

    from tpsep.checkpoints import save_checkpoint

    torch.manual_seed(0)
    if name == "unet":
        config = UNetConfig(depth=6, channels=4, max_channels=8)
        trained = UNet(config, verbose=False)
    elif name == "bandsplit":
        from tpsep.models.bandsplit import BandSplit, BandSplitConfig

        config = BandSplitConfig(N=8, L=1, H=8, mask_mult=1)
        trained = BandSplit(config, verbose=False)
    elif name == "gridnet":
        from tpsep.models.gridnet import TINY, TFGridNet

        config = TINY
        trained = TFGridNet(config, verbose=False)
    else:
        config = ConvTasNetConfig(N=16, B=16, H=16, Sc=16, X=2, R=1)
        trained = ConvTasNet(config, verbose=False)
    path = tmp_path / f"{name}.pt"
    save_checkpoint(path, trained, extra={"model_name": name, "model_config": asdict(config)})
    return path


@pytest.mark.parametrize("model_name, names", [("unet", ["vocals", "accompaniment"]), ("convtasnet", ["s1", "s2"]),
                                              ("gridnet", ["s1", "s2"]),
                                              ("bandsplit", ["vocals", "accompaniment"])])
def test_separate_command_on_44k_stereo_writes_44k_at_the_input_length(tmp_path, capsys, model_name, names):
    from tpsep import audio
    from tpsep.cli import main

    checkpoint = save_tiny(tmp_path, model_name)
    song = tmp_path / "song.wav"
    audio.save(song, 0.1 * np.random.default_rng(0).standard_normal((2, 44100 * 2 + 11)).astype(np.float32), 44100)
    figures_path = tmp_path / "figures.json"
    assert main(["separate", str(checkpoint), str(song), "--out", str(tmp_path / "out"),
                 "--json", str(figures_path)]) == 0
    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    assert last_line.startswith(f"separate: model={model_name} files=1 written=2 audio_seconds=2.0")
    for name in names:
        written, rate = audio.load(tmp_path / "out" / "song" / f"{name}.wav")
        assert rate == 44100 and written.shape == (2, 44100 * 2 + 11)
    assert json.loads(figures_path.read_text())["written"] == 2


def test_separate_command_keeps_existing_files_and_separates_same_names_apart(tmp_path, capsys):
    from tpsep import audio
    from tpsep.cli import main

    checkpoint = save_tiny(tmp_path, "unet")
    for folder in ("a", "b"):
        audio.save(tmp_path / folder / "song.wav", 0.1 * np.ones((1, 8192 * 2), np.float32), 8192)
    out = tmp_path / "out"
    assert main(["separate", str(checkpoint), str(tmp_path / "a" / "song.wav"), str(tmp_path / "b" / "song.wav"),
                 "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["song", "song-2"]
    assert "written=4" in capsys.readouterr().out
    assert main(["separate", str(checkpoint), str(tmp_path / "a" / "song.wav"), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["separate", str(checkpoint), str(tmp_path / "a" / "song.wav"), "--out", str(out),
                 "--overwrite"]) == 0


def test_evaluate_scores_any_checkpoint(tmp_path):
    from tpsep.checkpoints import load_separator
    from tpsep.data import memory_track
    from tpsep.evaluation import evaluate

    rng = np.random.default_rng(0)
    sources = {name: (0.1 * rng.standard_normal((1, 16000 * 3))).astype(np.float32)
               for name in ("drums", "bass", "other", "vocals")}
    track = memory_track("t", 16000, sum(sources.values()), sources)
    frames = evaluate(load_separator(save_tiny(tmp_path, "unet")), [track], mode="si_sdr")
    assert set(frames["target"]) == {"vocals", "accompaniment"}
    speech = {name: (0.1 * rng.standard_normal((1, 8000 * 2))).astype(np.float32) for name in ("s1", "s2")}
    pair = memory_track("p", 8000, sum(speech.values()), speech)
    frames = evaluate(load_separator(save_tiny(tmp_path, "convtasnet")), [pair], targets=["s1", "s2"], mode="si_sdr")
    assert set(frames["target"]) == {"s1", "s2"} and np.isfinite(frames["value"]).all()


def test_bandsplit_residual_is_the_mixture_minus_its_target_at_the_input_rate(tmp_path):
    """The band-split model outputs vocals only; separate() adds the accompaniment as what is left,
    so the two estimates add up to the 44.1 kHz mixture, band above the model's 8 kHz included."""
    from tpsep.checkpoints import load_separator

    model = load_separator(save_tiny(tmp_path, "bandsplit"))
    mixture = 0.1 * np.random.default_rng(1).standard_normal((2, 44100)).astype(np.float32)
    estimates = separate(model, mixture, 44100)
    assert list(estimates) == ["vocals", "accompaniment"]
    assert estimates["vocals"].shape == mixture.shape
    assert np.allclose(estimates["vocals"] + estimates["accompaniment"], mixture, atol=1e-6)
    assert not np.allclose(estimates["vocals"], 0)


def test_a_one_output_model_is_an_enhancer_and_names_its_output_speech():
    model = ConvTasNet(ConvTasNetConfig(N=16, B=16, H=16, Sc=16, X=2, R=1, C=1), verbose=False)
    noisy = 0.1 * np.random.default_rng(2).standard_normal((1, 16000)).astype(np.float32)
    estimates = separate(model, noisy, 16000)
    assert list(estimates) == ["speech"] and estimates["speech"].shape == noisy.shape
