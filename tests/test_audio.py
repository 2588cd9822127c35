import numpy as np
import pytest

from tpsep import audio


def test_save_then_load_round_trip(tmp_path):
    x = (0.5 * np.sin(np.linspace(0, 200, 16000))).astype(np.float32)[None].repeat(2, axis=0)
    path = audio.save(tmp_path / "a.wav", x, 16000)
    y, rate = audio.load(path)
    assert rate == 16000 and y.shape == (2, 16000)
    np.testing.assert_allclose(y, x, atol=1 / 32768)
    mono, rate = audio.load(path, rate=8000, channels=1)
    assert rate == 8000 and mono.shape == (1, 8000)


def test_bad_input_is_refused_with_a_clear_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        audio.load(tmp_path / "missing.wav")
    (tmp_path / "notes.wav").write_text("not audio")
    with pytest.raises(ValueError, match="not an audio file"):
        audio.load(tmp_path / "notes.wav")
    with pytest.raises(ValueError, match="NaN"):
        audio.save(tmp_path / "nan.wav", np.full((1, 10), np.nan), 8000)
    with pytest.raises(ValueError, match="clip"):
        audio.save(tmp_path / "loud.wav", np.full((1, 10), 2.0), 8000)
    assert not (tmp_path / "loud.wav").exists()
