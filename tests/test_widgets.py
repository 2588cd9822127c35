import numpy as np
import pytest

from tpsep.widgets import SpectrogramExplorer


@pytest.fixture
def explorer():
    t = np.arange(16000) / 16000
    return SpectrogramExplorer(np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000)


def test_controls_redraw_the_spectrogram(explorer):
    assert explorer.spectrogram_db.shape == (513, 63)
    explorer.n_fft.value = 256
    assert explorer.spectrogram_db.shape == (129, 1 + 16000 // 64)
    assert "129 bins" in explorer.info.value
    explorer.hop_fraction.value = 0.5
    assert explorer.resolution["hop"] == 128
    explorer.scale.value = "mel"
    assert explorer.spectrogram_db.shape[0] == 64


def test_db_range_sets_the_floor(explorer):
    explorer.db_range.value = 40
    assert explorer.spectrogram_db.min() >= explorer.spectrogram_db.max() - 40 - 1e-4


def test_text_repr_is_short_and_stable(explorer):
    text = explorer._repr_mimebundle_()["text/plain"]
    assert text.startswith("SpectrogramExplorer(n_fft=1024")
    assert "image/png" not in text


def test_bad_audio_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        SpectrogramExplorer(np.full(8192, np.nan), 16000)
    with pytest.raises(ValueError, match="samples"):
        SpectrogramExplorer(np.zeros((2, 2, 100)), 16000)
