"""Sanity checks that catch the classic reasons why "the loss does not move".

Five checks, each cheap enough to run before any long training (or when it breaks):

- :func:`check_domains` looks at one batch of inputs and targets *before* the
  model: shapes (513 vs 512 bins), NaN, negative magnitudes, and whether
  ``mask * mixture`` can reach the target at all (a log-normalised input in
  [0, 1] against raw-magnitude targets cannot).
- :func:`mask_statistics` looks at the model *at initialisation*: the mean,
  spread and saturation of its sigmoid mask, and the mean logit (the bias
  before the sigmoid), so a mask that starts at 0.40 instead of 0.5, or a
  saturated one, is visible.
- :func:`overfit_one_batch` trains a copy of the model on one batch: a correct
  pipeline drives the loss down by a large factor in a few hundred steps. When
  it does not, the report lists the usual causes and what was observed.
- :func:`find_nonfinite` runs one forward and backward with hooks when the loss or a gradient
  turns NaN/Inf: it names the first module whose output, then the first module whose gradient,
  is not finite (with the range of its input), the parameters with a NaN, zero or missing
  gradient, and a loss of exactly 0. The trainer's NaN guard sends you there.
- :func:`check_pipeline` distrusts absurd scores: it scores the mixture itself against each
  reference (about 0 dB for two speakers; -36 dB means the pipeline, not the model, is broken),
  finds shifted references by cross-correlation, references at the wrong sample rate by their
  spectrum, (B, 1, T) against (B, T) broadcasts, and, in a run's log, a loss with the wrong sign,
  a collapsed learning rate, and improvements spread tens of dB both ways.

Each returns plain objects whose ``str()`` is a readable report::

    for finding in check_domains(inputs, targets):
        print(finding)
    print(mask_statistics(model, inputs))
    overfit_one_batch(model, loss_fn, batch)      # raises OverfitError with a report if it fails
    print(find_nonfinite(model, loss_fn, batch))  # where a NaN/Inf starts, forward and backward
    print(check_pipeline(tracks, separator=model, log="runs/tasnet"))  # can these scores be trusted?
"""

from __future__ import annotations

import copy
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.fft
import torch

from tpsep.spectral import as_tensor


@dataclass
class Finding:
    """One problem found by a check. ``severity``: "error" (training cannot work) or "warning"."""

    check: str        # "finite", "shape", "bins", "sign", "domain", "scale", "mask", "gradient", ...
    severity: str
    message: str

    def __str__(self) -> str:
        mark = "✗" if self.severity == "error" else "!"
        return f"{mark} [{self.check}] {self.message}"


def report(findings: list[Finding], title: str = "checks") -> str:
    """The findings as text, one per line, or a line saying that none was found."""
    if not findings:
        return f"✓ {title}: no problem found"
    return "\n".join(str(f) for f in findings)


def _as_tensor(x, name: str) -> torch.Tensor:
    return as_tensor(x, name).detach().float().cpu()


# ----------------------------------------------------------------------------------------------
# (b) inputs and targets: shapes and domains
# ----------------------------------------------------------------------------------------------


def check_domains(inputs, targets, masks=None, *, mixture=None, expected_bins: int | None = 512,
                  target_kind: str = "magnitude") -> list[Finding]:
    """Check that a batch of network inputs and loss targets can work together.

    For a masking network trained with ``L1(mask * mixture, target)``, the target must live in
    the same domain and scale as the mixture the mask multiplies, and be below it (a mask is in
    [0, 1]). Feeding the network a log-normalised copy of the mixture is fine *if* the loss
    multiplies the mask with the raw mixture: pass that one as ``mixture``.

    Args:
        inputs: what the network sees, ``(batch, freq, frames)`` (or ``(freq, frames)``).
        targets: what the loss compares with, same shape: source magnitudes, or masks if
            ``target_kind="mask"``.
        masks: optional network output ``(batch, freq, frames)``, checked for shape.
        mixture: what the mask multiplies in the loss; default: ``inputs``.
        expected_bins: frequency bins the network expects (512 for the U-Net); None: don't check.
        target_kind: "magnitude" (targets are magnitudes, compared with ``mask * mixture``)
            or "mask" (targets are masks in [0, 1]).

    Returns:
        a list of :class:`Finding` (empty when nothing looks wrong); ``report(findings)`` prints them.
    """
    if target_kind not in ("magnitude", "mask"):
        raise ValueError(f"target_kind must be 'magnitude' or 'mask', got {target_kind!r}")
    tensors = {"inputs": _as_tensor(inputs, "inputs"), "targets": _as_tensor(targets, "targets")}
    if masks is not None:
        tensors["masks"] = _as_tensor(masks, "masks")
    if mixture is not None:
        tensors["mixture"] = _as_tensor(mixture, "mixture")
    findings = []

    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            bad = (~torch.isfinite(t)).float().mean().item()
            findings.append(Finding("finite", "error", f"{name} hold NaN/Inf ({bad:.1%} of the values)"))
    findings += _check_shapes(tensors, expected_bins)
    if any(f.severity == "error" for f in findings):
        return findings  # values cannot be compared bin by bin

    targets = tensors["targets"]
    multiplied = tensors.get("mixture", tensors["inputs"])
    multiplied_name = "mixture" if "mixture" in tensors else "inputs"
    if targets.min() < 0:
        findings.append(Finding("sign", "error",
            f"targets have negative values (min {targets.min():.3g}): magnitudes and masks are >= 0; "
            "are they in dB or log units, or complex parts?"))
    if target_kind == "mask":
        if targets.max() > 1 + 1e-3:
            findings.append(Finding("scale", "error",
                f"mask targets must lie in [0, 1], but their max is {targets.max():.3g}: "
                "are they magnitudes rather than masks?"))
        return findings
    if multiplied.min() < 0:
        findings.append(Finding("sign", "error",
            f"the {multiplied_name} that the mask multiplies has negative values (min {multiplied.min():.3g}): "
            "a mask times it cannot match non-negative magnitudes"))
    findings += _check_domain_and_scale(multiplied, targets, multiplied_name)
    return findings


def _check_shapes(tensors: dict, expected_bins: int | None) -> list[Finding]:
    findings = []
    shapes = {name: tuple(t.shape) for name, t in tensors.items()}
    reference = shapes["inputs"]
    for name, shape in shapes.items():
        if shape == reference:
            continue
        if len(shape) == len(reference) and len(shape) >= 2 and shape[-1] == reference[-1] \
                and abs(shape[-2] - reference[-2]) == 1:
            big, small = max(shape[-2], reference[-2]), min(shape[-2], reference[-2])
            findings.append(Finding("bins", "error",
                f"inputs have {reference[-2]} frequency bins but {name} have {shape[-2]}: one side kept "
                f"the Nyquist bin ({big} = n_fft/2 + 1) and the other dropped it ({small}); crop both "
                "with tpsep.spectral.crop_bins (and restore_bins before the inverse STFT)"))
        else:
            findings.append(Finding("shape", "error",
                f"inputs have shape {reference} but {name} have shape {shape}: (batch, freq, frames) must match"))
    if expected_bins is not None and len(reference) >= 2 and reference[-2] != expected_bins:
        hint = (f": that is n_fft/2 + 1 with the Nyquist bin; the network wants {expected_bins}, "
                "use tpsep.spectral.crop_bins") if reference[-2] == expected_bins + 1 else ""
        findings.append(Finding("bins", "warning" if hint else "error",
                                f"inputs have {reference[-2]} frequency bins, expected {expected_bins}{hint}"))
    return findings


def dynamic_range(x: torch.Tensor) -> float:
    """Ratio of the 99.9th to the 50th percentile of the positive values: ~10^2..10^5 for raw
    magnitudes (a few loud bins, many quiet ones), less after a log compression. Sparse sources
    (a voice) have a larger one than their mixture, so it is reported, not used to decide."""
    values = x[x > 0].flatten()
    if values.numel() < 10:
        return float("nan")
    if values.numel() > 200_000:  # quantile() has a size limit; a strided subsample is plenty
        values = values[:: values.numel() // 200_000 + 1]
    high, median = torch.quantile(values, torch.tensor([0.999, 0.5])).tolist()
    return high / max(median, 1e-30)


def in_unit_range(x: torch.Tensor) -> bool:
    """Values in [0, 1] that reach at least 0.5: the signature of a peak (or min-max) normalisation."""
    return bool(x.min() >= -1e-6 and x.max() <= 1 + 1e-6 and x.max() >= 0.5)


def best_mask_loss(mixture: torch.Tensor, targets: torch.Tensor) -> tuple[float, float]:
    """``(lowest L1 any mask in [0, 1] reaches, L1 of the mask 0.5)`` for ``L1(mask * mixture, targets)``.

    The best mask per bin is ``clip(target / mixture, 0, 1)``; what remains is the part of the
    target above the mixture. The mask 0.5 is where a freshly initialised sigmoid starts.
    """
    best_mask = (targets / mixture.clamp_min(1e-12)).clamp(0, 1)
    floor = (best_mask * mixture - targets).abs().mean().item()
    start = (0.5 * mixture - targets).abs().mean().item()
    return floor, start


def _check_domain_and_scale(mixture: torch.Tensor, targets: torch.Tensor, name: str) -> list[Finding]:
    findings = []
    floor, start = best_mask_loss(mixture, targets)
    above = (targets > mixture * 1.01 + 1e-6 * targets.abs().max()).float().mean().item()
    mix_range, target_range = dynamic_range(mixture), dynamic_range(targets)
    ratio = targets.mean().item() / max(mixture.mean().item(), 1e-30)

    if in_unit_range(mixture) and targets.max() > 1.5:
        findings.append(Finding("domain", "error",
            f"domain mismatch: the {name} look normalised into [0, 1] (log-normalised or divided by their "
            f"peak; 99.9%/median ratio {mix_range:.3g}) but the targets look like raw magnitudes "
            f"(up to {targets.max():.3g}, ratio {target_range:.3g}); "
            "compute the target in the same domain as what the mask multiplies, or multiply the mask "
            "with the raw mixture and feed the network the normalised copy"))
    if above > 0.25 or floor > 0.5 * start:
        findings.append(Finding("domain", "error",
            f"mask * {name} cannot reach the targets: they exceed the {name} in {above:.0%} of the bins, and "
            f"the best possible mask in [0, 1] still leaves an L1 loss of {floor:.4g}, {floor / max(start, 1e-30):.0%} "
            f"of the loss at the start (mask 0.5: {start:.4g}); the loss will barely move"))
    if ratio > 1.0:
        findings.append(Finding("scale", "error",
            f"the targets are larger than the {name} on average (x{ratio:.3g}): a source cannot hold more "
            "energy than the mixture; a scaling (gain, normalisation, n_fft) differs between the two"))
    elif ratio < 1e-3:
        findings.append(Finding("scale", "warning",
            f"the targets are {1 / ratio:.3g} times smaller than the {name} on average: "
            "was one of them scaled twice (or normalised and the other not)?"))
    return findings


# ----------------------------------------------------------------------------------------------
# (c) the mask at initialisation
# ----------------------------------------------------------------------------------------------


@dataclass
class MaskStatistics:
    """Statistics of a mask in [0, 1] over a batch, and what they suggest."""

    mean: float
    std: float
    min: float
    max: float
    mean_logit: float          # mean of log(m / (1 - m)): the pre-sigmoid value (bias at init)
    saturated: float           # fraction of values below `low` or above `high`
    near_zero: float
    near_one: float
    findings: list = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"mask: mean {self.mean:.3f}, std {self.std:.3f}, range [{self.min:.3f}, {self.max:.3f}], "
                 f"mean logit {self.mean_logit:+.3f}, saturated {self.saturated:.1%} "
                 f"(near 0: {self.near_zero:.1%}, near 1: {self.near_one:.1%})"]
        return "\n".join(lines + [str(f) for f in self.findings])


