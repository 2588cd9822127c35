"""Conv-TasNet: sizes from the paper, receptive field, shapes, causality, norms."""

import dataclasses

import pytest
import torch
import torch.nn as nn

from tpsep.models.convtasnet import (
    COURSE,
    PAPER_BEST,
    PAPER_SMALL,
    ConvTasNet,
    ConvTasNetConfig,
    CumulativeLayerNorm,
    GlobalLayerNorm,
    TCNBlock,
    receptive_field,
)

torch.set_num_threads(1)
TINY = ConvTasNetConfig(N=16, L=8, B=8, H=16, Sc=8, P=3, X=3, R=2)


def test_parameter_counts_match_the_paper():
    # Luo & Mesgarani (2019), Table I: 5.1M and 1.5M parameters
    assert round(ConvTasNet(PAPER_BEST, verbose=False).num_parameters() / 1e6, 1) == 5.1
    assert round(ConvTasNet(PAPER_SMALL, verbose=False).num_parameters() / 1e6, 1) == 1.5


def test_constructor_prints_the_parameter_count(capsys):
    model = ConvTasNet(TINY)
    assert f"{model.num_parameters() / 1e6:.2f}M parameters" in capsys.readouterr().out


@pytest.mark.parametrize("config", [PAPER_BEST, PAPER_SMALL, COURSE, TINY])
def test_receptive_field_formula(config):
    frames = 1 + config.R * sum((config.P - 1) * 2**i for i in range(config.X))
    field = receptive_field(config, rate=8000)
    assert field.frames == frames
    assert field.samples == (frames - 1) * config.L // 2 + config.L
    assert field.ms == pytest.approx(field.samples / 8)


def test_receptive_field_of_the_best_configuration_is_the_papers_1_53_seconds():
    assert receptive_field(PAPER_BEST, rate=8000).ms / 1000 == pytest.approx(1.53, abs=0.005)


def test_receptive_field_matches_the_gradient_of_the_separator():
    """Measure which encoder frames influence one mask frame, with the (global) norms removed."""
    model = ConvTasNet(TINY, verbose=False)
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, (GlobalLayerNorm, CumulativeLayerNorm)):
                setattr(module, child_name, nn.Identity())
    frames, centre = 100, 50
    w = torch.rand(1, TINY.N, frames, requires_grad=True)
    model.masks(w)[0, :, :, centre].sum().backward()
    touched = (w.grad.abs().sum(dim=(0, 1)) > 0).nonzero().flatten()
    assert int(touched.max() - touched.min() + 1) == receptive_field(TINY).frames


def test_output_shape_for_any_length_and_both_input_layouts():
    model = ConvTasNet(TINY, verbose=False)
    for samples in (8, 999, 1000, 1003):
        assert model(torch.randn(3, samples)).shape == (3, TINY.C, samples)
    assert model(torch.randn(2, 1, 777)).shape == (2, TINY.C, 777)


def test_bad_input_is_a_clear_error():
    model = ConvTasNet(TINY, verbose=False)
    with pytest.raises(ValueError, match="mono mixture"):
        model(torch.randn(2, 2, 1000))
    with pytest.raises(ValueError, match="norm"):
        ConvTasNet(dataclasses.replace(TINY, norm="BN"), verbose=False)
    with pytest.raises(ValueError, match="L must be even"):
        ConvTasNet(dataclasses.replace(TINY, L=7), verbose=False)
    with pytest.raises(ValueError, match="mask_activation"):
        ConvTasNet(dataclasses.replace(TINY, mask_activation="tanh"), verbose=False)


@pytest.mark.parametrize("causal, norm", [(True, "cLN"), (False, "gLN")])
def test_causal_model_ignores_the_future(causal, norm):
    torch.manual_seed(0)
    model = ConvTasNet(dataclasses.replace(TINY, causal=causal, norm=norm), verbose=False).eval()
    x = torch.randn(1, 2000)
    changed = x.clone()
    changed[:, 1000:] += torch.randn(1, 1000)
    with torch.no_grad():
        before, after = model(x), model(changed)
    # the frames holding sample 1000 start at sample 1000 - L + 1 at the earliest
    past = slice(0, 1000 - TINY.L)
    if causal:
        torch.testing.assert_close(before[..., past], after[..., past])
    else:
        assert not torch.allclose(before[..., past], after[..., past])


def test_cumulative_norm_uses_only_the_past():
    x = torch.randn(2, 6, 30)
    cumulative, whole = CumulativeLayerNorm(6), GlobalLayerNorm(6)
    for k in (0, 7, 29):
        torch.testing.assert_close(cumulative(x)[..., k], whole(x[..., : k + 1])[..., k], atol=1e-4, rtol=1e-4)


def test_global_norm_has_zero_mean_and_unit_variance_per_utterance():
    y = GlobalLayerNorm(6)(torch.randn(3, 6, 40) * 5 + 2)
    torch.testing.assert_close(y.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(dim=(1, 2), unbiased=False), torch.ones(3), atol=1e-4, rtol=0)


def test_tcn_block_keeps_frames_and_adds_the_residual():
    block = TCNBlock(B=8, H=16, Sc=4, P=3, dilation=4)
    x = torch.randn(2, 8, 50)
    residual, skip = block(x)
    assert residual.shape == (2, 8, 50) and skip.shape == (2, 4, 50)
    nn.init.zeros_(block.residual.weight)
    nn.init.zeros_(block.residual.bias)
    torch.testing.assert_close(block(x)[0], x)


@pytest.mark.parametrize("activation", ["sigmoid", "relu"])
def test_masks_respect_the_activation(activation):
    model = ConvTasNet(dataclasses.replace(TINY, mask_activation=activation), verbose=False)
    m = model.masks(torch.rand(2, TINY.N, 40))
    assert m.shape == (2, TINY.C, TINY.N, 40)
    assert m.min() >= 0
    if activation == "sigmoid":
        assert m.max() <= 1


def test_notebook_exercises_pass_with_the_reference_and_fail_with_a_mistake(capsys):
    from tpsep.exercises import check, get

    for name in ("05.encode", "05.decode", "05.receptive_field_frames", "05.tcn_block"):
        check(name, get(name).reference, seed=1)
        assert capsys.readouterr().out.startswith(f"✓ {name} passed")

    def encode_without_overlap(mixture, basis):  # hop L instead of L/2
        return torch.relu(torch.nn.functional.conv1d(mixture[:, None], basis[:, None], stride=basis.shape[1]))

    class BlockWithoutResidual(TCNBlock):
        def forward(self, x):
            residual, skip = super().forward(x)
            return residual - x, skip

    class AlwaysCentredBlock(TCNBlock):  # forgets the causal padding
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.causal = False

    for name, attempt in (("05.encode", encode_without_overlap), ("05.tcn_block", BlockWithoutResidual),
                          ("05.tcn_block", AlwaysCentredBlock)):
        assert check(name, attempt, seed=2) is get(name).reference
        assert capsys.readouterr().out.startswith(f"✗ {name}")
