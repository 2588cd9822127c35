"""Tests of tpsep.diagnose, built around notebook 03's "the loss does not move" lab:
a log-normalised [0, 1] input, an oracle-mask target in the raw domain, 513 bins, and a
sigmoid bias initialised at -0.4."""

import numpy as np
import pytest
import torch

from tpsep import spectral
from tpsep.diagnose import (OverfitError, check_domains, mask_statistics, overfit_one_batch,
                            report)

torch.set_num_threads(1)


def magnitudes(seed=0, batch=2, seconds=1.0, rate=8192):
    """Raw STFT magnitudes (batch, 513, frames) of a harmonic "voice" over noise and a bass tone,
    and the oracle-mask target ``irm * mixture`` (the voice as the ideal ratio mask keeps it)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    voices, others = [], []
    for _ in range(batch):
        f0 = 200 + 200 * torch.rand(1, generator=g)
        voice = sum(0.3 / k * torch.sin(2 * np.pi * k * f0 * t) for k in range(1, 8))
        voices.append(voice * (0.5 + 0.5 * torch.sin(2 * np.pi * 0.7 * t)).clamp_min(0))
        others.append(0.05 * torch.randn(len(t), generator=g) + 0.2 * torch.sin(2 * np.pi * 110 * t))
    voice, other = torch.stack(voices), torch.stack(others)
    V, O = (spectral.magnitude(spectral.stft(s)) for s in (voice, other))
    X = spectral.magnitude(spectral.stft(voice + other))
    return X, V / (V + O + 1e-8) * X


def log_normalise(X):
    logX = torch.log1p(X)
    return logX / logX.amax(dim=(1, 2), keepdim=True)


class TinyMasker(torch.nn.Module):
    """A per-frame MLP over the frequency axis, ending in a sigmoid mask."""

    def __init__(self, bins, mask_bias=0.0):
        super().__init__()
        self.hidden = torch.nn.Linear(bins, 128)
        self.out = torch.nn.Linear(128, bins)
        torch.nn.init.constant_(self.out.bias, mask_bias)

    def forward(self, x):  # (batch, freq, frames) -> mask, same shape
        h = torch.relu(self.hidden(x.transpose(1, 2)))
        return torch.sigmoid(self.out(h)).transpose(1, 2)


def masked_l1(model, batch):
    x, y = batch
    return (model(x) * x - y).abs().mean()


def test_the_loss_does_not_move_lab_is_diagnosed():
    X, target = magnitudes()
    inputs = log_normalise(X)                        # the bug: [0, 1] log domain vs raw target
    assert inputs.shape[1] == target.shape[1] == 513  # and the Nyquist bin still in

    findings = check_domains(inputs, target)
    kinds = {(f.check, f.severity) for f in findings}
    assert ("domain", "error") in kinds and ("bins", "warning") in kinds
    text = report(findings)
    assert "domain mismatch" in text and "normalised into [0, 1]" in text and "513" in text and "crop_bins" in text

    torch.manual_seed(0)
    model = TinyMasker(513, mask_bias=-0.4)
    stats = mask_statistics(model, inputs)
    assert stats.mean_logit == pytest.approx(-0.4, abs=0.05) and stats.mean < 0.45
    assert any("biased towards 0" in f.message for f in stats.findings)

    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(OverfitError) as caught:
        overfit_one_batch(model, masked_l1, (inputs, target), steps=300, factor=10)
    message = str(caught.value)
    assert "did not fall by 10" in message and "domain mismatch" in message and "frozen sigmoid" in message
    assert caught.value.result.reduction < 2  # it really stays (nearly) flat
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # a copy was trained


def test_the_fixed_lab_passes_every_check():
    X, target = magnitudes()
    X, target = spectral.crop_bins(X), spectral.crop_bins(target)  # 512 bins, same (raw) domain
    assert check_domains(X, target) == []
    assert "no problem found" in report(check_domains(X, target))
    torch.manual_seed(0)
    model = TinyMasker(512, mask_bias=0.0)
    stats = mask_statistics(model, X)
    assert stats.findings == [] and abs(stats.mean_logit) < 0.1
    result = overfit_one_batch(model, masked_l1, (X, target), steps=300, factor=10)
    assert result.passed and result.losses[-1] <= result.losses[0] / 10
    assert "✓ overfit one batch" in str(result)


def test_normalised_input_with_the_raw_mixture_multiplied_is_fine():
    X, target = (spectral.crop_bins(m) for m in magnitudes())
    assert check_domains(log_normalise(X), target, mixture=X) == []
    assert any(f.check == "domain" for f in check_domains(log_normalise(X), target))


def test_512_against_513_bins_names_the_nyquist_bin():
    X, target = magnitudes()
    findings = check_domains(spectral.crop_bins(X), target)
    assert [f.check for f in findings] == ["bins"] and findings[0].severity == "error"
    assert "Nyquist" in findings[0].message and "512" in findings[0].message and "513" in findings[0].message
    masks = torch.rand(2, 512, X.shape[-1] + 3)
    shape_findings = check_domains(spectral.crop_bins(X), spectral.crop_bins(target), masks)
    assert [f.check for f in shape_findings] == ["shape"] and "masks" in shape_findings[0].message


def test_wrongly_scaled_targets():
    X, target = (spectral.crop_bins(m) for m in magnitudes())
    too_big = check_domains(X, 1000 * target)
    assert any(f.check == "scale" and f.severity == "error" for f in too_big)
    too_small = check_domains(X, target / 1e5)
    assert [(f.check, f.severity) for f in too_small] == [("scale", "warning")]
    in_db = check_domains(X, 20 * torch.log10(target + 1e-6))
    assert any(f.check == "sign" for f in in_db)
    assert any(f.check == "scale" for f in check_domains(X, target * 3, target_kind="mask"))
    peak_normalised = check_domains(X / X.max(), target)  # linear, not log: still the wrong domain
    assert any(f.check == "domain" and "normalised into [0, 1]" in f.message for f in peak_normalised)


def test_nan_and_bad_arguments():
    X, target = (spectral.crop_bins(m) for m in magnitudes())
    X[0, 3, 4] = float("nan")
    assert [f.check for f in check_domains(X, target)] == ["finite"]
    with pytest.raises(TypeError, match="inputs"):
        check_domains([1, 2], target)
    with pytest.raises(ValueError, match="target_kind"):
        check_domains(target, target, target_kind="db")


def test_mask_statistics_sees_saturation_a_missing_sigmoid_and_a_constant_mask():
    X, _ = (spectral.crop_bins(m) for m in magnitudes())
    torch.manual_seed(0)
    model = TinyMasker(512)
    with torch.no_grad():
        model.hidden.weight.mul_(30)           # raw magnitudes up to ~70 times big weights
    saturated = mask_statistics(model, X)
    assert saturated.saturated > 0.1 and any("saturated" in f.message for f in saturated.findings)

    no_sigmoid = torch.nn.Sequential(torch.nn.Linear(X.shape[-1], X.shape[-1]))
    assert any("sigmoid missing" in f.message for f in mask_statistics(no_sigmoid, X).findings)

    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(()))

        def forward(self, x):
            return torch.sigmoid(self.bias + 0 * x)

    constant = mask_statistics(Constant(), X)
    assert constant.mean == pytest.approx(0.5) and any("constant" in f.message for f in constant.findings)
    assert "mean logit +0.000" in str(constant)


def test_overfit_names_a_detached_graph_and_frozen_weights():
    X, target = (spectral.crop_bins(m) for m in magnitudes(batch=1))
    torch.manual_seed(0)
    model = TinyMasker(512)

    def detached(model, batch):
        x, y = batch
        return (model(x).detach() * x - y).abs().mean()

    result = overfit_one_batch(model, detached, (X, target), steps=20, raise_on_failure=False)
    assert not result.passed and any("detached" in f.message for f in result.findings)

    def half_detached(model, batch):  # the hidden layer's output is cut from the graph
        x, y = batch
        h = torch.relu(model.hidden(x.transpose(1, 2))).detach()
        return (torch.sigmoid(model.out(h)).transpose(1, 2) * x - y).abs().mean()

    result = overfit_one_batch(model, half_detached, (X, target), steps=3, raise_on_failure=False)
    assert any("hidden.weight" in f.message and "no gradient" in f.message for f in result.findings)

    frozen = TinyMasker(512)
    frozen.requires_grad_(False)
    with pytest.raises(OverfitError, match="all frozen"):
        overfit_one_batch(frozen, masked_l1, (X, target), steps=5)


def test_overfit_takes_a_target_for_a_negative_loss():
    """-SI-SNR is negative once the estimate is decent: a reduction factor cannot judge it."""
    from tpsep.losses import si_snr

    torch.manual_seed(0)
    source = torch.nn.functional.avg_pool1d(torch.randn(2, 1, 2007), 8, stride=1)  # low-pass
    mixture = source + 0.1 * torch.randn(2, 1, 2000)  # white noise a filter can partly remove
    model = torch.nn.Conv1d(1, 1, kernel_size=9, padding=4)

    def negative_si_snr(model, batch):
        x, s = batch
        return -si_snr(model(x), s).mean()

    with torch.no_grad():
        model.weight.zero_()
        model.weight[0, 0, 4] = 1.0
    with pytest.raises(ValueError, match="pass target="):
        overfit_one_batch(model, negative_si_snr, (mixture, source), steps=5)
    missed = overfit_one_batch(model, negative_si_snr, (mixture, source), steps=1, target=-40,
                               raise_on_failure=False)
    assert not missed.passed and "did not reach the target" in str(missed)
    reached = overfit_one_batch(model, negative_si_snr, (mixture, source), steps=300, lr=1e-2, target=-12)
    assert reached.passed and min(reached.losses) <= -12 < reached.losses[0]
    assert "reached the target" in str(reached)