@torch.no_grad()
def mask_statistics(model, inputs, *, low: float = 0.01, high: float = 0.99,
                    bias_tolerance: float = 0.2) -> MaskStatistics:
    """Run ``model(inputs)`` (eval mode, no gradient) and describe the mask it outputs.

    A freshly initialised sigmoid-mask network should start near 0.5 (mean logit ~0) with
    little saturation: a saturated sigmoid has almost no gradient, and a bias of -0.4 starts
    every mask at 0.40, i.e. removes 60% of everything before learning anything.

    Args:
        model: returns a mask in [0, 1], same shape as its input, e.g. ``(batch, freq, frames)``.
        inputs: a batch for the model, e.g. ``(batch, 512, 128)``.
        low, high: a value below ``low`` or above ``high`` counts as saturated.
        bias_tolerance: a mean logit further than this from 0 is reported.

    Returns:
        a :class:`MaskStatistics`; ``print()`` it.
    """
    masks = _run_in_eval_mode(model, _as_tensor(inputs, "inputs")).float().cpu()
    findings = []
    if not torch.isfinite(masks).all():
        findings.append(Finding("mask", "error", "the mask holds NaN/Inf at initialisation"))
        masks = torch.nan_to_num(masks, nan=0.5)
    if masks.min() < -1e-6 or masks.max() > 1 + 1e-6:
        findings.append(Finding("mask", "error",
            f"the output is not a mask in [0, 1] (range [{masks.min():.3g}, {masks.max():.3g}]): "
            "is the sigmoid missing?"))
    clipped = masks.clamp(1e-6, 1 - 1e-6)
    logits = torch.log(clipped / (1 - clipped))
    stats = MaskStatistics(
        mean=masks.mean().item(), std=masks.std().item() if masks.numel() > 1 else 0.0,
        min=masks.min().item(), max=masks.max().item(), mean_logit=logits.mean().item(),
        saturated=((masks < low) | (masks > high)).float().mean().item(),
        near_zero=(masks < low).float().mean().item(), near_one=(masks > high).float().mean().item())
    if abs(stats.mean_logit) > bias_tolerance:
        side = "0 (the mask removes" if stats.mean_logit < 0 else "1 (the mask keeps"
        findings.append(Finding("mask", "warning",
            f"the mask starts biased towards {side} {stats.mean:.0%} on average): mean logit "
            f"{stats.mean_logit:+.2f}; the bias before the sigmoid is usually initialised at 0 (mask 0.5)"))
    if stats.saturated > 0.1:
        findings.append(Finding("mask", "error",
            f"{stats.saturated:.0%} of the mask is saturated (< {low} or > {high}) at initialisation: "
            "the sigmoid's gradient vanishes there; look at the initial weights, the input scale "
            "(raw magnitudes in the hundreds?) and the last layer's bias"))
    elif stats.std < 1e-4:
        findings.append(Finding("mask", "warning",
            f"the mask is constant ({stats.mean:.3f} everywhere): the network ignores its input "
            "(dead ReLUs, zero weights, or an input of zeros)"))
    stats.findings = findings
    return stats


# ----------------------------------------------------------------------------------------------
# (a) overfit one batch
# ----------------------------------------------------------------------------------------------

USUAL_CAUSES = """\
usual causes, most frequent first:
  - domain mismatch: the network sees a log-normalised input in [0, 1] but the target is a raw
    magnitude (or the reverse): mask * input cannot reach it (tpsep.diagnose.check_domains)
  - wrong target: a mask where a magnitude is expected (or the reverse), the mixture instead
    of the source, the wrong source, or a target with 513 bins against 512
  - learning rate: too low (the loss creeps) or too high (it jumps or goes up); try 1e-3 with Adam
  - frozen sigmoid: a saturated mask or a badly initialised bias before the sigmoid
    (tpsep.diagnose.mask_statistics); a mask stuck at 0 or 1 has no gradient
  - detached graph: .detach(), .item(), .numpy() or torch.no_grad() between the model and the
    loss, or parameters with requires_grad=False: the weights get no gradient
  - the model cannot express the answer: a final ReLU/clamp, a missing skip connection, too small"""


class OverfitError(AssertionError):
    """The model could not overfit one batch; ``.result`` holds the losses and the report."""

    def __init__(self, result: "OverfitResult"):
        super().__init__(str(result))
        self.result = result


@dataclass
class OverfitResult:
    passed: bool
    losses: list           # loss before each step
    factor: float          # the asked reduction factor
    steps: int             # the step budget
    findings: list = field(default_factory=list)
    target: float | None = None  # the loss to reach, when asked instead of a factor

    @property
    def reduction(self) -> float:
        """First loss divided by the lowest one."""
        finite = [l for l in self.losses if np.isfinite(l)]
        return self.losses[0] / max(min(finite), 1e-30) if finite else float("nan")

    def __str__(self) -> str:
        start, low = self.losses[0], min(self.losses)
        change = f"/{self.reduction:.3g}" if self.target is None else f"target {self.target:.4g}"
        head = (f"overfit one batch: loss {start:.4g} -> {self.losses[-1]:.4g} (lowest {low:.4g}, "
                f"{change}) in {len(self.losses) - 1} steps")
        goal = f"fell by the asked factor {self.factor:g}" if self.target is None else "reached the target"
        if self.passed:
            return f"✓ {head}: {goal}"
        miss = f"did not fall by {self.factor:g}" if self.target is None else "did not reach the target"
        lines = [f"✗ {head}: {miss} within {self.steps} steps"]
        lines += [str(f) for f in self.findings]
        return "\n".join(lines + [USUAL_CAUSES])


def overfit_one_batch(model, loss_fn, batch, *, steps: int = 200, factor: float = 10.0,
                      target: float | None = None, lr: float = 1e-3, dropout: bool = False, raise_on_failure: bool = True, copy_model: bool = True,
                      device=None) -> OverfitResult:
    """Train (a copy of) ``model`` on one batch with Adam: the loss must fall by ``factor``.

    A network that cannot memorise a single batch has a bug in its pipeline, not a lack of
    data. This is the fastest correctness test there is.

    Args:
        model: the network (copied first unless ``copy_model=False``; the original is untouched).
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``, as for :func:`tpsep.train.fit`.
        batch: one batch, as the loader yields it (tensors, tuples, dicts).
        steps: the step budget; stops as soon as the loss is ``factor`` times lower.
        factor: the reduction asked for (10: the loss must end at a tenth of its start).
        target: instead of a factor, the value the loss must reach. Needed for losses that
            go negative, where "ten times lower" means nothing: for the negative SI-SNR of
            Conv-TasNet, ``target=-20`` asks for 20 dB on the memorised batch.
        lr: Adam's learning rate.
        dropout: keep dropout on (off by default: it fights memorisation).
        raise_on_failure: raise :class:`OverfitError` (whose message is the report) on failure;
            False: return the result with ``passed=False``.
        device: where to run; default: where the model is.

    Returns:
        an :class:`OverfitResult` (``print()`` it): the losses and, on failure, findings.
    """
    from tpsep.devices import move_to

    if steps < 1 or factor <= 1:
        raise ValueError(f"need steps >= 1 and factor > 1, got steps={steps}, factor={factor}")
    net = copy.deepcopy(model) if copy_model else model
    if device is None:
        device = next(net.parameters()).device
    net.to(device).train()
    if not dropout:
        for module in net.modules():
            if isinstance(module, torch.nn.modules.dropout._DropoutNd):
                module.eval()
    batch = move_to(batch, torch.device(device))
    trainable = [p for p in net.parameters() if p.requires_grad]
    findings = []
    if not trainable:
        findings.append(Finding("gradient", "error", "no parameter requires a gradient (all frozen)"))
        result = OverfitResult(False, [float(loss_fn(net, batch))], factor, steps, findings, target)
        return _finish(result, raise_on_failure)
    optimizer = torch.optim.Adam(trainable, lr=lr)

    def reached(losses):
        return min(losses) <= (losses[0] / factor if target is None else target)

    losses = []
    for step in range(steps + 1):
        loss = loss_fn(net, batch)
        losses.append(loss.item())
        if not np.isfinite(losses[-1]):
            findings.append(Finding("finite", "error", f"the loss became {losses[-1]} at step {step}"))
            break
        if step == 0 and target is None and losses[0] <= 0:
            raise ValueError(f"the loss starts at {losses[0]:.4g} <= 0, so a fall by a factor "
                             f"{factor:g} means nothing: pass target= (the loss value to reach) instead")
        if reached(losses) or step == steps:
            break
        if not loss.requires_grad:
            findings.append(Finding("gradient", "error",
                "the loss has no gradient (requires_grad=False): the graph is detached between the "
                "model and the loss (.detach(), .item(), .numpy(), torch.no_grad())"))
            break
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if step == 0:
            findings += _gradient_findings(net)
        optimizer.step()

    passed = np.isfinite(losses[-1]) and reached(losses)
    if not passed and losses[0] > 0:  # the curve's shape is read as ratios
        findings += _curve_findings(losses)
    return _finish(OverfitResult(bool(passed), losses, factor, steps, findings, target), raise_on_failure)


def _finish(result: OverfitResult, raise_on_failure: bool) -> OverfitResult:
    if not result.passed and raise_on_failure:
        raise OverfitError(result)
    return result


def _gradient_findings(net) -> list[Finding]:
    """After the first backward: parameters without gradient, or with an all-zero one."""
    named = [(n, p) for n, p in net.named_parameters() if p.requires_grad]
    missing = [n for n, p in named if p.grad is None]
    zero = [n for n, p in named if p.grad is not None and not p.grad.abs().sum() > 0]
    findings = []
    if missing:
        findings.append(Finding("gradient", "error" if len(missing) == len(named) else "warning",
            f"{len(missing)} of {len(named)} parameters get no gradient ({', '.join(missing[:4])}"
            f"{' ...' if len(missing) > 4 else ''}): unused layers or a detached graph"))
    if zero:
        findings.append(Finding("gradient", "error" if len(zero) == len(named) else "warning",
            f"{len(zero)} of {len(named)} parameters get an all-zero gradient ({', '.join(zero[:4])}"
            f"{' ...' if len(zero) > 4 else ''}): saturated sigmoid, dead ReLUs, or a zero input"))
    return findings


def _curve_findings(losses: list) -> list[Finding]:
    """What the shape of the loss curve says."""
    finite = [l for l in losses if np.isfinite(l)]
    if len(finite) < 2:
        return []
    start, low, end = finite[0], min(finite), finite[-1]
    if end > start * 1.5:
        return [Finding("curve", "warning", f"the loss went up ({start:.4g} -> {end:.4g}): learning rate too high?")]
    if low > start * 0.98:
        return [Finding("curve", "warning",
                        f"the loss did not move ({start:.4g} -> lowest {low:.4g}): no useful gradient reaches "
                        "the weights, or the target is unreachable")]
    return [Finding("curve", "warning",
                    f"the loss fell only to {low / start:.0%} of its start and stalled there: the remaining "
                    "part looks unreachable for this model and target (domain, scale, wrong target), "
                    "or the learning rate is too low")]


# ----------------------------------------------------------------------------------------------
# (d) where a NaN/Inf starts: one forward and one backward, watched by hooks
# ----------------------------------------------------------------------------------------------

MODEL_ITSELF = "(model)"  # how find_nonfinite names the model's own forward (named_modules() says "")

FORWARD_CAUSES = ("a log or sqrt of a value <= 0, a division by a std, norm or sum that is 0 (a silent "
                  "input), an exp that overflows")
BACKWARD_CAUSES = ("a derivative that is infinite at these values: sqrt(x) or |z| = sqrt(re**2 + im**2) at 0, "
                   "log(x) at 0, x / y with y near 0, x ** p with p < 1 at 0, or a torch.where / masked_fill "
                   "that hides a NaN branch (its gradient still flows); put the eps inside, "
                   "sqrt(x + eps) or x.clamp_min(eps), not after")


@dataclass
class TensorSummary:
    """What one tensor held: dtype, shape, the range of its finite values and how many are NaN/Inf.
    A complex tensor is described by its magnitude |x|."""

    dtype: str
    shape: tuple
    min: float         # smallest finite value (of |x| if complex); nan when none is finite
    max: float
    nonfinite: int     # how many values are NaN or +-Inf

    @classmethod
    def of(cls, tensor: torch.Tensor) -> "TensorSummary":
        values = tensor.detach()
        values = (values.abs() if values.is_complex() else values).float()  # bf16 and complex, read in float32
        finite = torch.isfinite(values)
        kept = values[finite]
        low, high = (kept.min().item(), kept.max().item()) if kept.numel() else (float("nan"), float("nan"))
        return cls(str(tensor.dtype).replace("torch.", ""), tuple(tensor.shape), low, high,
                   int((~finite).sum().item()))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def __str__(self) -> str:
        text = f"{self.dtype} {self.shape}"
        if self.size == 0:
            return f"{text}, empty"
        if self.nonfinite == self.size:
            return f"{text}, all {self.size} values NaN/Inf"
        values = "|x| in" if self.dtype.startswith("complex") else "in"
        text += f" {values} [{self.min:.4g}, {self.max:.4g}]"
        return text + (f", {self.nonfinite} of {self.size} NaN/Inf" if self.nonfinite else "")


