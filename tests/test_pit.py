"""SI-SNR and utterance-level permutation-invariant training (tpsep.losses)."""

import itertools

import pytest
import torch

from tpsep.losses import apply_permutation, pairwise_si_snr, pit_si_snr, pit_si_snr_loss, si_snr
from tpsep.metrics import si_sdr

torch.set_num_threads(1)


def noisy(references, snr_db, generator):
    noise = torch.randn(references.shape, generator=generator)
    noise = noise * references.norm(dim=-1, keepdim=True) / noise.norm(dim=-1, keepdim=True)
    return references + noise * 10 ** (-snr_db / 20)


def test_si_snr_is_scale_invariant_and_matches_the_definition():
    g = torch.Generator().manual_seed(0)
    s, e = torch.randn(3, 500, generator=g), torch.randn(3, 500, generator=g)
    e = s + 0.3 * e
    s0, e0 = s - s.mean(-1, keepdim=True), e - e.mean(-1, keepdim=True)
    target = (e0 * s0).sum(-1, keepdim=True) / (s0**2).sum(-1, keepdim=True) * s0
    expected = 10 * torch.log10((target**2).sum(-1) / ((e0 - target) ** 2).sum(-1))
    torch.testing.assert_close(si_snr(e, s), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(si_snr(7.5 * e + 0.2, s), expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(si_snr(e, s), si_sdr(e, s))  # one quantity, one implementation


@pytest.mark.parametrize("C", [2, 3, 4])
def test_a_permuted_estimate_scores_the_same_as_the_unpermuted_one(C):
    g = torch.Generator().manual_seed(C)
    references = torch.randn(5, C, 800, generator=g)
    estimates = noisy(references, 12.0, g)
    straight, identity = pit_si_snr(estimates, references)
    assert (identity == torch.arange(C)).all()
    for order in itertools.permutations(range(C)):
        shuffled = estimates[:, list(order)]
        score, permutation = pit_si_snr(shuffled, references)
        torch.testing.assert_close(score, straight)
        torch.testing.assert_close(apply_permutation(shuffled, permutation), estimates)


def test_perfect_permuted_estimates_score_very_high():
    g = torch.Generator().manual_seed(1)
    references = torch.randn(4, 2, 1000, generator=g)
    score, permutation = pit_si_snr(references.flip(1), references)
    assert (score > 60).all()
    assert (permutation == torch.tensor([1, 0])).all()


def test_pit_picks_the_best_permutation_per_utterance():
    g = torch.Generator().manual_seed(2)
    references = torch.randn(2, 2, 1000, generator=g)
    estimates = noisy(references, 20.0, g)
    estimates[1] = estimates[1].flip(0)  # only the second utterance is swapped
    _, permutation = pit_si_snr(estimates, references)
    assert permutation.tolist() == [[0, 1], [1, 0]]


def test_loss_is_minus_the_reported_si_snr():
    g = torch.Generator().manual_seed(3)
    references = torch.randn(3, 2, 600, generator=g)
    estimates = noisy(references, 10.0, g)
    loss = pit_si_snr_loss(estimates, references)
    score, _ = pit_si_snr(estimates, references)
    assert loss.dim() == 0
    torch.testing.assert_close(loss, -score.mean())
    assert 9.0 < score.mean() < 11.0  # the 10 dB of added noise, reported as a positive number
    assert loss < 0


def test_loss_gradient_improves_the_estimate():
    g = torch.Generator().manual_seed(4)
    references = torch.randn(2, 2, 400, generator=g)
    estimates = noisy(references, 0.0, g).requires_grad_()
    loss = pit_si_snr_loss(estimates, references)
    loss.backward()
    with torch.no_grad():
        assert pit_si_snr_loss(estimates - 0.01 * estimates.grad / estimates.grad.norm(), references) < loss


def test_pairwise_matrix_and_channels():
    g = torch.Generator().manual_seed(5)
    references = torch.randn(2, 3, 2, 300, generator=g)  # (batch, C, channels, samples)
    estimates = noisy(references, 5.0, g)
    scores = pairwise_si_snr(estimates, references)
    assert scores.shape == (2, 3, 3)
    torch.testing.assert_close(scores[0, 1, 2], si_snr(estimates[0, 1], references[0, 2]).mean())
    # the diagonal (right pairs) beats every wrong pair
    assert (scores.diagonal(dim1=1, dim2=2).min(-1).values > scores.masked_fill(torch.eye(3, dtype=bool), -1e9).amax((1, 2))).all()


def test_shape_mismatch_is_a_clear_error():
    with pytest.raises(ValueError, match="same shape"):
        pit_si_snr(torch.randn(2, 2, 100), torch.randn(2, 3, 100))
    with pytest.raises(ValueError, match="batch, sources, samples"):
        pit_si_snr(torch.randn(2, 100), torch.randn(2, 100))
