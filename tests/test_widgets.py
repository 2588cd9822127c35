import numpy as np
import pytest

from tpsep.widgets import MaskExplorer, SpectrogramExplorer


@pytest.fixture
def explorer():
    t = np.arange(16000) / 16000
    return SpectrogramExplorer(np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000)


@pytest.fixture
def mask_explorer():
    t = np.arange(16000) / 16000
    tone = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noise = 0.1 * np.random.default_rng(0).standard_normal(len(t)).astype(np.float32)
    return MaskExplorer(tone + noise, tone, 16000, kind="irm")


def record_outputs(output) -> list:
    """Every value the Output widget's ``outputs`` takes from now on (each is one message
    to the browser, so each is one frame the student may see)."""
    values = []
    output.observe(lambda change: values.append(change["new"]), names="outputs")
    return values


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


def test_an_update_replaces_the_plot_in_one_step(explorer, capsys):
    # Clearing and then appending showed an empty output for a moment: the plot blinked.
    shown = record_outputs(explorer.plot)
    explorer.n_fft.value = 256
    assert len(shown) == 1
    (output,) = shown[0]
    assert output["output_type"] == "display_data"
    assert "image/jpeg" in output["data"]
    assert capsys.readouterr().out == ""  # outside a kernel nothing may be printed


def test_mask_explorer_replaces_plot_and_sound_in_one_step(mask_explorer, capsys):
    plot_shown, sound_shown = record_outputs(mask_explorer.plot), record_outputs(mask_explorer.sound)
    mask_explorer.kind.value = "ibm"
    assert [len(outputs) for outputs in plot_shown] == [1]
    assert [len(outputs) for outputs in sound_shown] == [1]
    assert "text/html" in sound_shown[0][0]["data"]  # the audio player
    assert capsys.readouterr().out == ""


def test_mel_info_describes_bands_not_a_constant_step(explorer):
    import librosa

    assert "frequency step 15.6 Hz" in explorer.info.value
    explorer.scale.value = "mel"
    info = explorer.info.value
    assert "128 mel bands" in info and "0 to 8000 Hz" in info
    assert "frequency step" not in info
    # The spacings quoted are librosa's: its 128 band centres sit between 130 points even in mel.
    spacing = np.diff(librosa.mel_frequencies(n_mels=130, fmin=0, fmax=8000)[1:-1])
    assert f"about {spacing[0]:.0f} Hz apart at the bottom, {spacing[-1]:.0f} Hz at the top" in info
    explorer.scale.value = "linear"
    assert "frequency step" in explorer.info.value


def test_sliders_keep_a_usable_width(explorer, mask_explorer):
    # In a plain HBox a narrow notebook squeezed the sliders down to their handles.
    sliders = [explorer.db_range, mask_explorer.power, mask_explorer.threshold_db,
               mask_explorer.context_frames]
    for slider in sliders:
        assert slider.layout.min_width and int(slider.layout.min_width.removesuffix("px")) >= 250
    for panel, slider in ((explorer, explorer.db_range), (mask_explorer, mask_explorer.power)):
        (row,) = [child for child in panel.widget.children if slider in getattr(child, "children", ())]
        assert row.layout.flex_flow == "row wrap"  # no room for the next slider: it goes below
