"""Waveform and STFT losses of the band-split models: auraloss agreement, shapes, silence, bf16."""

import pytest
import torch

from tpsep.losses import (
    BS_ROFORMER_RESOLUTIONS,
    PWG_RESOLUTIONS,
    bandsplit_loss,
    complex_stft_l1_loss,
    multi_resolution_stft_loss,
    waveform_l1_loss,
)

torch.set_num_threads(1)
LOSSES = [waveform_l1_loss, multi_resolution_stft_loss, complex_stft_l1_loss, bandsplit_loss]


def noise(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def pair(*shape):
    target = noise(*shape, seed=1)
    return 0.6 * target + 0.2 * noise(*shape, seed=2), target


@pytest.mark.parametrize("resolutions", [PWG_RESOLUTIONS, ((256, 64, 256), (128, 32, 100))])
def test_multi_resolution_stft_loss_matches_auraloss(resolutions):
    auraloss = pytest.importorskip("auraloss")
    estimate, target = pair(3, 1, 8000)
    fft_sizes, hops, windows = (list(column) for column in zip(*resolutions))
    reference = auraloss.freq.MultiResolutionSTFTLoss(fft_sizes=fft_sizes, hop_sizes=hops, win_lengths=windows,
                                                      w_sc=1.0, w_log_mag=1.0, w_lin_mag=0.0, w_phs=0.0)
    assert multi_resolution_stft_loss(estimate, target, resolutions).item() == pytest.approx(
        reference(estimate, target).item(), rel=1e-5)


def test_complex_stft_l1_is_l1_on_real_and_imaginary_parts():
    estimate, target = pair(2, 4000)
    window = torch.hann_window(256)
    E, T = (torch.stft(x, 256, 64, window=window, return_complex=True) for x in (estimate, target))
    expected = (E.real - T.real).abs().mean() + (E.imag - T.imag).abs().mean()
    assert complex_stft_l1_loss(estimate, target, ((256, 64, 256),)).item() == pytest.approx(expected.item(), rel=1e-6)
    # the band-split loss is its sum with the waveform L1, weight 1 (BSRNN with one resolution)
    assert bandsplit_loss(estimate, target, ((256, 64, 256),)).item() == pytest.approx(
        (expected + (estimate - target).abs().mean()).item(), rel=1e-6)
    assert len(BS_ROFORMER_RESOLUTIONS) == 5 and {hop for _, hop, _ in BS_ROFORMER_RESOLUTIONS} == {147}


@pytest.mark.parametrize("loss", LOSSES)
def test_both_layouts_are_accepted_and_agree(loss):
    estimate, target = pair(2, 2, 1, 8200)  # (batch, sources, channels, samples)
    flat = loss(estimate.reshape(4, -1), target.reshape(4, -1))  # (batch, samples)
    assert loss(estimate, target).item() == pytest.approx(flat.item(), rel=1e-6)
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("loss", LOSSES)
def test_mismatched_shapes_are_a_clear_error(loss):
    estimate, target = pair(2, 2, 1, 8200)
    with pytest.raises(ValueError, match=r"same shape.*\(2, 2, 1, 8200\).*\(2, 1, 8200\)"):
        loss(estimate, target[:, 0])
    with pytest.raises(ValueError, match=r"same shape"):
        loss(estimate[..., :8000], target)


def test_a_signal_shorter_than_a_resolution_is_a_clear_error():
    estimate, target = pair(1, 1000)
    with pytest.raises(ValueError, match=r"1000 samples.*n_fft 4096.*resolutions"):
        bandsplit_loss(estimate, target)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("silent", ["both", "target", "estimate"])
def test_silence_gives_a_finite_loss_and_finite_gradients(loss, silent):
    estimate, target = pair(2, 8200)
    if silent in ("both", "estimate"):
        estimate = torch.zeros_like(estimate)
    if silent in ("both", "target"):
        target = torch.zeros_like(target)
    estimate.requires_grad_(True)
    value = loss(estimate, target)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(estimate.grad).all()
    if silent == "both":
        assert value.item() == 0.0


@pytest.mark.parametrize("loss", LOSSES)
def test_stfts_run_in_float32_under_bf16_autocast(loss):
    estimate, target = (x.bfloat16() for x in pair(2, 8200))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(estimate, target)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert value.item() == pytest.approx(loss(estimate.float(), target.float()).item(), rel=1e-5)
