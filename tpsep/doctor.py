"""``tpsep doctor RUN_DIR``: read a training run and name, in plain words, the classic failures it shows.

A run's folder (``tpsep train --out``, or ``TrainConfig(out_dir=...)``) holds ``log.jsonl``
(the losses, gradient norms and learning rates, the validation losses, and, when training
stopped on an error, that error), ``last.pt`` and ``best.pt`` (the weights, the training
configuration, and what the model and the data were). :func:`examine_run` reads them and
looks for the failures the course teaches:

- a loss that does not move, or a loss that is exactly 0;
- NaN or Inf: in which series and from which step, in which weights, and the error the
  trainer stopped on, which says whether the batch, the weights or the forward pass made it;
- a learning rate that collapsed long before the end;
- a training loss that keeps falling while the validation loss climbs back: the gap widens,
  the model memorises too little data;
- input scores (the mixture against each reference, on the run's own data) that mean a
  broken pipeline rather than a weak model;
- 513 frequency bins where the model expected 512.

It reuses :mod:`tpsep.diagnose`, and only reads: nothing is trained or written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from tpsep.diagnose import (Finding, _lr_findings, _read_jsonl, _records_to_run_log, _run_summary, _trend,
                            check_pipeline, report)

FLAT_CHANGE = 0.05       # a loss whose start and end differ by less than this share has not moved
TINY_LR = 1e-6           # below this an AdamW step barely changes a weight
VALID_RISE = 0.1         # a validation loss 10 % above its best while the training loss fell 10 %: a gap


@dataclass
class RunReport:
    """What :func:`examine_run` found; ``print()`` it."""

    run_dir: Path
    summary: dict = field(default_factory=dict)
    findings: list = field(default_factory=list)

    @property
    def errors(self) -> list:
        return [f for f in self.findings if f.severity == "error"]

    def __str__(self) -> str:
        facts = ", ".join(f"{key} {value}" for key, value in self.summary.items())
        return f"tpsep doctor: {self.run_dir}\n  {facts}\n" + report(self.findings, "the run")


def examine_run(run_dir, *, check_data: bool = True, max_tracks: int = 4) -> RunReport:
    """Read the run in ``run_dir`` (its ``log.jsonl``, configuration and last checkpoint) and
    return the failures it shows, most serious first.

    Args:
        run_dir: the run's folder, or its ``log.jsonl`` or a checkpoint in it.
        check_data: also score the mixture against each reference on the first
            ``max_tracks`` validation tracks of the run's dataset (as recorded in the checkpoint).
    """
    run_dir = _run_folder(run_dir)
    records = _read_jsonl(run_dir / "log.jsonl", who="the run's log") if (run_dir / "log.jsonl").is_file() else []
    checkpoint = _last_checkpoint(run_dir)
    result = RunReport(run_dir, _summary(records, checkpoint))
    result.findings += _stopped_on_an_error(records)
    result.findings += _nonfinite_in_log(records)
    result.findings += _nonfinite_weights(checkpoint)
    run = _records_to_run_log(records)
    losses = [loss for _, loss in run.train]
    if losses and all(loss == 0 for loss in losses):
        result.findings.append(Finding("zero", "error",
            f"the training loss is exactly 0 at every one of the {len(losses)} logged steps: no gradient flows, "
            "nothing is learnt. A loss that compares a tensor with itself (the target fed as the input, an "
            "estimate scored against itself), a mask or a slice that selects nothing, or a quantile of an "
            "all-silent batch; assert that the loss at step 0 is above 0"))
    elif len(losses) >= 8:
        result.findings += _flat_loss(losses, checkpoint)
    if run.train or run.lr or run.valid:
        gap = _widening_gap(run)
        # "the best validation came early" is noise on a loss that never moved, and the gap explains it
        explained = gap or any(f.check in ("flat", "zero") for f in result.findings)
        result.findings += [f for f in _lr_findings(run, _run_summary(run)) if not explained or f.check != "best"]
        result.findings += gap
    if check_data and checkpoint is not None:
        result.findings += _input_scores(checkpoint, max_tracks)
    result.findings.sort(key=lambda f: f.severity != "error")
    return result


# ---- reading the run ------------------------------------------------------------------------------

def _run_folder(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; expected a training run's folder (the --out "
                                "of tpsep train, or TrainConfig(out_dir=...)) holding log.jsonl and last.pt")
    if path.is_file():
        path = path.parent
    if not (path / "log.jsonl").is_file() and not any((path / name).is_file() for name in ("last.pt", "best.pt")):
        found = sorted(p.name for p in path.iterdir())[:8]
        raise FileNotFoundError(f"{path} holds neither log.jsonl nor last.pt/best.pt (it holds "
                                f"{found or 'nothing'}); expected the folder a training run wrote")
    return path


def _last_checkpoint(run_dir: Path) -> dict | None:
    from tpsep.checkpoints import load_checkpoint

    for name in ("last.pt", "best.pt"):
        if (run_dir / name).is_file():
            return load_checkpoint(str(run_dir / name))
    return None


def _summary(records: list, checkpoint: dict | None) -> dict:
    summary = {}
    extra = (checkpoint or {}).get("extra") or {}
    if extra.get("model_name"):
        summary["model"] = extra["model_name"]
    if extra.get("dataset"):
        summary["data"] = extra["dataset"]
    steps = [r["step"] for r in records if isinstance(r.get("step"), (int, float))]
    if steps:
        summary["steps"] = int(max(steps))
    config = (checkpoint or {}).get("train_config") or {}
    for key in ("lr", "schedule", "precision", "grad_clip"):
        if key in config:
            summary[key] = config[key]
    return summary


# ---- the checks ----------------------------------------------------------------------------------

def _stopped_on_an_error(records: list) -> list[Finding]:
    errors = [r for r in records if isinstance(r.get("error"), str)]
    if not errors:
        return []
    step, message = errors[-1].get("step"), errors[-1]["error"]
    if "513" in message:
        return [Finding("bins", "error",
            f"training stopped at step {step} on 513 frequency bins where the model expects 512: {message}. "
            "An n_fft of 1024 gives 513 bins (0 to Nyquist); the U-Net halves the frequency axis six times, so "
            "the course drops the Nyquist bin before the network (tpsep.spectral.crop_bins) and gives it back "
            "before the inverse STFT (tpsep.spectral.restore_bins)")]
    if message.startswith("NonFiniteError"):
        return [Finding("nan", "error",
            f"training stopped at step {step} on a loss that is not finite. The trainer said: {message}")]
    return [Finding("crash", "error", f"training stopped at step {step} on an error: {message}")]


def _nonfinite_in_log(records: list) -> list[Finding]:
    findings = []
    for key, label in (("loss", "training loss"), ("grad_norm", "gradient norm"), ("valid_loss", "validation loss")):
        bad = [r.get("step") for r in records
               if isinstance(r.get(key), float) and not math.isfinite(r[key])]
        if bad:
            findings.append(Finding("nan", "error",
                f"the {label} is NaN or Inf at {len(bad)} logged step(s), first at step {bad[0]}"
                + (": the gradients blew up before the loss did (an unclipped step, a learning rate too high, "
                   "or a division by a tiny number in the backward pass)" if key == "grad_norm" else "")
                + ". tpsep.diagnose.find_nonfinite(model, loss_fn, batch) on that step's batch names the first "
                  "layer that made it"))
    return findings


def _nonfinite_weights(checkpoint: dict | None) -> list[Finding]:
    if checkpoint is None:
        return []
    bad = [name for name, value in checkpoint["model"].items()
           if torch.is_tensor(value) and value.is_floating_point() and not torch.isfinite(value).all()]
    if not bad:
        return []
    shown = ", ".join(bad[:4]) + (f" and {len(bad) - 4} more" if len(bad) > 4 else "")
    return [Finding("nan", "error",
        f"the last checkpoint holds NaN or Inf in {len(bad)} weight tensor(s): {shown}. Every output of the model "
        "is NaN from now on: restart from an earlier checkpoint (best.pt) with clipping, a lower learning rate, "
        "or fp32 instead of bf16/fp16")]


def _flat_loss(losses: list, checkpoint: dict | None) -> list[Finding]:
    finite = [loss for loss in losses if math.isfinite(loss)]
    if len(finite) < 8:
        return []
    start, end = _trend(finite)
    if abs(end - start) > FLAT_CHANGE * max(abs(start), abs(end), 1e-12):
        return []
    lr = ((checkpoint or {}).get("train_config") or {}).get("lr")
    why = (f"the learning rate is {lr:g}, too small for AdamW to move the weights; try 1e-3"
           if isinstance(lr, (int, float)) and lr < TINY_LR else
           "the usual causes: a target in another domain than the output (a mask in [0, 1] against a magnitude "
           "or dB values; see tpsep.diagnose.check_domains), an output that cannot reach the target (a saturated "
           "sigmoid, a clamp), or a loss on something the weights do not touch. "
           "tpsep.diagnose.overfit_one_batch(model, loss_fn, batch) tells a broken pipeline (it cannot memorise "
           "one batch) from a hard task")
    return [Finding("flat", "error",
        f"the training loss does not move: {start:.4g} at the start, {end:.4g} at the end (medians of the first and "
        f"last quarter of {len(finite)} logged steps, a change of {abs(end - start) / max(abs(start), 1e-12):.1%}); "
        + why)]


def _widening_gap(run) -> list[Finding]:
    if len(run.valid) < 3 or not run.train:
        return []
    gaps, previous = [], -math.inf
    for step, _, valid_loss in run.valid:
        train = [loss for s, loss in run.train if previous < s <= step]
        previous = step
        if train:
            gaps.append((step, float(np.mean(train)), valid_loss))
    if len(gaps) < 3:
        return []
    best = min(range(len(gaps)), key=lambda i: gaps[i][2])
    best_step, best_train, best_valid = gaps[best]
    end_step, end_train, end_valid = gaps[-1]
    gap_at_best, gap_at_end = best_valid - best_train, end_valid - end_train
    valid_rose = end_valid > best_valid + VALID_RISE * abs(best_valid)
    train_fell = end_train < best_train - VALID_RISE * abs(best_train)
    if not (valid_rose and train_fell and gap_at_end - gap_at_best > VALID_RISE * abs(best_valid)):
        return []
    return [Finding("gap", "warning",
        f"the model memorises its training data: from step {best_step} (best.pt) to step {end_step} the training "
        f"loss fell from {best_train:.4g} to {end_train:.4g} while the validation loss rose from {best_valid:.4g} to "
        f"{end_valid:.4g}; the gap between them widened from {gap_at_best:.4g} to {gap_at_end:.4g}. Too little data "
        "for the model: more tracks, fresh random chunks or remixes every epoch (--remix), fewer parameters, "
        "dropout or weight decay, and early stopping (--patience); keep best.pt, not last.pt")]


def _input_scores(checkpoint: dict, max_tracks: int) -> list[Finding]:
    from tpsep import data

    dataset = (checkpoint.get("extra") or {}).get("dataset")
    if not dataset:
        return []
    try:
        tracks = data.load_dataset(dataset, split="valid") or data.load_dataset(dataset, split="test")
    except (OSError, ValueError, KeyError) as error:
        return [Finding("data", "warning", f"the run's data {dataset!r} could not be read here ({error}); "
                                           "its input scores were not checked")]
    pipeline = check_pipeline(tracks, max_tracks=max_tracks)
    return [Finding("input", f.severity, f"on the run's data {dataset!r}: {f.message}")
            for f in pipeline.findings if f.severity == "error"]


# ---- the command line ----------------------------------------------------------------------------

def add_doctor_command(subparsers) -> None:
    parser = subparsers.add_parser(
        "doctor", help="read a training run and name the classic failures it shows",
        description="Read a training run's folder (log.jsonl, last.pt or best.pt) and name, in plain words, "
                    "each classic failure it shows: a flat loss or one exactly 0, NaN or Inf and where, a "
                    "collapsed learning rate, a widening train/valid gap, input scores that mean a broken "
                    "pipeline, 513 bins where 512 were expected. It only reads.")
    parser.add_argument("run_dir", help="the run's folder (tpsep train --out), or a file in it")
    parser.add_argument("--no-data", action="store_true", help="do not score the run's data (faster)")
    parser.add_argument("--max-tracks", type=int, default=4, help="validation tracks to score (default: 4)")
    parser.add_argument("--json", metavar="PATH", help="write the summary and the findings to PATH")
    parser.set_defaults(func=_doctor_main)


def _doctor_main(args) -> int:
    import json

    if args.max_tracks < 1:
        raise ValueError(f"--max-tracks must be at least 1, got {args.max_tracks}")
    result = examine_run(args.run_dir, check_data=not args.no_data, max_tracks=args.max_tracks)
    print(result)
    figures = {"findings": len(result.findings), "errors": len(result.errors)}
    if args.json:
        Path(args.json).write_text(json.dumps({**figures, "summary": result.summary,
                                               "findings": [vars(f) for f in result.findings]}, indent=2, default=str))
    print("doctor: " + " ".join(f"{k}={v}" for k, v in figures.items()))
    return 0
