"""Tests of tpsep.masks: ideal masks, applying them with 512 or 513 bins, oracle separation."""

import numpy as np
import pytest
import torch

from tpsep import masks, spectral


def _two_tones(rate=8000, seconds=1.0, seed=0):
    """A 440 Hz target and a 2000 Hz interference with a little noise: easy to separate."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    target = (0.5 * np.sin(2 * np.pi * 440 * t))[None].astype(np.float32)
    other = (0.5 * np.sin(2 * np.pi * 2000 * t) + 0.01 * rng.standard_normal(t.size))[None].astype(np.float32)
    return target, other


def test_ibm_is_one_where_target_dominates():
    target = torch.tensor([[1.0, 0.2, 3.0]])
    other = torch.tensor([[0.5, 0.4, 3.0]])
    assert masks.ideal_binary_mask(target, other).tolist() == [[1.0, 0.0, 0.0]]
    # a -10 dB threshold also keeps bins where the target is a bit weaker
    assert masks.ideal_binary_mask(target, other, threshold_db=-10).tolist() == [[1.0, 1.0, 1.0]]


def test_irm_values_and_exponent():
    target = torch.tensor([[3.0, 0.0]])
    other = torch.tensor([[1.0, 0.0]])
    assert masks.ideal_ratio_mask(target, other, power=1)[0, 0].item() == pytest.approx(0.75)
    assert masks.ideal_ratio_mask(target, other, power=2)[0, 0].item() == pytest.approx(0.9)
    assert masks.ideal_ratio_mask(target, other)[0, 1].item() == 0.0  # silent bin: no NaN


def test_masks_sum_to_one_and_stay_in_range():
    rng = np.random.default_rng(1)
    s, n = rng.random((2, 513, 30)), rng.random((2, 513, 30))
    for power in (0.5, 1.0, 2.0):
        total = masks.ideal_ratio_mask(s, n, power) + masks.ideal_ratio_mask(n, s, power)
        assert torch.allclose(total, torch.ones_like(total), atol=1e-6)
    w = masks.wiener_mask(s, n, context_frames=5)
    assert w.shape == (2, 513, 30) and float(w.min()) >= 0 and float(w.max()) <= 1


def test_wiener_with_one_frame_is_the_power_irm_and_smoothing_changes_it():
    rng = np.random.default_rng(2)
    s, n = rng.random((64, 20)), rng.random((64, 20))
    assert torch.allclose(masks.wiener_mask(s, n, context_frames=1), masks.ideal_ratio_mask(s, n, 2.0))
    assert not torch.allclose(masks.wiener_mask(s, n, context_frames=5), masks.ideal_ratio_mask(s, n, 2.0))


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="same shape"):
        masks.ideal_binary_mask(np.ones((4, 5)), np.ones((4, 6)))
    with pytest.raises(ValueError, match="complex"):
        masks.ideal_ratio_mask(torch.ones(4, 5, dtype=torch.complex64), torch.ones(4, 5))
    with pytest.raises(ValueError, match="power"):
        masks.ideal_ratio_mask(np.ones((4, 5)), np.ones((4, 5)), power=0)
    with pytest.raises(ValueError, match="unknown mask kind"):
        masks.compute_mask("nope", np.ones((4, 5)), np.ones((4, 5)))


def test_apply_mask_keeps_the_mixture_phase():
    X = spectral.stft(torch.randn(4096), n_fft=1024, hop=256)
    mask = torch.rand(X.shape)
    Y = masks.apply_mask(mask, X)
    keep = mask > 0.05
    assert torch.allclose(torch.angle(Y)[keep], torch.angle(X)[keep], atol=1e-4)
    assert torch.allclose(Y.abs(), mask * X.abs(), atol=1e-5)


def test_apply_mask_accepts_512_bins_and_rejects_other_sizes():
    X = spectral.stft(torch.randn(8192), n_fft=1024, hop=768)
    assert X.shape[-2] == 513
    Y = masks.apply_mask(torch.ones(512, X.shape[-1]), X)
    assert Y.shape == X.shape
    assert torch.allclose(Y[:512], X[:512]) and torch.all(Y[512] == 0)  # Nyquist bin restored as zeros
    with pytest.raises(ValueError, match="does not fit"):
        masks.apply_mask(torch.ones(511, X.shape[-1]), X)
    with pytest.raises(ValueError, match="complex mixture"):
        masks.apply_mask(torch.ones(513, X.shape[-1]), X.abs())


def test_with_mixture_phase_rebuilds_the_mixture_from_its_magnitude():
    X = spectral.stft(torch.randn(4096), n_fft=1024, hop=256)
    assert torch.allclose(masks.with_mixture_phase(X.abs(), X), X, atol=1e-4)


def test_oracle_masks_separate_two_tones_and_the_mix_oracle_does_not():
    target, other = _two_tones()
    mixture = target + other
    sources = {"target": target, "other": other}
    scores = {}
    for kind in ("ibm", "irm", "irm2", "wiener", "mix"):
        estimate = masks.separate_with_oracle(mixture, sources, kind=kind, targets=["target"])["target"]
        assert estimate.shape == target.shape and estimate.dtype == np.float32
        error = np.sum((estimate - target) ** 2) / np.sum(target ** 2)
        scores[kind] = -10 * np.log10(error)
    for kind in ("ibm", "irm", "irm2", "wiener"):
        assert scores[kind] > 15, scores  # tones in different bins: nearly perfect
    assert abs(scores["mix"]) < 1  # the mixture as estimate: SNR about 0 dB here


def test_oracle_separator_returns_every_source_and_the_accompaniment():
    class FakeTrack:
        rate = 8000
        source_names = ("vocals", "other")

        def __init__(self):
            self.sources = dict(zip(self.source_names, _two_tones()))
            self.mixture = self.sources["vocals"] + self.sources["other"]

        def stem(self, name):
            assert name == "accompaniment"
            return self.sources["other"]

    estimates = masks.oracle_separator("irm")(FakeTrack())
    assert set(estimates) == {"vocals", "other", "accompaniment"}
    with pytest.raises(ValueError, match="unknown oracle"):
        masks.oracle_separator("best")


def test_mask_explorer_responds_to_its_controls(capsys):
    pytest.importorskip("ipywidgets")
    import matplotlib

    matplotlib.use("Agg")
    from tpsep.widgets import MaskExplorer

    target, other = _two_tones(seconds=1.0)
    other = other + 0.3 * np.roll(target, 40)  # some overlap, so that the masks differ
    panel = MaskExplorer(target + other, target, rate=8000, n_fft=512, hop=128, kind="irm")
    first = dict(panel.scores)
    assert first["SI-SDR"] > 5 and "IRM, p = 1" in panel.info.value
    panel.power.value = 3.0  # a slider move recomputes through the observer
    assert panel.scores != first and "p = 3" in panel.describe()
    panel.kind.value = "mix"
    assert panel.scores["SI-SDR"] < first["SI-SDR"] - 5 and float(panel.mask.min()) == 1.0
    assert panel.power.disabled and panel.threshold_db.disabled and panel.context_frames.disabled
    panel.kind.value = "ibm"
    before = panel.scores["SDR"]
    panel.threshold_db.value = 15.0  # keep only bins where the target dominates by 15 dB
    assert panel.scores["SDR"] != before and set(np.unique(panel.mask.numpy())) <= {0.0, 1.0}
    assert len(panel.sound.outputs) == 1 and len(panel.plot.outputs) == 1
    assert capsys.readouterr().out == ""  # callbacks draw into Output widgets, never print
    with pytest.raises(ValueError, match="same length"):
        MaskExplorer(target, target[:, :-5], rate=8000)


def test_wiener_refine_sources_adds_up_to_the_mixture_and_generalises_wiener_refine():
    torch.manual_seed(0)
    X = torch.randn(2, 9, 7, dtype=torch.complex64)
    mags = torch.rand(3, 2, 9, 7)
    refined = masks.wiener_refine_sources(mags, X)
    assert refined.shape == (3, 2, 9, 7) and refined.is_complex()
    torch.testing.assert_close(refined.sum(0), X, atol=1e-5, rtol=1e-5)
    # same phase as the mixture, magnitudes in the ratio of the estimated powers
    torch.testing.assert_close(refined[0].abs() / refined[1].abs(), (mags[0] / mags[1]) ** 2, atol=1e-3, rtol=1e-3)
    # two sources estimated as M|X| and (1 - M)|X|: the two-source refinement of the mask
    mask = torch.rand(2, 9, 7)
    two = masks.wiener_refine_sources(torch.stack([mask * X.abs(), (1 - mask) * X.abs()]), X)
    torch.testing.assert_close(two[0], masks.wiener_refine(mask) * X, atol=1e-5, rtol=1e-4)
    # with p = 1 the refinement gives back the mask it came from
    one = masks.wiener_refine_sources(torch.stack([mask * X.abs(), (1 - mask) * X.abs()]), X, power=1.0)
    torch.testing.assert_close(one[0], mask * X, atol=1e-5, rtol=1e-4)
    # silent everywhere: silence, not NaN
    assert torch.equal(masks.wiener_refine_sources(torch.zeros(2, 3, 4), X[0, :3, :4]).abs(), torch.zeros(2, 3, 4))
    # a very quiet bin with a large power still adds up: nothing underflows to 0 / 0
    quiet = masks.wiener_refine_sources(1e-12 * mags[:, 0], 1e-12 * X[0], power=4.0)
    torch.testing.assert_close(quiet.sum(0), 1e-12 * X[0], atol=1e-17, rtol=1e-5)


@pytest.mark.parametrize("mags, X, power, message", [
    (torch.rand(2, 5, 4), torch.randn(5, 4), 2.0, "complex mixture STFT"),
    (torch.rand(2, 5, 4, dtype=torch.complex64), torch.randn(5, 4, dtype=torch.complex64), 2.0, "take .abs"),
    (torch.rand(5, 4), torch.randn(5, 4, dtype=torch.complex64), 2.0, "stacked on a first axis"),
    (torch.rand(2, 5, 3), torch.randn(5, 4, dtype=torch.complex64), 2.0, "stacked on a first axis"),
    (-torch.rand(2, 5, 4), torch.randn(5, 4, dtype=torch.complex64), 2.0, "magnitudes >= 0"),
    (torch.rand(2, 5, 4), torch.randn(5, 4, dtype=torch.complex64), 0.0, "power must be > 0"),
])
def test_wiener_refine_sources_bad_inputs_are_clear_errors(mags, X, power, message):
    with pytest.raises(ValueError, match=message):
        masks.wiener_refine_sources(mags, X, power=power)
