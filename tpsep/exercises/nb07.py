"""Exercises of notebook 07 (TF-GridNet): the unfolded BLSTM, one full-band attention step,
the per-sample improvement table, and the lag between a mixture and its reference."""

from __future__ import annotations

import math

import torch

from tpsep import diagnose, metrics
from tpsep.exercises import CheckFailed, compare, register
from tpsep.models import gridnet


def full_band_attention(q, k, v):
    """One full-band attention step of TF-GridNet, for L heads at once.

    Args:
        q, k: ``(batch, L, T, F, E)``: each frame's query and key, E numbers per bin.
        v: ``(batch, L, T, F, V)``: each frame's value, V = D / L numbers per bin.

    Returns:
        ``(batch, T, F, L * V)``: for each frame, the attention-weighted sum of the values of all
        frames, weights ``softmax(q k^T / sqrt(F E))`` over frames; the heads stacked on the last axis.
    """
    batch, L, T, freqs, _ = v.shape
    q, k, values = q.flatten(3), k.flatten(3), v.flatten(3)  # a frame = all its bins
    weights = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).softmax(dim=-1)  # (batch, L, T, T)
    heads = (weights @ values).view(batch, L, T, freqs, -1)
    return heads.permute(0, 2, 3, 1, 4).reshape(batch, T, freqs, -1)


def per_sample_improvement(estimates, references, mixture):
    """SI-SDR of the input and of the output, and the improvement, per item.

    Args:
        estimates, references: ``(batch, sources, samples)``, estimates already in the
            references' order.
        mixture: ``(batch, samples)``.

    Returns:
        dict of three ``(batch,)`` tensors, "input", "output", "improvement" (dB), each the mean
        over the sources.
    """
    output = metrics.si_sdr(estimates, references).mean(-1)
    input_ = metrics.si_sdr(mixture[:, None].expand_as(references), references).mean(-1)
    return {"input": input_, "output": output, "improvement": output - input_}


def find_lag(mixture, reference, max_lag: int) -> int:
    """How many samples ``reference`` is late against ``mixture`` (negative: early), searched within
    ``±max_lag``, by cross-correlation. Both ``(samples,)`` numpy arrays."""
    return diagnose.find_lag(mixture, reference, max_lag)[0]


def _test_unfolded_blstm(student_class, reference_class, rng):
    for _ in range(2):
        D, H = int(rng.integers(2, 6)), int(rng.integers(2, 6))
        I = int(rng.integers(1, 5))  # noqa: E741
        J = int(rng.integers(1, I + 1))
        with torch.random.fork_rng():
            torch.manual_seed(int(rng.integers(2**31)))
            reference = reference_class(D, I, J, H)
            student = student_class(D, I, J, H)
        try:
            student.load_state_dict(reference.state_dict())
        except RuntimeError as error:
            raise CheckFailed(f"keep the layers created in __init__ as they are ({error})") from None
        length = int(rng.integers(I, 20))
        x = torch.from_numpy(rng.standard_normal((2, length, D)).astype("float32"))
        with torch.no_grad():
            expected, got = reference(x), student(x)
        where = f"UnfoldedBLSTM(D={D}, I={I}, J={J}, H={H}) on a sequence of {length}"
        compare(got, expected, atol=1e-5, rtol=1e-4, where=where)


def _attention_inputs(rng):
    batch, L, T, freqs = 2, int(rng.integers(1, 4)), int(rng.integers(2, 9)), int(rng.integers(2, 7))
    E, V = int(rng.integers(1, 5)), int(rng.integers(1, 5))

    def tensor(*shape):
        return torch.from_numpy(rng.standard_normal(shape).astype("float32"))

    return (tensor(batch, L, T, freqs, E), tensor(batch, L, T, freqs, E), tensor(batch, L, T, freqs, V)), {}


def _improvement_inputs(rng):
    batch, sources, samples = int(rng.integers(1, 4)), int(rng.integers(1, 3)), 400
    references = torch.from_numpy(rng.standard_normal((batch, sources, samples)).astype("float32"))
    mixture = references.sum(1) + 0.1 * torch.from_numpy(rng.standard_normal((batch, samples)).astype("float32"))
    estimates = references + 0.3 * torch.from_numpy(rng.standard_normal(references.shape).astype("float32"))
    return (estimates, references, mixture), {}


def _lag_inputs(rng):
    samples, max_lag = int(rng.integers(400, 1200)), int(rng.integers(20, 80))
    lag = int(rng.integers(-max_lag, max_lag + 1))
    source = rng.standard_normal(samples + 2 * max_lag)
    mixture = source[max_lag:max_lag + samples] + 0.5 * rng.standard_normal(samples)  # another voice on top
    reference = source[max_lag - lag:max_lag - lag + samples]  # reference[n + lag] == source at mixture's n
    return (mixture, reference, max_lag), {}


register("07.unfolded_blstm", reference=gridnet.UnfoldedBLSTM, test=_test_unfolded_blstm,
         hint="pad the end so that (padded - I) % J == 0; x.unfold(1, I, J) gives (batch, groups, D, I): "
              "make it (batch, groups, I * D) with I before D; BLSTM; fold_back wants (batch, 2H, groups); "
              "cut to the input length and return (batch, length, D)")
register("07.full_band_attention", reference=full_band_attention, make_inputs=_attention_inputs, atol=1e-4,
         hint="flatten (F, E) into one vector per frame; scores (batch, L, T, T) scaled by sqrt(F * E); "
              "softmax over the LAST axis (the frames attended to); heads back to (batch, T, F, L * V)")
register("07.per_sample_improvement", reference=per_sample_improvement, make_inputs=_improvement_inputs,
         atol=1e-3, rtol=1e-4,
         hint="the input score is the mixture taken as the estimate of every source; tpsep.metrics.si_sdr "
              "works on the last axis; average over the sources, not over the batch")
register("07.find_lag", reference=find_lag, make_inputs=_lag_inputs,
         hint="np.correlate(reference, mixture, 'full') (or an FFT) gives every shift; the lag is the shift of "
              "the largest |correlation| within ±max_lag; positive when the reference is late")