@dataclass
class NonFiniteReport:
    """What :func:`find_nonfinite` saw in one forward and backward; ``print()`` it.

    Module names are those of ``model.named_modules()`` (e.g. ``band_split.norms.3``), and
    ``"(model)"`` for the model's own forward."""

    loss: float
    first_nonfinite_output: str | None = None      # first module (forward order) with NaN/Inf in its output
    first_nonfinite_output_inputs: list = field(default_factory=list)    # TensorSummary of its inputs
    first_nonfinite_gradient: str | None = None    # first module (backward order) where the gradient breaks
    first_nonfinite_gradient_inputs: list = field(default_factory=list)  # TensorSummary of its forward inputs
    nonfinite_parameter_grads: list = field(default_factory=list)    # parameter names
    zero_gradient_parameters: list = field(default_factory=list)     # gradient exactly 0 everywhere
    missing_gradient_parameters: list = field(default_factory=list)  # requires_grad, but .grad stayed None
    findings: list = field(default_factory=list)   # Finding, most telling first
    module_calls: int = 0       # module calls watched in the forward
    gradients_checked: int = 0  # module inputs/outputs whose gradient the backward reached
    backward_ran: bool = False

    @property
    def ok(self) -> bool:
        """No finding of severity "error"."""
        return not any(f.severity == "error" for f in self.findings)

    def report(self) -> str:
        backward = (f"{_count(self.gradients_checked, 'gradient')} checked in the backward" if self.backward_ran
                    else "backward not run (it needs a finite loss that has a gradient)")
        head = (f"find_nonfinite: loss {self.loss:.6g}, {_count(self.module_calls, 'module call')} in the forward, "
                f"{backward}")
        if not self.findings:
            return f"✓ {head}: nothing non-finite, every parameter gets a non-zero gradient"
        return "\n".join([head] + [str(f) for f in self.findings])

    def __str__(self) -> str:
        return self.report()

    def _repr_pretty_(self, printer, cycle) -> None:  # what a notebook cell shows
        printer.text(self.report())


def find_nonfinite(model, loss_fn, batch, *, training: bool = True) -> NonFiniteReport:
    """Run ``loss_fn(model, batch)`` and its backward once, with hooks, and say where NaN/Inf start.

    The trainer's NaN guard only knows that the loss (or a gradient norm) is not finite. This
    check watches every module of the model:

    - forward: the first module, in the order the calls finish, whose output holds NaN/Inf, with
      the range of its inputs (finite inputs: that module made them; non-finite ones: the code
      that feeds it did). When every module output is finite but the loss is not, ``loss_fn``
      made it.
    - backward (only when the loss is finite): the first module, going from the loss towards the
      input, where the gradient stops being finite: a module whose output gradient is finite but
      which passes a NaN/Inf to its input (``sqrt`` at 0 ...), with the range its input had in the
      forward; then the parameters whose gradient is NaN/Inf.
    - dead gradients: the parameters whose gradient is exactly 0 everywhere (a clamp or ReLU that
      saturates, a zero input) or missing (an unused layer, a detached branch), and a loss of
      exactly 0 (a mask or quantile that keeps nothing, e.g. at batch size 1).

    Nothing of the model changes: the weights are not stepped, the buffers (BatchNorm statistics)
    and random generators are restored, every module gets its train/eval mode back, the ``.grad``
    already there (mid-training) are put back, and every hook is removed, even when ``loss_fn``
    raises. Call it inside ``torch.autocast(...)`` to check a mixed-precision step: it forces no dtype.

    Args:
        model: the ``torch.nn.Module`` that ``loss_fn`` calls.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``, as for :func:`tpsep.train.fit`.
        batch: one batch, as the loader yields it; moved to the model's device.
        training: run the model in training mode (dropout, batch statistics) as the trainer does;
            False: in eval mode.

    Returns:
        a :class:`NonFiniteReport`; ``print()`` it.

    Raises:
        TypeError: ``model`` is not a module, ``loss_fn`` is not callable or returns no tensor.
        ValueError: ``loss_fn`` returns a tensor that is not one real number.
    """
    from tpsep.devices import move_to

    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"find_nonfinite: model must be a torch.nn.Module (the network loss_fn calls), "
                        f"got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"find_nonfinite: loss_fn must be a function loss_fn(model, batch) -> scalar tensor, "
                        f"got {type(loss_fn).__name__}")
    parameters = list(model.parameters())
    if parameters:
        batch = move_to(batch, parameters[0].device)
    findings = _broken_before_the_forward(model, batch)

    probe = _Probe()
    saved_grads = [(p, p.grad) for p in parameters]
    saved_buffers = [(b, b.detach().clone()) for b in model.buffers()]
    saved_modes = [(m, m.training) for m in model.modules()]
    cuda_devices = sorted({p.device.index for p in parameters if p.device.type == "cuda"})
    try:
        probe.attach(model)
        for p in parameters:
            p.grad = None  # a fresh gradient, not added to what an interrupted step left
        model.train(training)
        # fork_rng: dropout here must not shift the random numbers of the training that called us;
        # enable_grad: a notebook cell under torch.no_grad() still gets its gradients
        with torch.random.fork_rng(devices=cuda_devices), torch.enable_grad():
            loss = _checked_loss(loss_fn(model, batch))
            loss_value = loss.detach().float().item()
            can_backward = np.isfinite(loss_value) and loss.requires_grad
            if can_backward:
                loss.backward()
        gradients = [(name, p.grad) for name, p in model.named_parameters() if p.requires_grad]
    finally:
        probe.detach()
        with torch.no_grad():
            for buffer, value in saved_buffers:
                buffer.copy_(value)
        for module, mode in saved_modes:
            module.training = mode
        for p, grad in saved_grads:
            p.grad = grad

    result = NonFiniteReport(loss=loss_value, module_calls=len(probe.calls),
                             gradients_checked=probe.gradients_checked, backward_ran=bool(can_backward))
    findings += _forward_findings(probe, loss_value, result)
    if np.isfinite(loss_value) and not loss.requires_grad:
        findings.append(Finding("gradient", "error",
            "the loss has no gradient (requires_grad=False): the graph is cut between the model and the "
            "loss (.detach(), .item(), .numpy(), torch.no_grad()) or every parameter is frozen"))
    if can_backward:
        findings += _backward_findings(probe, gradients, loss_value, result)
    result.findings = findings
    return result


def _checked_loss(loss) -> torch.Tensor:
    """``loss`` if it is one real number in a tensor; otherwise a clear error."""
    if not isinstance(loss, torch.Tensor):
        hint = ": return the tensor, not loss.item()" if isinstance(loss, (int, float)) else ""
        raise TypeError(f"find_nonfinite: loss_fn(model, batch) must return a scalar tensor, "
                        f"got {type(loss).__name__}{hint}")
    if loss.ndim != 0 or not loss.is_floating_point():
        raise ValueError(f"find_nonfinite: loss_fn(model, batch) must return a scalar real tensor, got a "
                         f"{str(loss.dtype).replace('torch.', '')} tensor of shape {tuple(loss.shape)} "
                         "(reduce it to one number, e.g. .mean())")
    return loss


