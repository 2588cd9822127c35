"""Training losses.

The U-Net is trained on the *masked magnitude*, not on the mask: the loss
compares ``mask * X`` with the target magnitude ``Y``, so loud bins (where a
wrong mask costs audible energy) weigh more than silent ones, and no ideal mask
has to be made up where ``X`` is zero.
"""

from __future__ import annotations

import torch

# ---- magnitude losses (U-Net) ----


def l1_mask_loss(mask: torch.Tensor, mixture_mag: torch.Tensor, target_mag: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between the masked mixture and the target (Jansson et al. 2017).

    ``L = mean | mask * X - Y |``

    Args:
        mask: network output in [0, 1], ``(batch, freq, frames)``.
        mixture_mag: the mixture magnitude X the mask multiplies, same shape.
        target_mag: the source magnitude Y, same shape.

    Returns:
        a scalar tensor.
    """
    if not (mask.shape == mixture_mag.shape == target_mag.shape):
        raise ValueError(
            "l1_mask_loss needs mask, mixture and target of the same shape (batch, freq, frames); got "
            f"mask {tuple(mask.shape)}, mixture {tuple(mixture_mag.shape)}, target {tuple(target_mag.shape)}")
    return (mask * mixture_mag - target_mag).abs().mean()


# ---- SI-SNR and permutation-invariant training (Conv-TasNet) ----
#
# Conv-TasNet is trained on the waveform with the scale-invariant SNR (SI-SNR,
# Luo & Mesgarani 2019). It is the same number as the SI-SDR of Le Roux et al.
# (2019), so we reuse :func:`tpsep.metrics.si_sdr` rather than write it twice.
# The network outputs its C sources in no particular order: which output is
# "speaker 1" is arbitrary. Utterance-level permutation-invariant training (PIT,
# Kolbaek et al. 2017) scores every assignment of outputs to references and
# trains on the best one.

import itertools  # noqa: E402  (kept in this section: the file's top belongs to the U-Net part)


def si_snr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """SI-SNR in dB (zero-mean signals), ``(..., samples) -> (...)``. Higher is better."""
    from tpsep.metrics import si_sdr

    return si_sdr(estimate, reference, zero_mean=True)


def _check_sources(estimates: torch.Tensor, references: torch.Tensor, name: str) -> None:
    if estimates.shape != references.shape or estimates.dim() not in (3, 4):
        raise ValueError(f"{name} needs estimates and references of the same shape (batch, sources, samples) "
                         f"or (batch, sources, channels, samples); got {tuple(estimates.shape)} and "
                         f"{tuple(references.shape)}")


def pairwise_si_snr(estimates: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """SI-SNR of every estimate against every reference.

    Args:
        estimates, references: ``(batch, C, samples)`` or ``(batch, C, channels, samples)``.

    Returns:
        ``(batch, C, C)``: entry ``[b, i, j]`` scores estimate ``i`` against reference ``j``
        (averaged over channels).
    """
    _check_sources(estimates, references, "pairwise_si_snr")
    C = estimates.shape[1]
    est = estimates.unsqueeze(2).expand(-1, -1, C, *estimates.shape[2:])
    ref = references.unsqueeze(1).expand(-1, C, -1, *references.shape[2:])
    scores = si_snr(est, ref)  # (batch, C, C) or (batch, C, C, channels)
    return scores.mean(-1) if scores.dim() == 4 else scores


def pit_si_snr(estimates: torch.Tensor, references: torch.Tensor):
    """Utterance-level PIT: the best assignment of estimates to references, per utterance.

    All ``C!`` permutations are scored (fine for the 2 or 3 speakers of the course).

    Args:
        estimates, references: ``(batch, C, samples)`` or ``(batch, C, channels, samples)``.

    Returns:
        ``(si_snr, permutation)``: ``si_snr`` ``(batch,)`` is the mean SI-SNR in dB over the
        C sources under the best permutation; ``permutation`` ``(batch, C)`` long says which
        estimate goes with each reference: estimate ``permutation[b, j]`` matches reference ``j``.
    """
    scores = pairwise_si_snr(estimates, references)
    C = scores.shape[1]
    permutations = torch.tensor(list(itertools.permutations(range(C))), device=scores.device)  # (C!, C)
    # total[b, p] = mean_j scores[b, permutations[p, j], j]
    total = scores[:, permutations, torch.arange(C, device=scores.device)].mean(-1)  # (batch, C!)
    best, index = total.max(dim=1)
    return best, permutations[index]


def apply_permutation(estimates: torch.Tensor, permutation: torch.Tensor) -> torch.Tensor:
    """Reorder the estimates so that ``estimates[:, j]`` matches reference ``j``.

    Args:
        estimates: ``(batch, C, ...)``; permutation: ``(batch, C)`` from :func:`pit_si_snr`.
    """
    index = permutation.view(*permutation.shape, *([1] * (estimates.dim() - 2))).expand_as(estimates)
    return estimates.gather(1, index)


def pit_si_snr_loss(estimates: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """The Conv-TasNet training loss: minus the PIT SI-SNR, averaged over the batch (a scalar).

    A loss of -10 means 10 dB SI-SNR; report ``-loss`` (or :func:`pit_si_snr`) as the metric.
    """
    best, _ = pit_si_snr(estimates, references)
    return -best.mean()
