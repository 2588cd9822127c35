"""Sanity checks that catch the classic reasons why "the loss does not move".

Four checks, each cheap enough to run before any long training (or when it breaks):

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

Each returns plain objects whose ``str()`` is a readable report::

    for finding in check_domains(inputs, targets):
        print(finding)
    print(mask_statistics(model, inputs))
    overfit_one_batch(model, loss_fn, batch)      # raises OverfitError with a report if it fails
    print(find_nonfinite(model, loss_fn, batch))  # where a NaN/Inf starts, forward and backward
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