def _broken_before_the_forward(model, batch) -> list[Finding]:
    """NaN/Inf that are there before the model runs: in the batch, or in the weights."""
    from tpsep.train import named_tensors

    findings = []
    for name, tensor in named_tensors(batch, "batch"):
        if (tensor.is_floating_point() or tensor.is_complex()) and not torch.isfinite(tensor).all():
            findings.append(Finding("finite", "error",
                f"{name} already holds NaN/Inf ({TensorSummary.of(tensor)}): the data is broken, not the model"))
    broken = [name for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    if broken:
        findings.append(Finding("finite", "error",
            f"the weights already hold NaN/Inf: {_first_few(broken)}; an earlier step broke them "
            "(run this check on the batch of that step)"))
    return findings


def _forward_findings(probe: "_Probe", loss: float, result: NonFiniteReport) -> list[Finding]:
    if probe.first_bad_output is not None:
        call, outputs = probe.first_bad_output
        result.first_nonfinite_output = _label(call.name)
        result.first_nonfinite_output_inputs = call.inputs
        inputs = "; ".join(str(s) for s in call.inputs) or "no tensor"
        if any(s.nonfinite for s in call.inputs):
            why = (f"its input already holds NaN/Inf although no module before it output any: the code that "
                   f"feeds it made them, in {_forward_of(_parent(call.name))} (a function, not a module), "
                   "in loss_fn, or the batch")
        else:
            why = f"its input is finite, so this module made them: {FORWARD_CAUSES}"
        return [Finding("forward", "error",
            f"the first module whose output holds NaN/Inf is {result.first_nonfinite_output} ({call.kind}): "
            f"output {'; '.join(str(s) for s in outputs)}; input {inputs}; {why}")]
    if not np.isfinite(loss):
        return [Finding("loss", "error",
            f"every module output is finite but the loss is {loss}: loss_fn made it: {FORWARD_CAUSES} "
            "(a silent estimate or target normalised by its std or norm)")]
    return []


def _backward_findings(probe: "_Probe", gradients: list, loss: float, result: NonFiniteReport) -> list[Finding]:
    findings = []
    if probe.first_bad_gradient is not None:
        findings.append(_first_bad_gradient_finding(probe, result))

    result.nonfinite_parameter_grads = [n for n, g in gradients if g is not None and not torch.isfinite(g).all()]
    result.missing_gradient_parameters = [n for n, g in gradients if g is None]
    result.zero_gradient_parameters = [n for n, g in gradients
                                       if g is not None and torch.isfinite(g).all() and not g.any()]
    if result.nonfinite_parameter_grads:
        findings.append(Finding("gradient", "error",
            f"{len(result.nonfinite_parameter_grads)} of {_count(len(gradients), 'parameter')} get a NaN/Inf "
            f"gradient although the loss is finite: {_first_few(result.nonfinite_parameter_grads)}"))
    everything_zero = len(result.zero_gradient_parameters) == len(gradients)
    if loss == 0:
        zero = " and so is every gradient" if everything_zero else ""
        findings.append(Finding("loss", "warning",
            f"the loss is exactly 0{zero}: this batch teaches nothing. Fine for one batch of silence against "
            "silence; if it happens on every batch: a mask, threshold or quantile that keeps no element "
            "(at batch size 1, 'the examples above the median' is none of them), a target equal to the "
            "estimate, or a loss multiplied by an empty mask"))
    elif result.zero_gradient_parameters:  # with a loss of 0, zero gradients are expected
        findings.append(Finding("gradient", "error" if everything_zero else "warning",
            f"{len(result.zero_gradient_parameters)} of {_count(len(gradients), 'parameter')} get a gradient of "
            f"exactly 0 everywhere, in {_by_module(result.zero_gradient_parameters)}: a clamp or ReLU that saturates "
            "(every value outside the range it lets through), a sigmoid or tanh saturated, or an input of zeros"))
    if result.missing_gradient_parameters:
        findings.append(Finding("gradient", "error" if len(result.missing_gradient_parameters) == len(gradients)
                                else "warning",
            f"{len(result.missing_gradient_parameters)} of {_count(len(gradients), 'parameter')} get no gradient at "
            f"all, in {_by_module(result.missing_gradient_parameters)}: unused by loss_fn, or behind a .detach() / "
            "torch.no_grad()"))
    return findings


def _first_bad_gradient_finding(probe: "_Probe", result: NonFiniteReport) -> Finding:
    """Name the module where the backward first produced a NaN/Inf, from the first tensor whose gradient was one."""
    watched, gradient = probe.first_bad_gradient
    # the tensor's gradient is what the backward of its readers sent: the innermost modules that took it
    # as input are the suspects (a function of the parent that read it too would be blamed on them)
    consumers = [c for c in watched.consumers
                 if not any(other is not c and _inside(other.name, c.name) for other in watched.consumers)]
    if consumers:
        culprit = consumers[0]
        result.first_nonfinite_gradient = _label(culprit.name)
        result.first_nonfinite_gradient_inputs = culprit.inputs
        others = (f" (or in {', '.join(_label(c.name) for c in consumers[1:])}, which read the same input)"
                  if len(consumers) > 1 else "")
        output = "its output gradient is finite, " if culprit.output_gradient_finite else ""
        return Finding("gradient", "error",
            f"the gradient first becomes NaN/Inf in the backward of {result.first_nonfinite_gradient} "
            f"({culprit.kind}){others}: {output}its input gradient is not ({gradient}); its input in the "
            f"forward: {'; '.join(str(s) for s in culprit.inputs)}; {BACKWARD_CAUSES}")
    producer = watched.producers[0]
    result.first_nonfinite_gradient = _label(producer.name)
    result.first_nonfinite_gradient_inputs = producer.inputs
    if any(p.name == "" for p in watched.producers):
        where = "the gradient reaching the model's output is already NaN/Inf, so loss_fn's backward made it"
    else:
        where = (f"the gradient reaching the output of {result.first_nonfinite_gradient} ({producer.kind}) is "
                 f"NaN/Inf while every gradient closer to the loss was finite: the code that uses this output "
                 f"made it, in {_forward_of(_parent(producer.name))} (a function, not a module) or in loss_fn")
    return Finding("gradient", "error", f"{where} ({gradient}); {BACKWARD_CAUSES}")


@dataclass
class _Call:
    """One call of one module in the forward."""

    name: str                      # qualified name, "" for the model itself
    kind: str                      # its class
    inputs: list                   # TensorSummary of its tensor inputs, taken before it ran
    output_gradient_finite: bool | None = None  # None: the backward did not reach its output


@dataclass
class _Watched:
    """A tensor that went in or out of a module call, and whose gradient the backward checks."""

    tensor: torch.Tensor           # held, so that its id() is not reused during the check
    producers: list = field(default_factory=list)  # calls that output it (a child, and its parent returning it)
    consumers: list = field(default_factory=list)  # calls that took it as input


class _Probe:
    """The hooks of :func:`find_nonfinite`, and what they saw.

    Forward: a pre-hook per module summarises its inputs; a hook after it checks its outputs.
    Backward: a hook on each input and output tensor that requires a gradient checks that
    gradient as the backward reaches it (tensor hooks, not module backward hooks: those
    misbehave with modules that return tuples, like nn.LSTM, or change their input in place)."""

    def __init__(self):
        self.calls: list[_Call] = []
        self.running: list[_Call] = []   # calls that have started and not finished (nested modules)
        self.first_bad_output = None     # (call, [TensorSummary of its outputs])
        self.watched: dict = {}          # (id, version) -> _Watched
        self.gradients_checked = 0
        self.first_bad_gradient = None   # (_Watched, TensorSummary of the gradient)
        self.handles = []

    def attach(self, model) -> None:
        for name, module in model.named_modules():
            self.handles.append(module.register_forward_pre_hook(self._before(name), with_kwargs=True))
            self.handles.append(module.register_forward_hook(self._after(), with_kwargs=True))

    def detach(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self.watched = {}  # let the tensors go

    def _before(self, name: str):
        def hook(module, args, kwargs):
            tensors = list(_tensors((args, kwargs)))
            call = _Call(name, type(module).__name__, [TensorSummary.of(t) for t in tensors])
            self.calls.append(call)
            self.running.append(call)
            for tensor in tensors:
                self._watch(tensor, consumer=call)
        return hook

    def _after(self):
        def hook(module, args, kwargs, output):
            call = self.running.pop()
            outputs = list(_tensors(output))
            if self.first_bad_output is None and any(not torch.isfinite(t).all() for t in outputs):
                self.first_bad_output = (call, [TensorSummary.of(t) for t in outputs])
            for tensor in outputs:
                self._watch(tensor, producer=call)
        return hook

    def _watch(self, tensor: torch.Tensor, producer: _Call | None = None, consumer: _Call | None = None) -> None:
        if not tensor.requires_grad:
            return
        # the version counts in-place changes: after x.relu_(), x holds another value with its own gradient
        key = (id(tensor), tensor._version)
        if key not in self.watched:
            watched = self.watched[key] = _Watched(tensor)
            self.handles.append(tensor.register_hook(lambda gradient: self._check_gradient(watched, gradient)))
        if producer is not None:
            self.watched[key].producers.append(producer)
        if consumer is not None:
            self.watched[key].consumers.append(consumer)

    def _check_gradient(self, watched: _Watched, gradient: torch.Tensor) -> None:
        self.gradients_checked += 1
        finite = bool(torch.isfinite(gradient).all())
        for call in watched.producers:
            call.output_gradient_finite = finite and call.output_gradient_finite is not False
        if not finite and self.first_bad_gradient is None:
            self.first_bad_gradient = (watched, TensorSummary.of(gradient))


def _tensors(obj):
    """The float and complex tensors inside nested tuples, lists and dicts (an LSTM returns
    ``(output, (h, c))``); integer tensors (indices, lengths) cannot hold NaN and are skipped."""
    if isinstance(obj, torch.Tensor):
        if obj.is_floating_point() or obj.is_complex():
            yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _tensors(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _tensors(value)


def _label(name: str) -> str:
    return name or MODEL_ITSELF


def _parent(name: str) -> str:
    return name.rsplit(".", 1)[0] if "." in name else ""


def _forward_of(name: str) -> str:
    return f"the forward of {name}" if name else "the model's own forward"


def _inside(inner: str, outer: str) -> bool:
    """Is module ``inner`` a descendant of module ``outer`` (qualified names, "" = the model)?"""
    return inner != outer and (outer == "" or inner.startswith(outer + "."))


def _count(number: int, thing: str) -> str:
    return f"{number} {thing}{'' if number == 1 else 's'}"


def _first_few(names: list, count: int = 4) -> str:
    return ", ".join(names[:count]) + (f" ... ({len(names) - count} more)" if len(names) > count else "")


def _by_module(names: list, count: int = 4) -> str:
    """``hidden (weight, bias), out (bias)``: parameter names grouped by the module that holds them."""
    groups: dict = {}
    for name in names:
        module, _, parameter = name.rpartition(".")
        groups.setdefault(module or MODEL_ITSELF, []).append(parameter)
    text = ", ".join(f"{module} ({', '.join(params)})" for module, params in list(groups.items())[:count])
    more = len(groups) - count
    return f"{_count(len(groups), 'module')}: {text}" + (f" ... ({more} more)" if more > 0 else "")


# ----------------------------------------------------------------------------------------------
# (e) the evaluation pipeline: distrust absurd scores
# ----------------------------------------------------------------------------------------------
#
# A mixture of two speakers scores about 0 dB SI-SDR against each of them, noisy speech a few dB
# below. A mixture that scores -36 dB against its reference is not "a hard example": the two
# signals are nearly uncorrelated, so every score computed against that reference (the model's,
# the improvement, the validation loss) measures the pipeline, not the model. The checks below
# look for the usual culprits: a delayed reference, a wrong sample rate, a reference paired with
# another item, a (B, 1, T) against (B, T) broadcast, and, in a run's log, a loss logged with the
# wrong sign or a learning rate that collapsed long before the end.

INPUT_FLOOR_DB = -15.0      # below this, a mixture and its reference are not the same recording
INPUT_CEILING_DB = 40.0     # above this, the reference is (almost) the mixture itself
LEVEL_MARGIN_DB = 6.0       # how far below what the levels predict a score may fall before it counts
MAX_LAG_SECONDS = 0.25      # how far the cross-correlation looks for a shift, each way
LAG_TOLERANCE = 2           # samples; at 8 kHz one sample of lag already costs ~5 dB of SI-SDR
ROLLOFF_FLOOR_DB = 60.0     # a spectrum "stops" where its power falls 60 dB below its peak
ROLLOFF_TOLERANCE = 0.15    # a rolloff ratio within 15% of a rate factor points at that factor
LR_COLLAPSE = 1e-3          # an LR below this fraction of its peak no longer moves the weights
SPREAD_DB = 10.0            # improvements beyond +-10 dB on both sides: a broken pipeline
MAX_EXAMPLES = 4            # examples listed in one finding

# Pairs of sample rates that get confused, as (higher, lower): a ratio of bandwidths (or of
# lengths) near higher / lower names the likely mix-up.
RATE_MIX_UPS = ((16000, 8000), (44100, 16000), (48000, 16000), (32000, 8000), (44100, 8000),
                (48000, 8000))


@dataclass
class PipelineReport:
    """What :func:`check_pipeline` found; ``print()`` it.

    Attributes:
        table: one row per track (index: the track's name). Per source ``<s>``: ``input_<s>``,
            the SI-SDR (dB) of the mixture against the reference; ``lag_<s>``, how many samples
            the reference is late against the mixture (NaN: no shift within the search makes them
            alike); ``rolloff_ratio_<s>``, the reference's bandwidth over the mixture's (1 when both
            stop at the same frequency). With estimates: ``output_<s>``, ``improvement_<s>`` and
            ``output_lag_<s>`` (how many samples the estimate is late against its reference).
            Also ``samples`` (the mixture's length) and ``input``, ``output``, ``improvement``: the
            means over sources.
        findings: :class:`Finding` list, the most telling first.
        tracks_checked: how many tracks (or batch items) were scored.
        tracks_given: how many were passed (only the first ``max_tracks`` are checked).
        rates: the sample rates seen (empty for arrays without ``rate``).
        max_lag: the lag search went from ``-max_lag`` to ``+max_lag`` samples.
        run: key figures read from the run's log (empty without ``log``).
    """

    table: pd.DataFrame
    findings: list = field(default_factory=list)
    tracks_checked: int = 0
    tracks_given: int = 0
    rates: tuple = ()
    max_lag: int = 0
    run: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No finding of severity "error"."""
        return not any(f.severity == "error" for f in self.findings)

    def report(self) -> str:
        lines = [self._headline()] + self._data_lines() + self._run_lines()
        if self.findings:
            lines += [str(f) for f in self.findings]
        else:
            lines.append("✓ no problem found")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()

    def _repr_pretty_(self, printer, cycle) -> None:  # what a notebook cell shows
        printer.text(self.report())

    def _headline(self) -> str:
        parts = []
        if self.tracks_given:
            checked = (f"{self.tracks_checked} of {self.tracks_given} tracks" if self.tracks_checked < self.tracks_given
                       else _count(self.tracks_checked, "track"))
            parts.append(checked)
        if self.rates:
            parts.append(" / ".join(f"{r} Hz" for r in self.rates))
        sources = _sources_of(self.table)
        if sources:
            parts.append("sources " + ", ".join(sources))
        if self.run:
            parts.append("a run's log")
        return "check_pipeline: " + ", ".join(parts)

    def _data_lines(self) -> list[str]:
        table, sources = self.table, _sources_of(self.table)
        if table.empty or not sources:
            return []
        lines = []
        inputs = table[[f"input_{s}" for s in sources]].to_numpy(dtype=float)
        lines.append(f"  input SI-SDR, mixture vs each reference: {_db_range(inputs)} "
                     f"(suspicious: below {INPUT_FLOOR_DB:+.0f}, above {INPUT_CEILING_DB:+.0f} dB)")
        lags = table[[f"lag_{s}" for s in sources]].to_numpy(dtype=float)
        rate = self.rates[0] if len(self.rates) == 1 else None
        found = lags[np.isfinite(lags)]
        if found.size and found.min() == found.max():
            lag_text = f"{found[0]:+.0f} samples everywhere" if found[0] else "0 samples everywhere"
        elif found.size:
            lag_text = f"{found.min():+.0f} .. {found.max():+.0f} samples"
        else:
            lag_text = "none found"
        missing = int(np.isnan(lags).sum())
        if missing and found.size:
            lag_text += f" ({missing} pair{'s' if missing > 1 else ''} alike at no shift)"
        window = f"±{self.max_lag} samples" + (f", ±{1000 * self.max_lag / rate:.0f} ms" if rate else "")
        lines.append(f"  lag of each reference behind the mixture: {lag_text} (searched {window})")
        ratios = table[[f"rolloff_ratio_{s}" for s in sources]].to_numpy(dtype=float)
        if np.isfinite(ratios).any():
            lines.append(f"  rolloff ratio, reference / mixture bandwidth: {np.nanmin(ratios):.2f} .. "
                         f"{np.nanmax(ratios):.2f}")
        if "output" in table:
            outputs = table[[f"output_{s}" for s in sources if f"output_{s}" in table]].to_numpy(dtype=float)
            improvements = table["improvement"].to_numpy(dtype=float) if "improvement" in table else []
            lines.append(f"  output SI-SDR: {_db_range(outputs)}; improvement per track: {_db_range(improvements)}")
        return lines

    def _run_lines(self) -> list[str]:
        run = self.run
        if not run:
            return []
        parts = [f"{run['steps']:,} steps" if run.get("steps") else "no training step"]
        if run.get("epochs"):
            parts.append(f"{run['epochs']:,} epochs")
        if run.get("lr_peak"):
            parts.append(f"lr peak {run['lr_peak']:.3g} -> end {run['lr_end']:.3g}")
        if run.get("best_step") is not None:
            epoch = f" (epoch {run['best_epoch']})" if run.get("best_epoch") is not None else ""
            parts.append(f"lowest validation loss {run['best_valid']:.4g} at step {run['best_step']:,}{epoch}")
        return ["  run: " + ", ".join(parts)]


def check_pipeline(tracks=None, *, mixture=None, references=None, estimates=None, separator=None,
                   log=None, rate: int | None = None, max_tracks: int = 20,
                   max_lag_seconds: float = MAX_LAG_SECONDS, loss_kind: str = "auto") -> PipelineReport:
    """Check that the scores of a separation pipeline can be trusted, before reading any of them.

    Run it on the data (and, if you have them, the estimates and the run's log) whenever a score
    looks absurd: a validation "SI-SNR" of -30 dB, improvements from -38 to +43 dB, a best
    checkpoint very early in a long run. It checks:

    1. the **input score**: the SI-SDR of the mixture against each reference. A mixture of two
       speakers scores about 0 dB against each, noisy speech down to about -10 dB. Far below
       -15 dB (and below what the signal levels predict, so that a quiet stem of a song is not
       blamed), mixture and reference are not the same recording: a reference from another item,
       a wrong sample rate, a shifted file.
    2. the **lengths** of mixture, references and estimates (scores use the part they share).
    3. the **lag** of each reference (and estimate) against the mixture (reference), found by
       cross-correlation within ``±max_lag_seconds``: more than 2 samples is an error, 1 or 2 a
       warning (on 8 kHz speech, 1 sample of lag costs about 5 dB, 1 ms gives about -20 dB,
       32 ms about -34 dB).
    4. the **sample rate**, seen in the spectrum: each signal's *rolloff*, the highest frequency
       whose power is within 60 dB of its spectrum's peak. A reference read at the wrong rate has
       its spectrum squeezed or stretched: its rolloff is half (or twice, three times...) the
       mixture's. (The 99%-energy rolloff was measured and rejected: on the course's healthy
       speech its ratio already spans 0.36 to 1.55, because a source's energy lies where its
       voice is.) A narrowband source (a bass) also has a low ratio, so a ratio only counts
       together with a broken input score; the reference is then resampled by the named factor
       to confirm. With ``rate``, tracks at another rate are named too.
    5. the **shapes**: estimates ``(B, 1, T)`` against references ``(B, T)`` (or any pair that
       broadcasts to a third shape) are reported before any score, never silently broadcast.
    6. a run's **loss sign** (``log``): a loss that is minus SI-SNR should be negative and fall.
       See "How the log is read" below for the exact heuristic.
    7. the **learning rate** (``log``): an LR that ends below 1/1000 of its peak, with the step
       where it fell there and where the lowest validation loss was.
    8. the **improvement spread** (``estimates`` or ``separator``): improvements beyond ±10 dB on
       both sides across tracks (e.g. -38 to +43 dB) mean some items are scored against the
       wrong references.

    How the log is read: the training loss comes from the keys ``loss`` / ``train_loss``, the
    validation loss from ``valid_loss`` / ``val_loss`` / ``validation_loss``, the LR from ``lr`` /
    ``learning_rate``; other numeric keys whose name holds "snr" or "sdr" (and not "loss") are
    metrics where higher is better. A loss counts as dB-like (minus an SI-SNR) when
    ``loss_kind="si_snr"``, or, with ``loss_kind="auto"``, when a loss key's name holds "snr" or
    "sdr", when it ever goes below 0 (L1 and MSE cannot), or when it ends between +10 and +60
    (where SI-SNRs in dB live). A dB-like loss that is positive and rising over the run (median
    of its last quarter above that of its first quarter by more than 1 dB) is logged or
    minimised with the wrong sign: an error. One that merely sits above +10 is an error with
    ``loss_kind="si_snr"`` and a warning with ``"auto"``. A loss that falls while a metric of
    the same run falls too (or rises while it rises) is an error whatever the kind.

    Args:
        tracks: a list of :class:`tpsep.data.Track` (e.g. ``load_dataset("speech", split="test")[:10]``);
            the references are each track's ``sources``.
        mixture, references: instead of tracks, arrays (numpy or torch). ``mixture``: ``(samples,)``
            (one item), ``(batch, samples)`` or ``(batch, channels, samples)``; ``references``: the
            mixture's shape (one source per item, e.g. the clean speech of an enhancement task) or
            with a sources axis after the batch axis, ``(batch, sources, [channels,] samples)``.
            Lists of such arrays, one per item, are accepted too (items of different lengths).
        estimates: optional. With arrays: the references' shape. With tracks: a list with one
            entry per track, a dict ``{source: (channels, samples)}`` (what a separator returns) or
            an array ``(sources, [channels,] samples)`` in the order of ``track.source_names``.
            Estimates are matched to references by the permutation of best SI-SDR (PIT models
            output their sources in any order).
        separator: instead of ``estimates``: a torch module ``(batch, channels, samples) ->
            (batch, sources, channels, samples)`` (e.g. :class:`tpsep.models.convtasnet.ConvTasNet`;
            one with ``config.rate`` is run through :func:`tpsep.separate.separate`, which
            resamples), or, with tracks, a function ``separator(track) -> {source: estimate}``.
        log: a run's log: the path of its ``log.jsonl`` or of its folder, a list of dicts (one per
            line), a :class:`tpsep.reporting.History` or its ``state_dict()``.
        rate: the sample rate the pipeline expects, in Hz: tracks at another rate are reported.
            With arrays, the arrays' rate (gives the lags in ms and the search window in seconds;
            without it the window is 4000 samples).
        max_tracks: check only the first ``max_tracks`` tracks (or batch items).
        max_lag_seconds: the lag search window, each way.
        loss_kind: what the logged loss is: "auto" (guess, see above), "si_snr" (minus an SI-SNR
            or SI-SDR in dB) or "other" (L1, MSE...: never read as dB).

    Returns:
        a :class:`PipelineReport`: ``.table`` (one row per track), ``.findings``, ``.ok``;
        ``print()`` it.

    Raises:
        ValueError: nothing to check, ``tracks`` together with ``mixture``, ``mixture`` without
            ``references``, both ``estimates`` and ``separator``, a wrong count of estimates,
            or a bad setting.
        TypeError: an argument of the wrong type (named, with what was expected).
        FileNotFoundError: ``log`` names a file or folder that does not exist.
    """
    _check_arguments(tracks, mixture, references, estimates, separator, log, rate, max_tracks,
                     max_lag_seconds, loss_kind)
    findings: list[Finding] = []
    items, tracks_given = [], 0
    if tracks is not None:
        tracks = _as_track_list(tracks)
        tracks_given = len(tracks)
        if estimates is not None:
            estimates = _one_per_track(estimates, tracks_given)[:max_tracks]
        items = _items_from_tracks(tracks[:max_tracks], estimates)
        findings += _rate_findings(items, rate)
    elif mixture is not None:
        items, shape_findings = _items_from_arrays(mixture, references, estimates, rate)
        findings += shape_findings
        tracks_given = len(items)
        items = items[:max_tracks]
    if separator is not None:
        findings += _run_separator(separator, items)

    rates = tuple(sorted({item.rate for item in items if item.rate}))
    lag_rate = rates[0] if len(rates) == 1 else (rate or 16000)  # 16 kHz: 0.25 s = 4000 samples
    max_lag = max(1, int(round(max_lag_seconds * lag_rate)))
    rows, notes = [], _Notes()
    for item in items:
        rows.append(_check_item(item, max_lag, notes))
    table = _ordered(pd.DataFrame(rows).set_index("track")) if rows else pd.DataFrame()
    findings += notes.findings(len(items))
    findings += _spread_findings(table)

    run = {}
    if log is not None:
        run_log = _read_run_log(log)
        log_findings, run = _log_findings(run_log, loss_kind)
        findings += log_findings
    findings.sort(key=lambda f: f.severity != "error")  # errors first, each group in check order
    return PipelineReport(table=table, findings=findings, tracks_checked=len(items), tracks_given=tracks_given,
                          rates=rates, max_lag=max_lag, run=run)


# ---- arguments ---------------------------------------------------------------------------------


def _is_track(obj) -> bool:
    return hasattr(obj, "mixture") and hasattr(obj, "sources") and hasattr(obj, "source_names")


def _as_track_list(tracks) -> list:
    """``tracks`` as a list of Track (one Track alone is a list of one); anything else is a TypeError."""
    if _is_track(tracks):
        return [tracks]
    if isinstance(tracks, (str, bytes, dict, np.ndarray, torch.Tensor)) or not hasattr(tracks, "__iter__"):
        raise TypeError(f"check_pipeline: tracks must be a list of tpsep.data.Track (e.g. "
                        f"load_dataset('speech', split='test')[:10]), got {type(tracks).__name__}; "
                        "for arrays use mixture= and references=")
    tracks = list(tracks)
    for index, track in enumerate(tracks):
        if not _is_track(track):
            raise TypeError(f"check_pipeline: tracks must be a list of tpsep.data.Track, but item {index} "
                            f"is a {type(track).__name__}")
    if not tracks:
        raise ValueError("check_pipeline got an empty list of tracks; check the dataset name and split")
    return tracks


def _check_arguments(tracks, mixture, references, estimates, separator, log, rate, max_tracks,
                     max_lag_seconds, loss_kind) -> None:
    if tracks is None and mixture is None and references is None and log is None:
        raise ValueError("check_pipeline needs something to check: tracks (a list of tpsep.data.Track), "
                         "or mixture= and references= (arrays), and/or log= (a run's log.jsonl, its folder, a "
                         "list of dicts or a History); got none of them")
    if tracks is not None and (mixture is not None or references is not None):
        raise ValueError("check_pipeline: pass either tracks or mixture=/references=, not both "
                         "(the tracks already hold their mixture and references)")
    if (mixture is None) != (references is None):
        given, missing = ("mixture", "references") if mixture is not None else ("references", "mixture")
        raise ValueError(f"check_pipeline: {given}= was given without {missing}=: the input score compares "
                         "the mixture with each reference, so both are needed")
    if estimates is not None and separator is not None:
        raise ValueError("check_pipeline: pass estimates= or separator= (which makes them), not both")
    if (estimates is not None or separator is not None) and tracks is None and mixture is None:
        raise ValueError("check_pipeline: estimates and a separator are scored against references: "
                         "pass tracks, or mixture= and references=, with them")
    if separator is not None and not callable(separator):
        raise TypeError(f"check_pipeline: separator must be a torch module (batch, channels, samples) -> "
                        f"(batch, sources, channels, samples) or a function separator(track) -> "
                        f"{{source: estimate}}, got {type(separator).__name__}")
    if separator is not None and not isinstance(separator, torch.nn.Module) and tracks is None:
        raise TypeError("check_pipeline: with mixture=/references= arrays, separator must be a torch module; "
                        f"a function of a track ({type(separator).__name__}) needs tracks")
    if rate is not None:
        from tpsep.audio import check_rate
        check_rate(rate, "check_pipeline")
    if isinstance(max_tracks, bool) or not isinstance(max_tracks, (int, np.integer)) or max_tracks < 1:
        raise ValueError(f"check_pipeline: max_tracks must be a positive integer, got {max_tracks!r}")
    if not isinstance(max_lag_seconds, (int, float)) or not max_lag_seconds > 0:
        raise ValueError(f"check_pipeline: max_lag_seconds must be a positive number of seconds, "
                         f"got {max_lag_seconds!r}")
    if loss_kind not in ("auto", "si_snr", "other"):
        raise ValueError(f"check_pipeline: loss_kind must be 'auto', 'si_snr' or 'other', got {loss_kind!r}")


# ---- what is checked: one item = a mixture, its references, maybe estimates ----------------------


@dataclass
class _Item:
    """One example: float64 numpy arrays ``(channels, samples)``; references and estimates by name."""

    name: str
    rate: int | None
    mixture: np.ndarray
    references: dict
    estimates: dict | None = None
    track: object = None            # the Track it comes from, if any (a separator function takes it)


def _audio(x, what: str) -> np.ndarray:
    """``x`` as a float64 numpy array (from numpy, torch or a list of numbers)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = x.float() if x.dtype in (torch.bfloat16, torch.float16) else x
        x = x.numpy()
    try:
        array = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"check_pipeline: {what} must be a numpy array or torch tensor of audio samples, "
                        f"got {type(x).__name__}") from None
    return array


