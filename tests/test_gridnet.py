"""TF-GridNet: shapes, silence, bf16 autocast, the paper's size, bad input, and a loss that goes down."""

import dataclasses

import pytest
import torch

from tpsep.losses import pit_si_snr_loss
from tpsep.models import parameter_report
from tpsep.models.gridnet import (
    COURSE,
    PAPER,
    TINY,
    TFGridNet,
    parameter_breakdown,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return TFGridNet(TINY, verbose=False)


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("samples", [4000, 4001, 333])
def test_output_is_batch_sources_channels_samples_at_the_input_length(tiny, channels, samples):
    mixture = torch.randn(2, channels, samples)
    assert tiny(mixture).shape == (2, TINY.C, channels, samples)


def test_one_source_for_enhancement():
    model = TFGridNet(dataclasses.replace(TINY, C=1), verbose=False)
    assert model(torch.randn(3, 1, 2001)).shape == (3, 1, 1, 2001)


def test_channels_are_separated_independently(tiny):
    """Stereo = two mono calls: channel 0 of the output only depends on channel 0 of the input."""
    mixture = torch.randn(1, 2, 3000)
    stereo = tiny(mixture)
    for ch in range(2):
        torch.testing.assert_close(stereo[:, :, ch], tiny(mixture[:, ch : ch + 1])[:, :, 0], atol=1e-5, rtol=1e-4)


def test_output_scales_with_the_input(tiny):
    """The mixture is normalised by its std and the scale put back: 10x louder in, 10x louder out."""
    mixture = torch.randn(1, 1, 3000)
    torch.testing.assert_close(tiny(10 * mixture), 10 * tiny(mixture), atol=1e-4, rtol=1e-3)


def test_silent_input_gives_finite_output_and_gradients(tiny):
    mixture = torch.zeros(2, 1, 4000, requires_grad=True)
    estimate = tiny(mixture)
    assert torch.isfinite(estimate).all()
    tiny.zero_grad()
    estimate.sum().backward()
    assert torch.isfinite(mixture.grad).all()
    for name, p in tiny.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


def test_bf16_autocast_forward_and_backward_are_finite(tiny):
    mixture = torch.randn(2, 1, 4000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        estimate = tiny(mixture)
    assert estimate.dtype == torch.float32  # the inverse STFT ran in float32
    assert torch.isfinite(estimate).all()
    tiny.zero_grad()
    estimate.pow(2).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in tiny.parameters())
    # and it is the same model: close to the float32 output, up to bf16 rounding
    reference = tiny(mixture)
    error = (estimate - reference).norm() / reference.norm()
    assert error < 0.05  # about 0.006 when written


def test_paper_parameter_count():
    """The paper reports 14.4M for its WSJ0-2mix model; we count 16.05M (see the note at the end
    of gridnet.py: the gap is in how the paper counts, not in a missing module)."""
    model = TFGridNet(PAPER, verbose=False)
    count = model.num_parameters()
    assert count == parameter_breakdown(PAPER)["total"]
    assert round(count / 1e6, 2) == 16.05
    paper_reported = 14.4e6
    assert abs(count - paper_reported) / paper_reported < 0.12


@pytest.mark.parametrize("config", [COURSE, TINY, dataclasses.replace(TINY, I=3, J=1, C=1)])
def test_parameter_breakdown_matches_the_built_model(config):
    assert parameter_breakdown(config)["total"] == TFGridNet(config, verbose=False).num_parameters()


def test_course_model_is_small():
    assert TFGridNet(COURSE, verbose=False).num_parameters() < 100_000


def test_constructor_prints_the_parameter_count(capsys):
    model = TFGridNet(TINY)
    out = capsys.readouterr().out
    assert out.startswith(parameter_report(model))  # "TFGridNet: 0.01M parameters"
    assert "D 8, B 1, I 2, J 2, H 16, L 2, E 2" in out


def test_wrong_layouts_are_clear_errors(tiny):
    with pytest.raises(ValueError, match=r"\(batch, channels, samples\).*unsqueeze"):
        tiny(torch.randn(2, 4000))  # (batch, samples): the channel axis is missing
    with pytest.raises(ValueError, match="transpose"):
        tiny(torch.randn(2, 4000, 2))  # (batch, samples, channels)
    with pytest.raises(ValueError, match="NaN"):
        tiny(torch.full((1, 1, 4000), float("nan")))


@pytest.mark.parametrize(
    "change, message",
    [({"D": 9, "L": 2}, "multiple of L"), ({"I": 2, "J": 3}, "J <= I"), ({"hop": 100}, "hop"),
     ({"window": "hamming"}, "window"), ({"C": 0}, "C")],
)
def test_bad_configurations_are_clear_errors(change, message):
    with pytest.raises(ValueError, match=message):
        TFGridNet(dataclasses.replace(TINY, **change), verbose=False)


def test_a_few_adam_steps_lower_the_si_snr_loss_on_a_fixed_batch():
    """Overfitting one batch is the first correctness test of any separator."""
    torch.manual_seed(0)
    rate, samples = TINY.rate, 4000
    t = torch.arange(samples) / rate
    # two sources that differ in frequency content: low harmonic tones vs. high-passed noise
    low = sum(torch.sin(2 * torch.pi * f * t + p) for f, p in [(220, 0.0), (330, 1.0), (440, 2.0)])
    high = torch.randn(samples)
    high = high - torch.nn.functional.avg_pool1d(high[None, None], 9, 1, 4)[0, 0]
    sources = torch.stack([torch.stack([low, 3 * high]), torch.stack([0.5 * low, 2 * high])])[:, :, None]
    mixture = sources.sum(1)  # (2, 1, samples); sources (2, 2, 1, samples)

    model = TFGridNet(TINY, verbose=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = pit_si_snr_loss(model(mixture), sources)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 5.0, losses  # at least 5 dB better (about 14 dB when written)


# ---- the exercises of notebook 07 fail on the classic mistakes


def test_notebook_exercises_reject_the_classic_mistakes(capsys):
    import math

    import numpy as np
    import torch.nn.functional as F

    from tpsep import metrics
    from tpsep.exercises import check, get
    from tpsep.models.gridnet import UnfoldedBLSTM

    class DToBeforeI(UnfoldedBLSTM):  # flattens each group as (D, I) instead of (I, D)
        def forward(self, x):
            batch, length, D = x.shape
            padded = self.I + math.ceil(max(length - self.I, 0) / self.J) * self.J
            groups = F.pad(x, (0, 0, 0, padded - length)).unfold(1, self.I, self.J).reshape(batch, -1, self.I * D)
            hidden, _ = self.blstm(groups)
            return self.fold_back(hidden.transpose(1, 2))[..., :length].transpose(1, 2)

    def softmax_over_queries(q, k, v):
        batch, L, T, freqs, _ = v.shape
        q, k, values = q.flatten(3), k.flatten(3), v.flatten(3)
        weights = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(dim=-2)
        return (weights @ values).view(batch, L, T, freqs, -1).permute(0, 2, 3, 1, 4).reshape(batch, T, freqs, -1)

    def mixture_scored_once(estimates, references, mixture):  # the input score of the first source only
        output = metrics.si_sdr(estimates, references).mean(-1)
        input_ = metrics.si_sdr(mixture, references[:, 0])
        return {"input": input_, "output": output, "improvement": output - input_}

    def lag_of_the_mixture(mixture, reference, max_lag):  # the sign the other way round
        correlation = np.correlate(mixture, reference, "full")
        shifts = np.arange(-max_lag, max_lag + 1)
        return int(shifts[np.argmax(np.abs(correlation[len(reference) - 1 + shifts]))])

    for name, attempt in (("07.unfolded_blstm", DToBeforeI), ("07.full_band_attention", softmax_over_queries),
                          ("07.per_sample_improvement", mixture_scored_once), ("07.find_lag", lag_of_the_mixture)):
        assert check(name, attempt, seed=1) is get(name).reference, name
        assert capsys.readouterr().out.startswith(f"✗ {name}")
