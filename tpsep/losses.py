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


# ---- waveform and STFT losses (band-split models) ----
#
# BSRNN (Luo & Yu 2023) is trained on the sum of two L1 terms with equal weights: one on the
# waveform, one on the real and imaginary parts of the STFT (at the model's own resolution).
# BS-RoFormer (Lu et al. 2024) keeps the waveform L1 and takes the STFT L1 at five resolutions,
# windows of 4096, 2048, 1024, 512 and 256 samples with a hop of 147 at 44.1 kHz, summed with
# weight 1 (as in lucidrains' BS-RoFormer implementation). :func:`bandsplit_loss` is that sum.
#
# The other classic spectral loss, the multi-resolution STFT loss of Yamamoto et al. (2020,
# Parallel WaveGAN), compares magnitudes only: spectral convergence plus the L1 distance of log
# magnitudes, averaged over three resolutions (n_fft, hop, window) = (1024, 120, 600),
# (2048, 240, 1200), (512, 50, 240). :func:`multi_resolution_stft_loss` is it, checked against
# auraloss's MultiResolutionSTFTLoss with the same settings.
#
# All of them accept estimates and targets of shape (batch, sources, channels, samples) or
# (batch, samples) (any (..., samples) in fact), compute their STFTs in float32 with autocast
# off (bf16 has no complex type), and stay finite, gradients included, on silent inputs.

PWG_RESOLUTIONS = ((1024, 120, 600), (2048, 240, 1200), (512, 50, 240))  # (n_fft, hop, window)
BS_ROFORMER_RESOLUTIONS = tuple((size, 147, size) for size in (4096, 2048, 1024, 512, 256))


def _signal_pair(estimate: torch.Tensor, target: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check two signals ``(..., samples)`` of one shape; return them as float32 ``(signals, samples)``."""
    for label, x in (("estimate", estimate), ("target", target)):
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: the {label} must be a torch tensor, got {type(x).__name__}")
    if estimate.shape != target.shape or estimate.dim() < 2:
        raise ValueError(f"{name} needs estimate and target of the same shape, (batch, sources, channels, samples) "
                         f"or (batch, samples); got estimate {tuple(estimate.shape)} and target {tuple(target.shape)}")
    return estimate.float().reshape(-1, estimate.shape[-1]), target.float().reshape(-1, target.shape[-1])


def _stft_float32(x: torch.Tensor, n_fft: int, hop: int, window: int, name: str) -> torch.Tensor:
    """Centred STFT of ``(signals, samples)`` with a periodic Hann window of ``window`` samples
    (zero-padded to ``n_fft``), in float32: complex ``(signals, n_fft // 2 + 1, frames)``."""
    if x.shape[-1] <= n_fft // 2:
        raise ValueError(f"{name}: signals of {x.shape[-1]} samples are too short for the resolution with "
                         f"n_fft {n_fft} (needs more than {n_fft // 2}); use longer chunks or pass "
                         "resolutions without that one")
    with torch.autocast(device_type=x.device.type, enabled=False):
        win = torch.hann_window(window, device=x.device, dtype=torch.float32)
        return torch.stft(x.float(), n_fft, hop_length=hop, win_length=window, window=win,
                          center=True, return_complex=True)


def waveform_l1_loss(estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error between the waveforms, ``(..., samples)`` each: a scalar."""
    estimate, target = _signal_pair(estimate, target, "waveform_l1_loss")
    return (estimate - target).abs().mean()


def multi_resolution_stft_loss(estimate: torch.Tensor, target: torch.Tensor,
                               resolutions=PWG_RESOLUTIONS, eps: float = 1e-8) -> torch.Tensor:
    """Multi-resolution STFT loss (Yamamoto et al. 2020): for each ``(n_fft, hop, window)``,

        spectral convergence  ||  |S| - |S_hat|  ||_F / || |S| ||_F   (norms over the whole batch)
        + log-magnitude L1    mean | log |S| - log |S_hat| |

    averaged over the resolutions. Magnitudes are ``sqrt(max(re^2 + im^2, eps))``: the floor keeps
    the log, the division and their gradients finite when a signal is silent.

    Args:
        estimate, target: ``(batch, sources, channels, samples)`` or ``(batch, samples)``, same shape.
        resolutions: ``(n_fft, hop, window)`` triples; default Parallel WaveGAN's three.

    Returns:
        a scalar tensor (0 for identical signals).
    """
    estimate, target = _signal_pair(estimate, target, "multi_resolution_stft_loss")
    total = 0.0
    for n_fft, hop, window in resolutions:
        magnitudes = []
        for x in (estimate, target):
            X = _stft_float32(x, n_fft, hop, window, "multi_resolution_stft_loss")
            magnitudes.append(torch.sqrt(torch.clamp(X.real ** 2 + X.imag ** 2, min=eps)))
        est_mag, ref_mag = magnitudes
        convergence = torch.linalg.vector_norm(ref_mag - est_mag) / torch.linalg.vector_norm(ref_mag)
        log_l1 = (torch.log(ref_mag) - torch.log(est_mag)).abs().mean()
        total = total + convergence + log_l1
    return total / len(resolutions)


def complex_stft_l1_loss(estimate: torch.Tensor, target: torch.Tensor,
                         resolutions=BS_ROFORMER_RESOLUTIONS) -> torch.Tensor:
    """L1 on the real and imaginary parts of the STFT, ``mean |Re dS| + mean |Im dS|``, summed over
    the ``(n_fft, hop, window)`` resolutions (BSRNN: one, the model's; BS-RoFormer: five).

    Args:
        estimate, target: ``(batch, sources, channels, samples)`` or ``(batch, samples)``, same shape.

    Returns:
        a scalar tensor.
    """
    estimate, target = _signal_pair(estimate, target, "complex_stft_l1_loss")
    total = 0.0
    for n_fft, hop, window in resolutions:
        difference = (_stft_float32(estimate, n_fft, hop, window, "complex_stft_l1_loss")
                      - _stft_float32(target, n_fft, hop, window, "complex_stft_l1_loss"))
        total = total + difference.real.abs().mean() + difference.imag.abs().mean()
    return total


def bandsplit_loss(estimate: torch.Tensor, target: torch.Tensor,
                   resolutions=BS_ROFORMER_RESOLUTIONS, stft_weight: float = 1.0) -> torch.Tensor:
    """The band-split papers' training loss: waveform L1 + ``stft_weight`` x complex STFT L1.

    With the default five resolutions it is BS-RoFormer's loss; with
    ``resolutions=((n_fft, hop, n_fft),)`` of the model it is BSRNN's. Both papers weigh the two
    terms equally (``stft_weight=1``). The resolutions are in samples, chosen at 44.1 kHz: at 16 kHz
    the same windows simply last 2.8 times longer.

    Args:
        estimate, target: ``(batch, sources, channels, samples)`` or ``(batch, samples)``, same shape.

    Returns:
        a scalar tensor.
    """
    return waveform_l1_loss(estimate, target) + stft_weight * complex_stft_l1_loss(estimate, target, resolutions)