def _two_d(x: np.ndarray) -> np.ndarray:
    """(samples,) -> (1, samples); (channels, samples) unchanged."""
    return x[None] if x.ndim == 1 else x


def _one_per_track(estimates, tracks: int) -> list:
    if isinstance(estimates, (dict, np.ndarray, torch.Tensor)) or not isinstance(estimates, (list, tuple)):
        raise TypeError(f"check_pipeline: with tracks, estimates must be a list with one entry per track "
                        f"(a dict {{source: (channels, samples)}} or an array), got {type(estimates).__name__}")
    if len(estimates) != tracks:
        raise ValueError(f"check_pipeline: {len(estimates)} estimates for {_count(tracks, 'track')}; "
                         "expected one entry per track, in the same order")
    return list(estimates)


def _items_from_tracks(tracks: list, estimates: list | None) -> list[_Item]:
    items = []
    for index, track in enumerate(tracks):
        references = {name: _two_d(_audio(track.sources[name], f"source {name!r} of track {track.name!r}"))
                      for name in track.source_names}
        mixture = _two_d(_audio(track.mixture, f"mixture of track {track.name!r}"))
        item = _Item(str(track.name), int(track.rate), mixture, references, track=track)
        if estimates is not None:
            item.estimates = _estimates_of_track(estimates[index], track)
        items.append(item)
    return items


