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


# ---- find_nonfinite: where a NaN/Inf starts ----

from torch import nn  # noqa: E402  (the tests above need only torch)

from tpsep.diagnose import find_nonfinite  # noqa: E402


class Log(nn.Module):
    def forward(self, x):
        return torch.log(x)


class Magnitude(nn.Module):
    """|z| of the complex numbers stored as (..., 2) real/imaginary, written by hand: its
    gradient at z = 0 is 0/0."""

    def forward(self, z):
        return torch.sqrt(z[..., 0] ** 2 + z[..., 1] ** 2).unsqueeze(-1)


class LogFeatures(nn.Module):
    """tanh features, then their log: NaN wherever a feature is negative."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(4, 8)
        self.compress = Log()
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.compress(torch.tanh(self.encoder(x))))


class ZeroMagnitude(nn.Module):
    """A zero-initialised layer gives exactly 0 to a hand-written magnitude."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.magnitude = Magnitude()
        self.head = nn.Linear(1, 1)
        nn.init.zeros_(self.lin.weight)
        nn.init.zeros_(self.lin.bias)

    def forward(self, x):
        return self.head(self.magnitude(self.lin(x)))


class Clamped(nn.Module):
    """A clamp to [0, 1e-6] that the first layer's outputs always overshoot or undershoot."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(4, 8)
        self.second = nn.Linear(8, 1)
        self.unused = nn.Linear(8, 8)

    def forward(self, x):
        return self.second(torch.clamp(self.first(10 * x), 0, 1e-6))


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def regression_batch(batch=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 4, generator=g), torch.randn(batch, 1, generator=g)


def hooks_left(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               + len(m._backward_pre_hooks) for m in model.modules())


def test_find_nonfinite_names_the_layer_whose_output_is_nan():
    torch.manual_seed(0)
    model = LogFeatures()
    result = find_nonfinite(model, mse, regression_batch())
    assert result.first_nonfinite_output == "compress"
    assert result.first_nonfinite_output_inputs[0].min < 0 and result.first_nonfinite_output_inputs[0].nonfinite == 0
    assert not result.backward_ran and result.first_nonfinite_gradient is None and not result.ok
    text = str(result)
    assert "compress (Log)" in text and "input float32 (5, 8) in [-" in text and "this module made them" in text
    assert np.isnan(result.loss)

    class FunctionalLog(LogFeatures):  # the log is a function in the forward, not a module
        def forward(self, x):
            return self.head(torch.log(torch.tanh(self.encoder(x))))

    torch.manual_seed(0)
    functional = find_nonfinite(FunctionalLog(), mse, regression_batch())
    assert functional.first_nonfinite_output == "head"
    assert "already holds NaN/Inf" in str(functional) and "the model's own forward" in str(functional)

    with torch.autocast("cpu", dtype=torch.bfloat16):  # no dtype is forced on the model
        in_bf16 = find_nonfinite(model, mse, regression_batch())
    assert in_bf16.first_nonfinite_output == "compress" and "input bfloat16" in str(in_bf16)


def test_find_nonfinite_handles_lstm_tuples_and_broken_weights():
    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(4, 3, batch_first=True)  # returns (output, (h, c))
            self.head = nn.Linear(3, 1)

        def forward(self, x):
            y, _ = self.lstm(x)
            return self.head(y)

    torch.manual_seed(0)
    model = Recurrent()
    batch = (torch.randn(2, 6, 4), torch.randn(2, 6, 1))
    assert find_nonfinite(model, mse, batch).findings == []
    with torch.no_grad():  # +inf - inf in the first gate
        model.lstm.bias_ih_l0[0], model.lstm.bias_hh_l0[0] = float("inf"), -float("inf")
    result = find_nonfinite(model, mse, batch)
    assert result.first_nonfinite_output == "lstm"
    assert "weights already hold NaN/Inf: lstm.bias_ih_l0, lstm.bias_hh_l0" in str(result)

    x = torch.randn(2, 6, 4)
    x[1, 2, 3] = float("nan")
    assert "batch[0] already holds NaN/Inf" in str(find_nonfinite(Recurrent(), mse, (x, batch[1])))


def test_find_nonfinite_names_the_module_whose_backward_makes_nan():
    model = ZeroMagnitude()
    result = find_nonfinite(model, mse, regression_batch())
    assert np.isfinite(result.loss) and result.first_nonfinite_output is None and result.backward_ran
    assert result.first_nonfinite_gradient == "magnitude"
    assert (result.first_nonfinite_gradient_inputs[0].min, result.first_nonfinite_gradient_inputs[0].max) == (0, 0)
    assert result.nonfinite_parameter_grads == ["lin.weight", "lin.bias"]
    text = str(result)
    assert "magnitude (Magnitude): its output gradient is finite, its input gradient is not" in text and "in [0, 0]" in text

    class InPlaceReLU(ZeroMagnitude):  # the ReLU overwrites lin's output: two values, one tensor
        def __init__(self):
            super().__init__()
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.head(self.magnitude(self.act(self.lin(x))))

    assert find_nonfinite(InPlaceReLU(), mse, regression_batch()).first_nonfinite_gradient == "magnitude"

    def sqrt_loss(model, batch):  # the same trap in the loss: d sqrt(u) / du at u = 0
        x, y = batch
        return torch.sqrt(((model(x) * 0) ** 2).sum())

    in_the_loss = find_nonfinite(nn.Linear(4, 1), sqrt_loss, regression_batch())
    assert in_the_loss.first_nonfinite_gradient == "(model)" and "loss_fn's backward made it" in str(in_the_loss)
    assert in_the_loss.nonfinite_parameter_grads == ["weight", "bias"]


def test_find_nonfinite_reports_zero_and_missing_gradients():
    torch.manual_seed(0)
    result = find_nonfinite(Clamped(), mse, regression_batch())
    assert result.first_nonfinite_output is None and result.first_nonfinite_gradient is None
    assert result.zero_gradient_parameters == ["first.weight", "first.bias"]
    assert result.missing_gradient_parameters == ["unused.weight", "unused.bias"]
    text = str(result)
    assert "exactly 0 everywhere, in 1 module: first (weight, bias)" in text and "clamp" in text
    assert "no gradient at all, in 1 module: unused (weight, bias)" in text


def test_find_nonfinite_reports_a_loss_of_exactly_zero():
    def hardest_half(model, batch):  # learn only from the examples above the median error
        x, y = batch
        errors = ((model(x) - y) ** 2).mean(-1)
        keep = (errors > errors.quantile(0.5)).float()
        return (errors * keep).sum() / keep.sum().clamp_min(1)

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    one = find_nonfinite(model, hardest_half, regression_batch(batch=1))
    assert one.loss == 0 and len(one.zero_gradient_parameters) == 4
    assert [(f.check, f.severity) for f in one.findings] == [("loss", "warning")]
    assert "exactly 0 and so is every gradient" in str(one) and "batch size 1" in str(one)
    assert find_nonfinite(model, hardest_half, regression_batch(batch=4)).findings == []


def test_find_nonfinite_leaves_a_healthy_model_as_it_was():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(inplace=True), nn.Dropout(0.3),
                          nn.Linear(8, 1))
    batch = regression_batch()
    mse(model, batch).backward()                      # mid-training: gradients are there
    model.eval()
    model[3].train()                                  # and modes differ between modules
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [(p.grad, p.grad.clone()) for p in model.parameters()]
    modes = [m.training for m in model.modules()]
    random_state = torch.random.get_rng_state()

    result = find_nonfinite(model, mse, batch)        # training mode: BatchNorm updates its statistics
    assert result.ok and result.findings == [] and str(result).startswith("✓ find_nonfinite")
    assert result.module_calls == 6 and result.gradients_checked > 0
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert all(p.grad is grad and torch.equal(grad, copy) for p, (grad, copy) in zip(model.parameters(), grads))
    assert [m.training for m in model.modules()] == modes
    assert torch.equal(torch.random.get_rng_state(), random_state)
    assert hooks_left(model) == 0
    assert find_nonfinite(model, mse, batch).loss == result.loss  # same dropout, same statistics

    def failing(model, batch):
        model(batch[0])
        raise RuntimeError("a bug in loss_fn")

    with pytest.raises(RuntimeError, match="a bug in loss_fn"):
        find_nonfinite(model, failing, batch)
    assert hooks_left(model) == 0 and [m.training for m in model.modules()] == modes
    assert all(p.grad is grad for p, (grad, _) in zip(model.parameters(), grads))


def test_find_nonfinite_on_bandsplit_and_silence():
    from tpsep.losses import bandsplit_loss
    from tpsep.models.bandsplit import BandSplit, BandSplitConfig

    torch.manual_seed(0)
    model = BandSplit(BandSplitConfig(N=8, L=1, H=8), verbose=False)
    silence = (torch.zeros(1, 1, 8000), torch.zeros(1, 1, 1, 8000))  # 0.5 s at 16 kHz

    def normalised_l1(model, batch):  # scale-invariant by hand: 0 / 0 on silence
        mixture, sources = batch
        estimate = model(mixture)
        return (estimate / estimate.std() - sources / sources.std()).abs().mean()

    def library_loss(model, batch):
        mixture, sources = batch
        return bandsplit_loss(model(mixture), sources)

    by_hand = find_nonfinite(model, normalised_l1, silence)
    assert np.isnan(by_hand.loss) and by_hand.first_nonfinite_output is None
    assert [f.check for f in by_hand.findings] == ["loss"] and "loss_fn made it" in str(by_hand)

    library = find_nonfinite(model, library_loss, silence)
    assert library.loss == 0 and library.ok
    assert library.first_nonfinite_output is None and library.first_nonfinite_gradient is None
    assert library.nonfinite_parameter_grads == []

    class HandNorm(nn.Module):  # a LayerNorm without its eps
        def forward(self, x):
            return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True)

    model.band_split.norms[3] = HandNorm()
    in_a_band = find_nonfinite(model, library_loss, silence)
    assert in_a_band.first_nonfinite_output == "band_split.norms.3"
    assert (in_a_band.first_nonfinite_output_inputs[0].min, in_a_band.first_nonfinite_output_inputs[0].max) == (0, 0)
    assert "band_split.norms.3 (HandNorm)" in str(in_a_band)


def test_find_nonfinite_rejects_bad_arguments():
    model = nn.Linear(4, 1)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module.*got function"):
        find_nonfinite(mse, model, regression_batch())
    with pytest.raises(TypeError, match="loss_fn must be a function.*got str"):
        find_nonfinite(model, "mse", regression_batch())
    with pytest.raises(TypeError, match=r"scalar tensor, got float: return the tensor, not loss.item\(\)"):
        find_nonfinite(model, lambda m, b: mse(m, b).item(), regression_batch())
    with pytest.raises(ValueError, match=r"shape \(5, 1\).*\.mean\(\)"):
        find_nonfinite(model, lambda m, b: (m(b[0]) - b[1]) ** 2, regression_batch())
    assert hooks_left(model) == 0


def test_the_trainers_nan_guard_points_to_find_nonfinite():
    from tpsep.train import NAN_ADVICE, NonFiniteError, check_loss

    with pytest.raises(NonFiniteError, match=r"tpsep\.diagnose\.find_nonfinite\(model, loss_fn, batch\)"):
        check_loss(torch.tensor(float("nan")), 3, regression_batch(), nn.Linear(4, 1))
    assert "check_batch" not in NAN_ADVICE
