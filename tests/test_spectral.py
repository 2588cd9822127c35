import numpy as np
import pytest
import torch

from tpsep import spectral


def test_stft_matches_librosa_and_inverts():
    import librosa

    x = np.random.default_rng(0).standard_normal(8000)
    X = spectral.stft(x, n_fft=512, hop=128).numpy()
    expected = librosa.stft(x, n_fft=512, hop_length=128, window="hann", center=True, pad_mode="reflect")
    assert X.shape == (257, 1 + len(x) // 128)
    np.testing.assert_allclose(X, expected, atol=1e-8)
    y = spectral.istft(X, n_fft=512, hop=128, length=len(x)).numpy()
    np.testing.assert_allclose(y, x, atol=1e-9)


def test_batched_shapes_are_kept():
    x = torch.randn(2, 3, 4000)
    X = spectral.stft(x, n_fft=256, hop=64)
    assert X.shape[:3] == (2, 3, 129)
    assert spectral.istft(X, n_fft=256, hop=64, length=4000).shape == (2, 3, 4000)


def test_512_bin_round_trip_is_exact_with_the_mixture_nyquist_bin():
    x = torch.randn(8192 * 2, dtype=torch.float64)
    X = spectral.stft(x, n_fft=1024, hop=768)
    assert X.shape[-2] == 513
    cropped = spectral.crop_bins(X)
    assert cropped.shape[-2] == 512
    torch.testing.assert_close(spectral.restore_bins(cropped, X), X)
    zero_top = spectral.restore_bins(cropped)
    assert torch.all(zero_top[..., -1, :] == 0)


def test_shape_mistakes_are_clear_errors():
    X = spectral.stft(torch.randn(8192), n_fft=1024, hop=768)
    with pytest.raises(ValueError, match="513"):
        spectral.crop_bins(spectral.crop_bins(X))
    with pytest.raises(ValueError, match="restore_bins"):
        spectral.istft(spectral.crop_bins(X))
    with pytest.raises(ValueError, match="NaN"):
        spectral.stft(torch.full((4096,), float("nan")))
    with pytest.raises(ValueError, match="too short"):
        spectral.stft(torch.randn(100), n_fft=1024)


def test_to_db_floors_at_top_db_below_the_peak():
    mag = torch.tensor([1.0, 0.1, 1e-9])
    db = spectral.to_db(mag, top_db=60)
    assert db[0] == 0
    assert torch.isclose(db[1], torch.tensor(-20.0))
    assert db[2] == -60


def test_istft_refuses_a_length_its_frames_never_saw():
    # hop 768 > n_fft / 2: a centred STFT of 768 + 600 samples has 2 frames, the last one ending at
    # 768 + 512 = 1280, so torch would return zeros for the last 88 samples (with a warning only)
    x = torch.randn(1368, dtype=torch.float64)
    X = spectral.stft(x, n_fft=1024, hop=768)
    with pytest.raises(ValueError, match="pad the signal to whole hops"):
        spectral.istft(X, n_fft=1024, hop=768, length=1368)
    padded = torch.nn.functional.pad(x, (0, -len(x) % 768))
    y = spectral.istft(spectral.stft(padded, n_fft=1024, hop=768), n_fft=1024, hop=768, length=len(padded))
    assert torch.allclose(y[:1368], x, atol=1e-9)


def test_full_band_mask_repeats_the_bin_below_and_refuses_what_is_not_a_mask():
    mask = torch.rand(2, 3, 16, 5)
    full = spectral.full_band_mask(mask)
    assert full.shape == (2, 3, 17, 5)
    assert torch.equal(full[..., :16, :], mask) and torch.equal(full[..., 16, :], mask[..., 15, :])
    assert spectral.full_band_mask(np.ones((512, 4), np.float32)).shape == (513, 4)
    with pytest.raises(ValueError, match="full_band_mask expects a mask"):
        spectral.full_band_mask(torch.rand(512))
    with pytest.raises(ValueError, match="real mask"):
        spectral.full_band_mask(torch.rand(512, 4, dtype=torch.complex64))


def test_alias_frequency_folds_into_zero_to_nyquist():
    rate = 16_000
    frequencies = np.array([0, 440, 7_000, 8_000, 9_000, 16_000, 17_000, 25_000], dtype=float)
    np.testing.assert_allclose(spectral.alias_frequency(frequencies, rate),
                               [0, 440, 7_000, 8_000, 7_000, 0, 1_000, 7_000])
    # the FFT of the sampled sine agrees
    t = np.arange(rate) / rate
    for f in (3_000.0, 11_000.0, 37_000.0):
        heard = np.argmax(np.abs(np.fft.rfft(np.sin(2 * np.pi * f * t)))) * rate / len(t)
        assert heard == spectral.alias_frequency(f, rate)
    with pytest.raises(ValueError, match="rate must be a positive"):
        spectral.alias_frequency(440.0, 0)
    with pytest.raises(ValueError, match=">= 0 Hz"):
        spectral.alias_frequency(-440.0, rate)
