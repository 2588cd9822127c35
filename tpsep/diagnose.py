"""Sanity checks that catch the classic reasons why "the loss does not move".

Three checks, each cheap enough to run before any long training:

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

Each returns plain objects whose ``str()`` is a readable report::

    for finding in check_domains(inputs, targets):
        print(finding)
    print(mask_statistics(model, inputs))
    overfit_one_batch(model, loss_fn, batch)      # raises OverfitError with a report if it fails
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
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
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    masks = model(_as_tensor(inputs, "inputs").to(device)).detach().float().cpu()
    model.train(was_training)
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
