"""Conv-TasNet: sizes from the paper, receptive field, shapes, causality, norms, training command."""

import argparse
import dataclasses
import json

import pytest
import torch
import torch.nn as nn

from tpsep.models.convtasnet import (
    COURSE,
    PAPER_BEST,
    PAPER_SMALL,
    ConvTasNet,
    ConvTasNetConfig,
    STFTMaskNet,
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
    assert f"ConvTasNet: {model.num_parameters():,} parameters" in capsys.readouterr().out
    ConvTasNet(COURSE)
    assert f"ConvTasNet: {ConvTasNet(COURSE, verbose=False).num_parameters() / 1e6:.2f}M parameters" \
        in capsys.readouterr().out


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
        assert model(torch.randn(3, samples)).shape == (3, TINY.C, samples)   # the paper's mono view
    assert model(torch.randn(2, 1, 777)).shape == (2, TINY.C, 1, 777)          # the separator interface
    assert model(torch.randn(2, 2, 777)).shape == (2, TINY.C, 2, 777)          # stereo: each channel on its own


def test_stereo_channels_are_separated_on_their_own():
    torch.manual_seed(0)
    model = ConvTasNet(TINY, verbose=False).eval()
    left, right = torch.randn(1, 1000), torch.randn(1, 1000)
    with torch.no_grad():
        both = model(torch.stack([left, right], dim=1))
        assert torch.allclose(both[:, :, 1], model(right), atol=1e-5)


def test_bad_input_is_a_clear_error():
    model = ConvTasNet(TINY, verbose=False)
    with pytest.raises(ValueError, match=r"\(batch, channels, samples\)"):
        model(torch.randn(2, 2, 2, 1000))
    with pytest.raises(ValueError, match="transpose"):
        model(torch.randn(2, 1000, 2))
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


def _toy_tracks(count, seed):
    """Two 'speakers': harmonic tones of random pitch, 8 kHz, 1.2 s."""
    import numpy as np

    from tpsep.data import memory_track

    rng = np.random.default_rng(seed)
    t = np.arange(9600) / 8000
    tracks = []
    for i in range(count):
        s1 = sum(np.sin(2 * np.pi * k * rng.uniform(100, 150) * t) / k for k in (1, 2, 3))
        s2 = sum(np.sin(2 * np.pi * k * rng.uniform(200, 300) * t) / k for k in (1, 2, 3))
        s1, s2 = (0.2 * s1[None]).astype("float32"), (0.2 * s2[None]).astype("float32")
        tracks.append(memory_track(f"toy{seed}_{i}", 8000, s1 + s2, {"s1": s1, "s2": s2}))
    return tracks


@pytest.mark.parametrize("kind, options", [("convtasnet", ["N=16", "B=8", "H=16", "Sc=8", "X=2", "R=1"]),
                                           ("stft_mask", ["hidden=8"])])
def test_train_command_writes_a_checkpoint_that_evaluate_understands(tmp_path, monkeypatch, kind, options):
    import tpsep.data
    from tpsep import evaluation
    from tpsep.checkpoints import load_separator
    from tpsep.cli import main
    from tpsep.separate import track_separator

    splits = {"train": _toy_tracks(4, 0), "valid": _toy_tracks(2, 1), "test": _toy_tracks(2, 2)}
    monkeypatch.setattr(tpsep.data, "load_dataset", lambda name, split="train", **kw: splits[split])
    assert main(["train", kind, "--max-steps", "2", "--batch-size", "2", "--out", str(tmp_path), "--no-progress",
                 "--json", str(tmp_path / "train.json"), "--seconds", "0.5",
                 *sum((["--option", o] for o in options), [])]) == 0
    assert json.loads((tmp_path / "train.json").read_text())["steps"] == 2
    model = load_separator(str(tmp_path / "last.pt"))
    assert isinstance(model, {"convtasnet": ConvTasNet, "stft_mask": STFTMaskNet}[kind])
    if kind == "convtasnet":
        assert model.config.N == 16 and model.config.C == 2

    estimates = track_separator(model)(splits["test"][0])
    assert sorted(estimates) == ["s1", "s2"] and estimates["s1"].shape == splits["test"][0].mixture.shape

    eval_parser = argparse.ArgumentParser()
    evaluation.add_evaluate_command(eval_parser.add_subparsers())
    eval_args = eval_parser.parse_args(["evaluate", str(tmp_path / "last.pt"), "--dataset", "speech",
                                        "--metric", "si_sdr", "--json", str(tmp_path / "eval.json")])
    results = evaluation.evaluate_from_args(eval_args)
    assert results["tracks"] == 2 and "s1" in next(iter(results["summary"].values()))
    assert next(iter(results["summary"])).startswith(kind)   # the row is labelled with the model, not "last"


def test_an_unknown_option_is_a_clear_error(capsys):
    from tpsep.cli import main

    assert main(["train", "convtasnet", "--option", "Q=3", "--max-steps", "1"]) == 2
    assert "unknown config key(s) ['Q']" in capsys.readouterr().err


def test_separator_matches_outputs_to_speakers():
    from tpsep.separate import track_separator

    track = _toy_tracks(1, 3)[0]

    class Oracle(nn.Module):  # returns the true sources, swapped
        def __init__(self):
            super().__init__()
            self.dummy = nn.Parameter(torch.zeros(1))
            self.config = ConvTasNetConfig(C=2)

        def forward(self, mixture):
            return torch.stack([torch.from_numpy(track.sources[s]) for s in ("s2", "s1")])[None]

    aligned = track_separator(Oracle())(track)
    raw = track_separator(Oracle(), align=False)(track)
    assert torch.allclose(torch.from_numpy(aligned["s1"]), torch.from_numpy(track.sources["s1"]))
    assert torch.allclose(torch.from_numpy(raw["s1"]), torch.from_numpy(track.sources["s2"]))