def _estimates_of_track(entry, track) -> dict:
    if isinstance(entry, dict):
        return {str(name): _two_d(_audio(value, f"estimate {name!r} of track {track.name!r}"))
                for name, value in entry.items()}
    array = _audio(entry, f"the estimates of track {track.name!r}")
    channels = np.shape(track.mixture)[0]
    if array.ndim == 1 or (array.ndim == 2 and len(track.source_names) == 1 and channels > 1):
        array = array[None]  # one source
    if array.shape[0] != len(track.source_names):
        raise ValueError(f"check_pipeline: the estimates of track {track.name!r} have shape {array.shape}; "
                         f"expected (sources, [channels,] samples) with its {len(track.source_names)} sources "
                         f"{list(track.source_names)} first, or a dict {{source: estimate}}")
    return {name: _two_d(array[i]) for i, name in enumerate(track.source_names)}


def _items_from_arrays(mixture, references, estimates, rate) -> tuple[list[_Item], list[Finding]]:
    """Split batched arrays (or lists of per-item arrays) into items; shape problems are findings."""
    if isinstance(mixture, (list, tuple)):
        if not isinstance(references, (list, tuple)) or len(references) != len(mixture):
            raise ValueError(f"check_pipeline: mixture is a list of {len(mixture)} items, so references must be a "
                             f"list of as many, got {type(references).__name__}"
                             + (f" of {len(references)}" if isinstance(references, (list, tuple)) else ""))
        if estimates is not None and (not isinstance(estimates, (list, tuple)) or len(estimates) != len(mixture)):
            raise ValueError(f"check_pipeline: mixture is a list of {len(mixture)} items, so estimates must be a "
                             f"list of as many, got {type(estimates).__name__}")
        items, findings = [], []
        for index in range(len(mixture)):
            # each item is a batch of one: the same rules, and the same findings, as for a batch
            one_mixture = _audio(mixture[index], f"mixture[{index}]")[None]
            one_references = _audio(references[index], f"references[{index}]")[None]
            one_estimates = None if estimates is None else _audio(estimates[index], f"estimates[{index}]")[None]
            batch_items, batch_findings = _split_batch(one_mixture, one_references, one_estimates, rate,
                                                       names=[f"item {index}"])
            items += batch_items
            findings += [f for f in batch_findings if str(f) not in {str(g) for g in findings}]
        return items, findings
    mixture = _audio(mixture, "mixture")
    references = _audio(references, "references")
    estimates = None if estimates is None else _audio(estimates, "estimates")
    if mixture.ndim == 1:  # one item: give it a batch axis
        mixture, references = mixture[None], references[None]
        estimates = None if estimates is None else estimates[None]
    return _split_batch(mixture, references, estimates, rate)


def _split_batch(mixture: np.ndarray, references: np.ndarray, estimates, rate, names=None):
    """``mixture`` (B, T) or (B, C, T); references (B, [S,] [C,] T); estimates like the references."""
    if mixture.ndim not in (2, 3):
        raise ValueError(f"check_pipeline: mixture must be (samples,), (batch, samples) or (batch, channels, samples), "
                         f"got shape {mixture.shape}")
    names = names or [f"item {b}" for b in range(mixture.shape[0])]
    one_source = references.ndim == mixture.ndim
    if one_source:
        fits = references.shape[:-1] == mixture.shape[:-1]
    else:  # a sources axis after the batch axis
        fits = (references.ndim == mixture.ndim + 1
                and references.shape[:1] + references.shape[2:-1] == mixture.shape[:-1])
    if not fits:
        return [], [_shape_finding("references", references.shape, "mixture", mixture.shape,
                                   "references must have the mixture's shape (one source per item) or a sources "
                                   "axis after the batch axis, (batch, sources, [channels,] samples)")]
    findings = []
    # only the last axis (the length) may differ: any other difference would be broadcast by torch
    if estimates is not None and estimates.shape[:-1] != references.shape[:-1]:
        findings.append(_shape_finding("estimates", estimates.shape, "references", references.shape,
                                       "estimates must have the references' shape",
                                       scored="no output score was computed"))
        estimates = None
    if one_source:
        references = references[:, None]
        estimates = None if estimates is None else estimates[:, None]
    items = []
    for b, name in enumerate(names):
        sources = {f"s{i + 1}": _two_d(references[b, i]) for i in range(references.shape[1])}
        item = _Item(name, rate, _two_d(mixture[b]), sources)
        if estimates is not None:
            item.estimates = {f"s{i + 1}": _two_d(estimates[b, i]) for i in range(estimates.shape[1])}
        items.append(item)
    return items, findings


def _shape_finding(name: str, shape: tuple, other: str, other_shape: tuple, expected: str,
                   scored: str = "nothing was scored") -> Finding:
    """A shape mismatch, named; when torch would broadcast the two, what it would make of them."""
    shape, other_shape = tuple(shape), tuple(other_shape)
    try:
        broadcast = tuple(torch.broadcast_shapes(shape, other_shape))
    except RuntimeError:
        broadcast = None
    if broadcast is None or broadcast in (shape, other_shape):
        return Finding("shape", "error",
                       f"{name} {shape} and {other} {other_shape} do not line up: {expected}; {scored}")
    fix = _squeeze_fix(name, shape, other_shape) or _squeeze_fix(other, other_shape, shape)
    return Finding("broadcast", "error",
        f"{name} {shape} and {other} {other_shape} broadcast to {broadcast}: an elementwise loss or score would "
        f"compare items with other items' {other}, average the wrong pairs with the right ones, and raise "
        f"nothing. {expected[0].upper() + expected[1:]}" + (f"; {fix}" if fix else "") + f"; {scored}")


def _squeeze_fix(name: str, shape: tuple, target: tuple) -> str | None:
    """``name.squeeze(axis)`` when dropping one size-1 axis of ``shape`` gives ``target``."""
    for axis, size in enumerate(shape):
        if size == 1 and shape[:axis] + shape[axis + 1:] == target:
            return f"{name}.squeeze({axis}) gives {target}"
    return None


def _rate_findings(items: list[_Item], rate: int | None) -> list[Finding]:
    if rate is None:
        return []
    other = [item for item in items if item.rate != rate]
    if not other:
        return []
    rates = sorted({item.rate for item in other})
    return [Finding("rate", "warning",
        f"{len(other)} of {_count(len(items), 'track')} are at {' / '.join(f'{r} Hz' for r in rates)}, not the "
        f"expected {rate} Hz ({_first_few([i.name for i in other], MAX_EXAMPLES)}): a model trained at {rate} Hz "
        f"hears them at the wrong pitch and speed unless they are resampled (tpsep.audio.resample, or "
        "tpsep.separate.separate, which resamples)")]


def _run_separator(separator, items: list[_Item]) -> list[Finding]:
    """Fill each item's estimates by running the separator; a wrong output shape is a finding."""
    from tpsep.separate import separate

    findings = []
    for item in items:
        if not isinstance(separator, torch.nn.Module):  # a function of a track (only given with tracks)
            output = separator(item.track)
            if not isinstance(output, dict):
                raise TypeError(f"check_pipeline: separator(track) must return a dict {{source: (channels, samples)}}, "
                                f"got {type(output).__name__} for track {item.name!r}")
            item.estimates = {str(k): _two_d(_audio(v, f"estimate {k!r}")) for k, v in output.items()}
            continue
        config_rate = getattr(getattr(separator, "config", None), "rate", None)
        if config_rate:  # tpsep's way: resample to the model's rate and back
            output = separate(separator, item.mixture.astype(np.float32), item.rate or config_rate)
            item.estimates = {k: _two_d(_audio(v, f"estimate {k!r}")) for k, v in output.items()}
            continue
        output = _run_module(separator, item.mixture)
        channels, samples = item.mixture.shape
        if output.ndim != 4 or output.shape[0] != 1 or output.shape[2:] != item.mixture.shape:
            findings.append(Finding("shape", "error",
                f"the separator turned a mixture (1, {channels}, {samples}) into {tuple(output.shape)}; expected "
                f"(1, sources, {channels}, {samples}), i.e. (batch, sources, channels, samples); no output score "
                "was computed"))
            return findings
        item.estimates = {f"s{i + 1}": output[0, i] for i in range(output.shape[1])}
    return findings


def _run_module(module: torch.nn.Module, mixture: np.ndarray) -> np.ndarray:
    output = _run_in_eval_mode(module, torch.from_numpy(mixture.astype(np.float32))[None])
    return _audio(output, "the separator's output")


