"""Exercises of notebook 05 (Conv-TasNet): encoder, decoder, one TCN block, receptive field, PIT SI-SNR."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from tpsep import losses
from tpsep.exercises import CheckFailed, compare, register
from tpsep.models import convtasnet


def encode(mixture, basis):
    """The Conv-TasNet encoder: a 1-D convolution with stride L/2, then ReLU.

    mixture ``(batch, samples)``, basis ``(N, L)`` -> ``(batch, N, frames)``,
    ``frames = 1 + (samples - L) // (L // 2)``.
    """
    return F.relu(F.conv1d(mixture[:, None], basis[:, None], stride=basis.shape[1] // 2))


def decode(weights, basis):
    """The Conv-TasNet decoder: overlap-add of the basis signals (a transposed convolution).

    weights ``(batch, N, frames)``, basis ``(N, L)`` -> ``(batch, (frames - 1) * L // 2 + L)``.
    """
    return F.conv_transpose1d(weights, basis[:, None], stride=basis.shape[1] // 2)[:, 0]


def receptive_field_frames(P, X, R):
    """Encoder frames seen by one output frame of a TCN with R repeats of X blocks of kernel P."""
    return convtasnet.receptive_field(convtasnet.ConvTasNetConfig(P=P, X=X, R=R)).frames


def pit_si_snr(estimates, references):
    """Utterance-level PIT SI-SNR in dB, ``(batch, C, samples)`` twice -> ``(batch,)``: for each
    utterance, the mean SI-SNR over the C sources under the best assignment of estimates to references."""
    best, _permutation = losses.pit_si_snr(estimates, references)
    return best


def _torch(rng, *shape):
    return torch.from_numpy(rng.standard_normal(shape).astype("float32"))


def _encoder_inputs(rng):
    L = int(rng.choice([4, 8, 16]))
    N = int(rng.integers(3, 20))
    samples = int(rng.integers(3 * L, 300))
    return (_torch(rng, int(rng.integers(1, 4)), samples), _torch(rng, N, L)), {}


def _decoder_inputs(rng):
    L = int(rng.choice([4, 8, 16]))
    N, frames = int(rng.integers(3, 20)), int(rng.integers(2, 40))
    return (_torch(rng, int(rng.integers(1, 4)), N, frames).abs(), _torch(rng, N, L)), {}


def _pit_inputs(rng, C):
    """Estimates made of the references, leakage and noise, in a random order per utterance.

    The batch always holds an utterance in the references' order and one in another order,
    so that neither ignoring the permutation nor choosing one for the whole batch passes.
    The leakage and the noise vary from estimate to estimate, so that a noisy estimate can
    lose to a leaky one for every reference: letting each reference pick its best estimate,
    which may pick the same estimate twice, is no permutation, and fails.
    """
    batch = int(rng.integers(4, 7))
    samples = int(rng.integers(200, 400))
    references = rng.standard_normal((batch, C, samples))
    leakage = rng.uniform(0.0, 1.0, size=(batch, C, C)) * (1 - np.eye(C))  # estimate i leaks reference j
    noise = rng.uniform(0.05, 3.0, size=(batch, C, 1)) * rng.standard_normal((batch, C, samples))
    estimates = (np.eye(C) + leakage) @ references + noise
    estimates *= rng.uniform(0.2, 3.0, size=(batch, C, 1))  # SI-SNR ignores the scale: so must the attempt
    orders = [rng.permutation(C) for _ in range(batch)]
    orders[0] = np.arange(C)
    while (orders[1] == np.arange(C)).all():
        orders[1] = rng.permutation(C)
    estimates = np.stack([estimates[b, order] for b, order in enumerate(orders)])
    as_torch = lambda a: torch.from_numpy(a.astype("float32"))  # noqa: E731
    return as_torch(estimates), as_torch(references)


def _test_pit(student_function, reference_function, rng):
    for C in (2, 3):  # two speakers as in the notebook, and three: an attempt written for C = 2 only fails
        estimates, references = _pit_inputs(rng, C)
        expected = reference_function(estimates, references)
        got = student_function(estimates, references)
        compare(got, expected, atol=1e-3, rtol=1e-4, where=f"pit_si_snr on (batch={len(estimates)}, C={C}, samples)")


def _test_tcn_block(student_class, reference_class, rng):
    for norm, causal in (("gLN", False), ("cLN", True)):  # both paddings, every trial
        B, H, Sc = (int(v) for v in rng.integers(2, 12, size=3))
        P, dilation = int(rng.choice([2, 3, 5])), int(rng.choice([1, 2, 4, 8]))
        with torch.random.fork_rng():
            torch.manual_seed(int(rng.integers(2**31)))
            reference = reference_class(B, H, Sc, P, dilation, norm=norm, causal=causal)
            student = student_class(B, H, Sc, P, dilation, norm=norm, causal=causal)
            for p in reference.parameters():  # move every weight away from its default init
                p.data.normal_(0, 0.5)
        try:
            student.load_state_dict(reference.state_dict())
        except RuntimeError as error:
            raise CheckFailed(f"keep the layers created in __init__ as they are ({error})") from None
        x = _torch(rng, 2, B, int(rng.integers(20, 60)))
        with torch.no_grad():
            expected, got = reference(x), student(x)
        where = f"TCNBlock(B={B}, H={H}, Sc={Sc}, P={P}, dilation={dilation}, norm={norm!r}, causal={causal})"
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailed(f"{where}: forward must return a pair (x + residual, skip), got {type(got).__name__}")
        compare(got, expected, atol=1e-4, rtol=1e-4, where=where)


register("05.encode", reference=encode, make_inputs=_encoder_inputs,
         hint="cut frames of L samples every L // 2 (x.unfold(-1, L, L // 2)), multiply by basis.T, then ReLU; "
              "return (batch, N, frames)")
register("05.decode", reference=decode, make_inputs=_decoder_inputs,
         hint="each frame becomes weights[:, :, k] @ basis, a length-L signal added at sample k * (L // 2)")
register("05.receptive_field_frames", reference=receptive_field_frames,
         make_inputs=lambda rng: ((int(rng.choice([2, 3, 5])), int(rng.integers(1, 11)),
                                   int(rng.integers(2, 5))), {}),  # R >= 2: forgetting the repeats fails
         hint="a kernel of size P with dilation d adds (P - 1) * d frames; dilations are 1, 2, ..., 2**(X - 1), "
              "repeated R times; and the output frame itself counts once")
register("05.tcn_block", reference=convtasnet.TCNBlock, test=_test_tcn_block,
         hint="conv_in, PReLU, norm; pad (P - 1) * dilation frames (all on the left when causal, else split "
              "in two); depthwise, PReLU, norm; return (x + residual(y), skip(y))", points=3)
register("05.pit_si_snr", reference=pit_si_snr, test=_test_pit, points=3,
         hint="for each permutation p of range(C), score si_snr(estimates[:, list(p)], references).mean(dim=1), "
              "a (batch,) tensor; stack them and keep the maximum over permutations for each utterance")