@torch.no_grad()
def _run_in_eval_mode(module: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """``module(inputs)`` in eval mode, on the module's device, without gradients; the module's
    mode is restored afterwards, even on error."""
    was_training = module.training
    module.eval()
    try:
        device = next(module.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    try:
        return module(inputs.to(device))
    finally:
        module.train(was_training)


# ---- the measurements ----------------------------------------------------------------------------


def find_lag(signal, reference, max_lag: int) -> tuple[int, float]:
    """How many samples ``reference`` is late against ``signal``, by cross-correlation.

    The correlation at every shift is computed at once with FFTs; only shifts up to ``max_lag``
    samples either way are considered. Signals may differ in length.

    Args:
        signal, reference: ``(samples,)`` or ``(channels, samples)`` (channels are averaged).
        max_lag: the largest shift searched, in samples, each way.

    Returns:
        ``(lag, correlation)``: ``lag > 0`` when the reference is delayed (its sample ``n + lag``
        lines up with the signal's sample ``n``), ``< 0`` when it is early; ``correlation`` is the
        normalised cross-correlation there, in [-1, 1] (near 0: no shift makes them alike).
    """
    a, b = (np.asarray(x, dtype=np.float64) for x in (signal, reference))
    a, b = (x.mean(axis=0) if x.ndim == 2 else x for x in (a, b))
    a, b = a - a.mean(), b - b.mean()
    norm = np.linalg.norm(a) * np.linalg.norm(b)
    if norm == 0:
        return 0, 0.0
    size = scipy.fft.next_fast_len(len(a) + len(b))  # long enough that no shift wraps around
    correlation = scipy.fft.irfft(np.conj(scipy.fft.rfft(a, size)) * scipy.fft.rfft(b, size), size)
    max_lag = max(0, min(int(max_lag), len(a) - 1, len(b) - 1))
    lags = np.arange(-max_lag, max_lag + 1)
    values = correlation[lags % size] / norm  # a negative shift sits at the end of the circular result
    best = int(np.argmax(np.abs(values)))     # a polarity flip is still the same signal
    return int(lags[best]), float(values[best])


def spectral_rolloff(x, rate: float = 2.0, floor_db: float = ROLLOFF_FLOOR_DB) -> float:
    """The highest frequency whose power is within ``floor_db`` of the spectrum's peak (Welch).

    Where the spectrum of a signal stops: about the Nyquist frequency for audio that fills its
    band, half of it for audio at twice the rate it is read at.

    Args:
        x: ``(samples,)`` or ``(channels, samples)`` (channels are averaged).
        rate: sample rate in Hz; the default 2.0 gives the rolloff as a fraction of Nyquist.
        floor_db: how far below the peak the spectrum counts as stopped.

    Returns:
        the rolloff frequency (Hz, or fraction of Nyquist); NaN for a silent or too short signal.
    """
    from scipy.signal import welch

    x = np.asarray(x, dtype=np.float64)
    x = x.mean(axis=0) if x.ndim == 2 else x
    if len(x) < 16 or not np.any(x - x.mean()):
        return float("nan")
    frequencies, power = welch(x - x.mean(), fs=rate, nperseg=min(512, len(x)))
    audible = np.nonzero(power > power.max() * 10 ** (-floor_db / 10))[0]
    return float(frequencies[audible.max()])


def _overlap(signal: np.ndarray, reference: np.ndarray, lag: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The parts of ``signal`` and ``reference`` (channels, samples) that line up when the reference
    is ``lag`` samples late, cut to the same length."""
    if lag > 0:
        reference = reference[..., lag:]
    elif lag < 0:
        signal = signal[..., -lag:]
    length = min(signal.shape[-1], reference.shape[-1])
    return signal[..., :length], reference[..., :length]


def _score(estimate: np.ndarray, reference: np.ndarray, lag: int = 0) -> float:
    """SI-SDR in dB on the overlapping part (mean over channels); NaN when it is undefined."""
    from tpsep.metrics import si_sdr

    estimate, reference = _overlap(estimate, reference, lag)
    if estimate.shape != reference.shape or estimate.shape[-1] < 2:
        return float("nan")
    centred = reference - reference.mean(axis=-1, keepdims=True)
    if not np.all(np.any(centred, axis=-1)):
        return float("nan")  # a silent reference: SI-SDR is undefined
    return float(si_sdr(torch.from_numpy(estimate), torch.from_numpy(reference)).mean())


def _level_score(mixture: np.ndarray, reference: np.ndarray) -> float:
    """The SI-SDR the levels predict if the reference is in the mixture: reference energy over the
    energy of everything else (exact when the other sources are uncorrelated with it)."""
    mixture, reference = _overlap(mixture, reference)
    rest = np.sum((mixture - reference) ** 2)
    return float(10 * np.log10(np.sum(reference ** 2) / max(rest, 1e-20) + 1e-20))


def _rate_mix_up(ratio: float) -> tuple[int, int] | None:
    """The (higher, lower) rate pair whose ratio is within ROLLOFF_TOLERANCE of ``ratio`` (or of 1/ratio)."""
    if not np.isfinite(ratio) or ratio <= 0:
        return None
    factor = ratio if ratio > 1 else 1 / ratio
    for high, low in RATE_MIX_UPS:
        if abs(factor / (high / low) - 1) < ROLLOFF_TOLERANCE:
            return high, low
    return None


def _resampled(reference: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    from tpsep.audio import resample
    return resample(reference, rate_in, rate_out, method="polyphase").astype(np.float64)


class _Notes:
    """What the per-item checks saw, gathered by kind, to become one finding per kind."""

    def __init__(self):
        self.seen: dict = {}

    def add(self, kind: str, example: str) -> None:
        self.seen.setdefault(kind, []).append(example)

    def findings(self, total: int) -> list[Finding]:
        out = []
        for kind, (check, severity, explanation) in _NOTE_KINDS.items():
            examples = self.seen.get(kind)
            if not examples:
                continue
            # one example per line under the explanation: the message stays readable with long examples
            lines = [f"{explanation}; {len(examples)} case{'s' if len(examples) > 1 else ''} in "
                     f"{_count(total, 'track')}:"]
            lines += [f"    {example}" for example in examples[:MAX_EXAMPLES]]
            if len(examples) > MAX_EXAMPLES:
                lines.append(f"    ... ({len(examples) - MAX_EXAMPLES} more)")
            out.append(Finding(check, severity, "\n".join(lines)))
        return out


# kind -> (check, severity, what it means and what to do); the examples follow
_NOTE_KINDS = {
    "finite": ("finite", "error", "NaN/Inf in the audio: nothing can be scored against it"),
    "shape": ("shape", "error", "channel counts differ: every signal of an item must be (channels, samples) "
                                "with the mixture's channels"),
    "length": ("length", "error", "lengths differ between the mixture and its references (scores use the "
                                  "shared part): a reference cut or padded differently, or read at another rate "
                                  "(a 2x longer reference is a 2x higher rate)"),
    "estimate_length": ("length", "error", "estimates and references differ in length (scores use the shared "
                                           "part): the model pads or crops (a hop that does not divide the length, "
                                           "an STFT with center=True not trimmed); cut estimates to the "
                                           "mixture's length"),
    "rate": ("rate", "error", "a reference at another sample rate than its mixture: its spectrum stops at a rate "
                              "factor of the mixture's and the input score is broken: read each file at its own "
                              "rate, then resample everything to one (tpsep.audio.resample); never reinterpret "
                              "samples at another rate"),
    "lag": ("lag", "error", "references shifted against their mixture: scores against them are meaningless "
                            "(1 ms is already about -20 dB on 8 kHz speech). Align them (crop the same start), "
                            "and look for a padding, a hop or an STFT centre applied to one side only"),
    "small_lag": ("lag", "warning", "references shifted by 1-2 samples against their mixture (costs several dB "
                                    "at 8 kHz): an off-by-one in a crop, a padding or a filter delay"),
    "input": ("input", "error", "input score far below 0 dB: the mixture scores below -15 dB against its "
                                "reference, and no shift within the search makes them alike: mixture and "
                                "reference are not the same recording. A reference paired with another item "
                                "(shuffled lists, a sort by name on one side only), another file, or a wrong "
                                "rate; every score against these references measures the pipeline, not the model"),
    "input_high": ("input", "warning", "the mixture already scores above +40 dB against a reference: the "
                                       "reference is (almost) the mixture itself: the mixture passed as reference, "
                                       "or the target passed as input"),
    "silent": ("silent", "warning", "a silent reference: SI-SDR is undefined against it (left out)"),
    "sources": ("sources", "error", "estimates and references cannot be paired: different sources"),
    "output_lag": ("lag", "error", "estimates shifted against their references: the model (or the inverse "
                                   "STFT) shifts its output: a padding, a hop or an STFT centre not undone; "
                                   "the table's output scores are as is, not aligned"),
}


def _check_item(item: _Item, max_lag: int, notes: _Notes) -> dict:
    """Measure one item (its row of the table) and note what looks wrong."""
    row = {"track": item.name, "samples": item.mixture.shape[-1]}
    signals = {"mixture": item.mixture, **{f"reference {k}": v for k, v in item.references.items()},
               **{f"estimate {k}": v for k, v in (item.estimates or {}).items()}}
    broken = [name for name, x in signals.items() if not np.isfinite(x).all()]
    if broken:
        notes.add("finite", f"{item.name}: {', '.join(broken)}")
        return row
    ms = (lambda samples: f", {1000 * samples / item.rate:.1f} ms") if item.rate else (lambda samples: "")
    mixture = item.mixture
    mixture_rolloff = spectral_rolloff(mixture)
    inputs = {}
    for name, reference in item.references.items():
        if reference.shape[0] != mixture.shape[0]:
            notes.add("shape", f"{item.name} {name}: {reference.shape[0]} channels, the mixture {mixture.shape[0]}")
            continue
        if reference.shape[-1] != mixture.shape[-1]:
            difference = reference.shape[-1] - mixture.shape[-1]
            factor = reference.shape[-1] / mixture.shape[-1]
            notes.add("length", f"{item.name} {name}: {reference.shape[-1]} samples, the mixture "
                                f"{mixture.shape[-1]} ({difference:+d}, x{factor:.2f})")
        score = _score(mixture, reference)
        row[f"input_{name}"] = inputs[name] = score
        if np.isnan(score):
            notes.add("silent", f"{item.name} {name}")
        lag, _ = find_lag(mixture, reference, max_lag)
        aligned = _score(mixture, reference, lag)
        # a lag counts only where shifting makes the two alike; otherwise there is no lag to speak of
        lag_is_real = np.isfinite(aligned) and aligned >= INPUT_FLOOR_DB and (lag == 0 or aligned > score + 1)
        row[f"lag_{name}"] = lag if lag == 0 or lag_is_real else np.nan  # 0: nothing claimed, nothing to doubt
        ratio = spectral_rolloff(reference) / mixture_rolloff
        row[f"rolloff_ratio_{name}"] = ratio
        if lag_is_real and abs(lag) > LAG_TOLERANCE:
            notes.add("lag", f"{item.name} {name} is {lag:+d} samples late{ms(lag)}: input SI-SDR {score:+.1f} dB "
                             f"as is, {aligned:+.1f} dB once aligned")
            continue
        if lag_is_real and lag != 0:
            notes.add("small_lag", f"{item.name} {name}: {lag:+d} samples{ms(lag)}, {score:+.1f} dB as is, "
                                   f"{aligned:+.1f} dB aligned")
            continue
        if score > INPUT_CEILING_DB:
            notes.add("input_high", f"{item.name} {name}: {score:+.1f} dB")
        # a quiet stem (a song's drums) scores low against a mixture of loud ones: only a score far
        # below what the levels predict means that the reference is not in the mixture
        predicted = _level_score(mixture, reference)
        if score < INPUT_FLOOR_DB and score < predicted - LEVEL_MARGIN_DB:
            _note_broken_input(item, name, reference, score, predicted, ratio, notes)
    if item.estimates is not None:
        _check_estimates(item, inputs, max_lag, notes, row)
    _add_means(row, item.references)
    return row


def _note_broken_input(item: _Item, name: str, reference: np.ndarray, score: float, predicted: float,
                       ratio: float, notes: _Notes) -> None:
    """A mixture that scores far below 0 dB against its reference: a rate mix-up when the spectrum
    (or the length) says so, confirmed by resampling when it can be; an unknown pairing otherwise."""
    length_ratio = reference.shape[-1] / item.mixture.shape[-1]
    by_spectrum = _rate_mix_up(ratio)
    mix_up = by_spectrum or _rate_mix_up(length_ratio)
    if mix_up is None:
        notes.add("input", f"{item.name} {name}: {score:+.1f} dB where the levels predict {predicted:+.1f} dB")
        return
    high, low = mix_up
    # a reference whose band is narrower (or that is longer) than the mixture's holds more samples per
    # second of sound: it was recorded at the higher rate and is read at the lower one
    recorded_higher = ratio < 1 if by_spectrum else length_ratio > 1
    rate_in, rate_out = (high, low) if recorded_higher else (low, high)
    evidence = f"its spectrum stops at {ratio:.2f} x the mixture's"
    if item.rate:
        evidence += (f" ({spectral_rolloff(reference, item.rate):.0f} Hz against "
                     f"{spectral_rolloff(item.mixture, item.rate):.0f} Hz)")
    if length_ratio != 1:
        evidence += f", its length is {length_ratio:.2f} x the mixture's"
    example = f"{item.name} {name}: {score:+.1f} dB; {evidence}; likely {rate_in} Hz audio read as {rate_out} Hz"
    repaired = _score(item.mixture, _resampled(reference, rate_in, rate_out))
    if np.isfinite(repaired) and repaired > INPUT_FLOOR_DB:
        example += f" (resampled {rate_in} -> {rate_out} Hz it scores {repaired:+.1f} dB)"
    notes.add("rate", example)


def _check_estimates(item: _Item, inputs: dict, max_lag: int, notes: _Notes, row: dict) -> None:
    references = dict(item.references)
    for name in item.estimates:  # "accompaniment" is a stem of a song without being one of its sources
        if name not in references and hasattr(item.track, "stem"):
            try:
                references[name] = _two_d(_audio(item.track.stem(name), name))
            except KeyError:
                pass
    matched = _match_estimates(item.estimates, references)
    if matched is None:
        notes.add("sources", f"{item.name}: estimates {list(item.estimates)}, references {list(item.references)}")
        return
    for name, estimate in matched.items():
        reference = references[name]
        if estimate.shape[0] != reference.shape[0]:
            notes.add("shape", f"{item.name} estimate {name}: {estimate.shape[0]} channels, its reference "
                               f"{reference.shape[0]}")
            continue
        if estimate.shape[-1] != reference.shape[-1]:
            notes.add("estimate_length", f"{item.name} {name}: {estimate.shape[-1]} samples, its reference "
                                         f"{reference.shape[-1]} ({estimate.shape[-1] - reference.shape[-1]:+d})")
        score = _score(estimate, reference)
        row[f"output_{name}"] = score
        if name in inputs:
            row[f"improvement_{name}"] = score - inputs[name]
        lag, _ = find_lag(reference, estimate, max_lag)  # > 0: the estimate comes late
        aligned = _score(estimate, reference, -lag)
        lag_is_real = np.isfinite(aligned) and aligned >= INPUT_FLOOR_DB and (lag == 0 or aligned > score + 1)
        row[f"output_lag_{name}"] = lag if lag == 0 or lag_is_real else np.nan
        if lag_is_real and abs(lag) > LAG_TOLERANCE:
            ms = f", {1000 * lag / item.rate:.1f} ms" if item.rate else ""
            notes.add("output_lag", f"{item.name} estimate {name} is {lag:+d} samples late{ms}: {score:+.1f} dB "
                                    f"as is, {aligned:+.1f} dB once aligned")


def _match_estimates(estimates: dict, references: dict) -> dict | None:
    """``{reference name: estimate}``, by the permutation of best mean SI-SDR (PIT models give
    their outputs in any order); None when they cannot be paired."""
    names = list(estimates)
    if set(names) <= set(references) and len(names) < len(references):
        candidates = names                         # a subset, e.g. 2 speakers of a noisy mixture
    elif len(names) == len(references):
        candidates = list(references)
    else:
        return None
    if len(names) > 4:                             # 120 permutations and more: trust the order
        return dict(zip(candidates, estimates.values()))
    scores = np.array([[_score(estimates[e], references[r]) if estimates[e].shape[0] == references[r].shape[0]
                        else -np.inf for r in candidates] for e in names])
    scores = np.nan_to_num(scores, nan=-np.inf)
    best = max(itertools.permutations(range(len(names))),
               key=lambda order: sum(scores[e, r] for e, r in enumerate(order)))
    return {candidates[r]: estimates[names[e]] for e, r in enumerate(best)}


def _add_means(row: dict, references: dict) -> None:
    for what in ("input", "output", "improvement"):
        values = [row[f"{what}_{name}"] for name in references if f"{what}_{name}" in row]
        if values and np.isfinite(values).any():
            row[what] = float(np.nanmean(values))


def _spread_findings(table: pd.DataFrame) -> list[Finding]:
    if "improvement" not in table:
        return []
    improvement = table["improvement"].dropna()
    if improvement.empty or not (improvement.min() < -SPREAD_DB and improvement.max() > SPREAD_DB):
        return []
    worst, best = improvement.idxmin(), improvement.idxmax()
    return [Finding("spread", "error",
        f"improvements spread from {improvement.min():+.1f} dB ({worst}) to {improvement.max():+.1f} dB ({best}): "
        f"a model gains a similar amount on every item (a few to about 20 dB); gains of tens of dB both ways mean "
        f"some items are scored against the wrong references (shifted, wrong rate, paired with another item, "
        f"broadcast). Fix the pipeline (the findings above) before reading any average")]


COLUMN_ORDER = ("samples", "input_", "lag_", "rolloff_ratio_", "output_", "improvement_", "output_lag_")


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    """Columns grouped by what they measure (every source's input score, then every lag...), means last."""
    def rank(column: str) -> int:
        # the longest matching prefix wins: "output_lag_s1" is a lag, not an output score
        matches = [prefix for prefix in COLUMN_ORDER if column.startswith(prefix)]
        return COLUMN_ORDER.index(max(matches, key=len)) if matches else len(COLUMN_ORDER)
    return table[sorted(table.columns, key=rank)]  # sorted() is stable: sources keep their order


def _sources_of(table: pd.DataFrame) -> list[str]:
    return [column[len("input_"):] for column in table.columns if column.startswith("input_")]


def _db_range(values: np.ndarray) -> str:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if not values.size:
        return "none"
    return f"{values.min():+.1f} .. {values.max():+.1f} dB, median {np.median(values):+.1f} dB"


# ---- the run's log -------------------------------------------------------------------------------

TRAIN_LOSS_KEYS = ("loss", "train_loss")
VALID_LOSS_KEYS = ("valid_loss", "val_loss", "validation_loss")
LR_KEYS = ("lr", "learning_rate")


@dataclass
class _RunLog:
    """A run's series, whatever wrote them: steps and values."""

    train: list = field(default_factory=list)      # (step, loss)
    lr: list = field(default_factory=list)         # (step, lr)
    valid: list = field(default_factory=list)      # (step, epoch or None, loss)
    metrics: dict = field(default_factory=dict)    # name -> [(step, value)], higher is better
    loss_names: set = field(default_factory=set)   # the keys the losses were read from


def _read_run_log(log) -> _RunLog:
    from tpsep.reporting import History

    if isinstance(log, dict) and "train_loss" in log and isinstance(log["train_loss"], list):
        log = History.from_state_dict(log)
    if isinstance(log, History):
        run = _RunLog(train=list(zip(log.train_step, log.train_loss)), lr=list(zip(log.train_step, log.lr)),
                      valid=list(zip(log.valid_step, log.valid_epoch, log.valid_loss)))
        run.loss_names = {"loss", "valid_loss"}
        return run
    if isinstance(log, (str, os.PathLike)):
        return _records_to_run_log(_read_jsonl(Path(log)))
    if isinstance(log, (list, tuple)):
        for index, record in enumerate(log):
            if not isinstance(record, dict):
                raise TypeError(f"check_pipeline: log must be a list of dicts (one per line of log.jsonl), but item "
                                f"{index} is a {type(record).__name__}")
        return _records_to_run_log(list(log))
    raise TypeError(f"check_pipeline: log must be the path of a run's log.jsonl (or of its folder), a list of dicts "
                    f"or a tpsep.reporting.History, got {type(log).__name__}")


def _read_jsonl(path: Path, who: str = "check_pipeline") -> list[dict]:
    if path.is_dir():
        if not (path / "log.jsonl").is_file():
            raise FileNotFoundError(f"{who}: the folder {path} holds no log.jsonl; expected a run's folder "
                                    "(TrainConfig(out_dir=...)) or the path of its log.jsonl")
        path = path / "log.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{who}: log {path} does not exist; expected a run's log.jsonl or its folder")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{who}: line {number} of {path} is not JSON ({error.msg}): "
                             f"{line[:80]!r}") from None
        if isinstance(record, dict):
            records.append(record)
    return records


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return float(value) if np.isfinite(value) else None


def _records_to_run_log(records: list) -> _RunLog:
    run = _RunLog()
    for index, record in enumerate(records):
        step = _number(record.get("step", record.get("global_step", index)))
        step = index if step is None else step
        train = next((k for k in TRAIN_LOSS_KEYS if _number(record.get(k)) is not None), None)
        valid = next((k for k in VALID_LOSS_KEYS if _number(record.get(k)) is not None), None)
        lr = next((k for k in LR_KEYS if _number(record.get(k)) is not None), None)
        if train:
            run.train.append((step, _number(record[train])))
            run.loss_names.add(train)
        if valid:
            run.valid.append((step, _number(record.get("epoch")), _number(record[valid])))
            run.loss_names.add(valid)
        if lr:
            run.lr.append((step, _number(record[lr])))
        for key, value in record.items():
            lowered = key.lower()
            if "loss" in lowered:
                run.loss_names.add(key)
            elif ("snr" in lowered or "sdr" in lowered) and _number(value) is not None:
                run.metrics.setdefault(key, []).append((step, _number(value)))
    return run


def _trend(values: list) -> tuple[float, float]:
    """(start, end): the medians of the first and the last quarter of ``values`` (steady against noise)."""
    quarter = max(1, len(values) // 4)
    return float(np.median(values[:quarter])), float(np.median(values[-quarter:]))


def _looks_like_db(values: list, run: _RunLog, loss_kind: str) -> bool:
    if loss_kind != "auto":
        return loss_kind == "si_snr"
    if any("snr" in name.lower() or "sdr" in name.lower() for name in run.loss_names):
        return True
    end = _trend(values)[1]
    return min(values) < 0 or 10 <= end <= 60


def _log_findings(run: _RunLog, loss_kind: str) -> tuple[list[Finding], dict]:
    findings = []
    series = (("validation loss", [v for _, _, v in run.valid]), ("training loss", [v for _, v in run.train]))
    for label, values in series:
        if len(values) >= 4 and not findings:  # the training loss only when the validation loss said nothing
            findings += _sign_findings(label, values, run, loss_kind)
    summary = _run_summary(run)
    findings += _lr_findings(run, summary)
    return findings, summary


def _sign_findings(label: str, values: list, run: _RunLog, loss_kind: str) -> list[Finding]:
    start, end = _trend(values)
    findings = []
    if _looks_like_db(values, run, loss_kind):
        if end > 0 and end - start > 1.0:
            findings.append(Finding("sign", "error",
                f"the {label} is positive and rising, {start:+.1f} -> {end:+.1f} (medians of the first and last "
                f"quarter of the run): a loss that is minus SI-SNR should be negative and fall (-10 means 10 dB). "
                f"The SI-SNR itself is logged (or minimised) as the loss: flip its sign (loss = -si_snr); "
                f"until then anything that keeps the lowest loss as the best checkpoint keeps the worst"))
        elif end > 10:
            findings.append(Finding("sign", "error" if loss_kind == "si_snr" else "warning",
                f"the {label} sits at {end:+.1f}: if it is minus SI-SNR, that is an SI-SNR of {-end:.1f} dB, "
                f"estimates uncorrelated with their references (check the data with check_pipeline(tracks)); if "
                f"it is the SI-SNR itself, it is logged with the wrong sign"
                + ("" if loss_kind == "si_snr" else " (read as dB because its values lie where SI-SNRs do; "
                   "pass loss_kind='other' for an L1 or MSE loss)")))
    loss_change = end - start
    for name, series in run.metrics.items():
        metric = [v for _, v in series]
        if len(metric) < 4:
            continue
        metric_start, metric_end = _trend(metric)
        metric_change = metric_end - metric_start
        moved = abs(loss_change) > 0.05 * max(abs(start), abs(end), 1e-12)
        if moved and abs(metric_change) > 0.5 and np.sign(loss_change) == np.sign(metric_change):
            findings.append(Finding("sign", "error",
                f"the {label} {'falls' if loss_change < 0 else 'rises'} ({start:+.4g} -> {end:+.4g}) and {name} "
                f"{'falls' if metric_change < 0 else 'rises'} with it ({metric_start:+.1f} -> {metric_end:+.1f} dB), "
                f"although a lower loss should mean a higher {name}: the loss has the wrong sign "
                "(it minimises the metric), or the metric is computed on other data than the loss"))
    return findings


def _run_summary(run: _RunLog) -> dict:
    steps = [s for s, _ in run.train] + [s for s, _ in run.lr] + [s for s, _, _ in run.valid]
    summary = {"steps": int(max(steps)) if steps else 0}
    epochs = [e for _, e, _ in run.valid if e is not None]
    if epochs:
        summary["epochs"] = int(max(epochs))
    rates = [(s, v) for s, v in run.lr if v > 0]
    if rates:
        peak_index = int(np.argmax([v for _, v in rates]))
        summary.update(lr_peak=rates[peak_index][1], lr_peak_step=int(rates[peak_index][0]), lr_end=rates[-1][1])
        summary["lr_factor"] = summary["lr_peak"] / summary["lr_end"]
        collapsed = [s for s, v in rates[peak_index:] if v < LR_COLLAPSE * summary["lr_peak"]]
        summary["lr_collapse_step"] = int(collapsed[0]) if collapsed else None
    if run.valid:
        best = min(range(len(run.valid)), key=lambda i: run.valid[i][2])
        step, epoch, loss = run.valid[best]
        summary.update(best_step=int(step), best_epoch=None if epoch is None else int(epoch), best_valid=loss,
                       validations=len(run.valid))
    return summary


def _fold(factor: float) -> str:
    return f"{factor:,.0f}" if factor < 1e6 else f"{factor:.1e}"


def _lr_findings(run: _RunLog, summary: dict) -> list[Finding]:
    findings, steps = [], max(summary["steps"], 1)
    best = ""
    if summary.get("best_step") is not None:
        epoch = (f" (epoch {summary['best_epoch']:,} of {summary['epochs']:,})"
                 if summary.get("best_epoch") is not None and summary.get("epochs") else "")
        best = (f"; the lowest validation loss was at step {summary['best_step']:,}{epoch}, "
                f"{summary['best_step'] / steps:.0%} of the run")
    collapse_step = summary.get("lr_collapse_step")
    if collapse_step is not None and summary["lr_end"] < LR_COLLAPSE * summary["lr_peak"]:
        early = collapse_step < 0.8 * steps
        findings.append(Finding("lr", "error" if early else "warning",
            f"the learning rate collapsed {_fold(summary['lr_factor'])}-fold, from {summary['lr_peak']:.3g} (its peak, "
            f"step {summary['lr_peak_step']:,}) to {summary['lr_end']:.3g} at the end; it is below 1/1000 of its peak "
            f"from step {collapse_step:,} on ({collapse_step / steps:.0%} of the {steps:,} steps)"
            + (f": the last {1 - collapse_step / steps:.0%} of the run hardly moved the weights" if early else "")
            + f"{best}. Use a schedule with a floor (cosine to min_lr ~ peak/100, plateau halving with a minimum), "
            "or stop where the LR gets there"))
    elif summary.get("validations", 0) >= 4 and summary["best_step"] < 0.25 * steps:
        findings.append(Finding("best", "warning",
            f"the lowest validation loss came early{best}: nothing after it helped. Overfitting, an LR too high "
            "or too low for the rest, or a validation loss with the wrong sign (then the 'best' is the worst)"))
    return findings
