"""Training: one loop you can read in one sitting, and the small helpers around it.

``fit(model, loss_fn, train_loader, valid_loader, config)`` trains any tpsep model.
Read ``fit`` first: it is the whole algorithm (forward, backward, clip, step,
validate, checkpoint, stop). Everything else in this file is machinery that
``fit`` calls by name: which device, which precision, the learning-rate
schedule, the moving average of the weights (EMA), checkpoints and an exact
resume, several processes (DDP), progress bars and logs.

The loss function owns the model call, so the loop does not care what a batch is::

    def loss_fn(model, batch):                    # batch = what the loader yields, already on the device
        mixture_mag, target_mag = batch           # (batch, 512, 128) each
        mask = model(mixture_mag)                 # call the model itself (not a method): DDP hooks forward
        return tpsep.losses.l1_mask_loss(mask, mixture_mag, target_mag)

    history = fit(model, loss_fn, train_loader, valid_loader, TrainConfig(epochs=5, out_dir="runs/unet"))
    history.plot()

The ``tpsep train MODEL`` command (see :func:`add_train_command`) finds its model
in :data:`TRAINABLE`, a map from a model name to ``"module:function"``. That
function is the model's *training recipe*::

    def training_recipe(args) -> (model, loss_fn, train_loader, valid_loader, extra)

``args`` is the parsed command line (``args.dataset``, ``args.batch_size``,
``args.seed``, ``args.options`` a dict from ``--option KEY=VALUE``, ...);
``valid_loader`` may be None; ``extra`` is a dict stored in every checkpoint, and
must say how to rebuild the model: ``{"model_name": "unet", "model_config":
{...plain values...}}`` (see :func:`load_model`).

Exact resume: the trainer owns the order of the training data. When the
training loader is a plain ``DataLoader`` over a map-style dataset, ``fit``
re-creates it with a :class:`ResumableSampler` whose shuffle depends only on
``(seed, epoch)``, and a checkpoint stores the position in the epoch and the
random states (torch, numpy, python). A resumed run then sees the same batches
and the same random numbers as a run that was never interrupted. (Randomness
inside DataLoader *workers* restarts at a resume: with ``num_workers > 0``, make
the dataset's randomness a function of the index, or accept a small difference.)
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import random
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

# model name -> "module:function" returning (model, loss_fn, train_loader, valid_loader, extra)
TRAINABLE = {
    "unet": "tpsep.models.unet:training_recipe",
    "convtasnet": "tpsep.models.convtasnet:training_recipe",
}


@dataclass
class TrainConfig:
    """Plain training settings. When several limits are set, the first one reached stops training;
    when none of epochs/minutes/max_steps is set, training runs one epoch."""

    epochs: int | None = None        # stop after this many epochs ...
    minutes: float | None = None     # ... or this much wall time (of this call) ...
    max_steps: int | None = None     # ... or this many optimiser steps (counted across resumes)
    lr: float = 1e-3                 # AdamW learning rate (peak LR with a schedule)
    weight_decay: float = 0.0
    grad_clip: float | None = 5.0    # max global gradient norm; None = no clipping (the norm is still tracked)
    accumulate: int = 1              # micro-batches per optimiser step (gradient accumulation)
    schedule: str | None = None      # None | "plateau" (halve the LR on a validation plateau) | "cosine"
    warmup_steps: int = 0            # linear warm-up from ~0 to lr, with any schedule
    plateau_patience: int = 2        # "plateau": validations without improvement before halving
    min_lr: float = 0.0              # floor for "plateau" and end point of "cosine"
    ema: float | None = None         # EMA decay of the weights, e.g. 0.999; validation/checkpoints use EMA weights
    device: str = "auto"             # "auto" -> cuda, then mps, then cpu; or "cpu", "cuda", "cuda:1", "mps"
    precision: str = "auto"          # "auto" -> bf16 autocast on CUDA, fp32 elsewhere; "bf16" | "fp32"
    patience: int | None = None      # early stopping: epochs without a better validation loss
    out_dir: str | None = None       # best.pt, last.pt, log.jsonl (+ TensorBoard); None = no files
    save_every: int | None = None    # also write last.pt every this many steps (long epochs)
    seed: int = 0
    log_every: int = 10              # steps between progress-bar / log / plot updates
    progress: bool = True            # tqdm.auto progress bars
    live_plot: bool = False          # live loss plot in a notebook, updated in place
    tensorboard: bool = True         # TensorBoard logs when tensorboard is installed and out_dir is set


class NonFiniteError(FloatingPointError):
    """Training met NaN or Inf; the message names the step and the tensor (loss, gradient, weight)."""


# ----------------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------------


def fit(model, loss_fn, train_loader, valid_loader=None, config: TrainConfig | None = None,
        resume: str | None = None, extra: dict | None = None) -> "History":
    """Train ``model`` by minimising ``loss_fn(model, batch)`` over ``train_loader``.

    Args:
        model: a ``torch.nn.Module``; moved to the chosen device in place.
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``; the batch arrives on the device
            (tensors inside tuples/lists/dicts are moved too).
        train_loader: a ``DataLoader`` (or any re-iterable of batches, without exact resume).
        valid_loader: optional; its mean loss (EMA weights when on) drives best.pt, the
            plateau schedule and early stopping. Evaluated once per epoch, and when training stops.
        config: a :class:`TrainConfig`.
        resume: path to a ``last.pt`` written by an earlier call: continue exactly where it stopped.
        extra: dict stored in checkpoints, e.g. ``{"model_name": "unet", "model_config": {...}}``.

    Python, NumPy and PyTorch are seeded with ``config.seed`` first (the model's initial weights
    are the caller's: seed before building it).

    Returns:
        a :class:`History` (per-step losses, gradient norms, LRs; per-epoch validation losses).

    Raises:
        NonFiniteError: the loss, a gradient or a weight became NaN/Inf (the message says which).
    """
    config = config or TrainConfig()
    check_config(config)
    ddp = setup_distributed(config.device)          # rank, world size, device (one process: rank 0 of 1)
    device, is_main = ddp.device, ddp.rank == 0
    model.to(device)
    seed_everything(config.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    batches = ReproducibleBatches(train_loader, config.seed, ddp.rank, ddp.world_size)
    schedule = LRSchedule(config, total_steps(config, batches.steps_per_epoch(config.accumulate)))
    ema = EMA(model, config.ema) if config.ema else None
    history, loop = History(), LoopState()
    if resume:
        restore_checkpoint(resume, model, optimizer, schedule, ema, history, loop)
    net = wrap_distributed(model, ddp)              # the module that loss_fn calls (== model without DDP)
    autocast = autocast_context(device, config.precision)
    log = Logger(config, is_main, history)
    clock = Clock(history)

    stop_reason = time_to_stop(config, loop)  # a resumed run may have nothing left to do
    while stop_reason is None:
        # ---- one epoch (or its remainder after a resume) ----
        model.train()
        micro_losses = []
        for batch in log.progress(batches.epoch(loop.epoch, skip=loop.batch_in_epoch), loop.epoch):
            loop.batch_in_epoch += 1
            last_micro = loop.batch_in_epoch % config.accumulate == 0 or loop.batch_in_epoch == batches.size
            with sync_gradients(net, last_micro), autocast:
                loss = loss_fn(net, move_to(batch, device))
            check_loss(loss, loop.step, batch, model)
            (loss / config.accumulate).backward()  # gradients add up over the micro-batches
            micro_losses.append(loss.item())
            if not last_micro:
                continue

            grad_norm = clip_gradients(model, config.grad_clip, loop.step)
            lr = schedule.set_lr(optimizer, loop.step)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if ema:
                ema.update(model)
            loop.step += 1
            history.add_step(loop.step, float(np.mean(micro_losses)), grad_norm, lr, clock.seconds())
            micro_losses = []
            log.step(history)
            if config.save_every and is_main and loop.step % config.save_every == 0:
                save_last(config, model, optimizer, schedule, ema, history, loop, extra)
            stop_reason = time_to_stop(config, loop, clock)
            if stop_reason:
                break

        if loop.batch_in_epoch == 0:
            raise ValueError("the training loader yielded no batch (empty dataset, or drop_last with too few examples)")
        epoch_done = stop_reason is None or loop.batch_in_epoch == batches.size
        if epoch_done:
            loop.epoch, loop.batch_in_epoch = loop.epoch + 1, 0

        # ---- validation, best/last checkpoints, schedule and early stopping ----
        if valid_loader is not None:
            with ema.applied(model) if ema else nullcontext():
                valid_loss = evaluate(model, loss_fn, valid_loader, device, autocast)
            improved = history.add_valid(loop.step, loop.epoch, valid_loss)
            log.valid(history)
            if improved and is_main and config.out_dir:
                save_checkpoint(os.path.join(config.out_dir, "best.pt"), model, optimizer, schedule,
                                loop.step, loop.epoch, history, config, extra, ema=ema, loop=loop)
            if epoch_done:  # the schedule and patience move once per epoch (a mid-epoch stop only reports)
                schedule.on_validation(valid_loss)
                loop.bad_epochs = 0 if valid_loss < loop.best_epoch_valid else loop.bad_epochs + 1
                loop.best_epoch_valid = min(loop.best_epoch_valid, valid_loss)
                if config.patience is not None and loop.bad_epochs >= config.patience:
                    stop_reason = stop_reason or f"early stopping (no better validation for {config.patience} epochs)"
        stop_reason = stop_reason or time_to_stop(config, loop, clock)
        if is_main and config.out_dir:
            save_last(config, model, optimizer, schedule, ema, history, loop, extra)

    history.stopped_because = stop_reason
    log.close(history)
    cleanup_distributed(ddp)
    return history


@torch.no_grad()
def evaluate(model, loss_fn, loader, device=None, autocast=None) -> float:
    """Mean of ``loss_fn(model, batch)`` over ``loader`` in eval mode (weighted by batch count).

    Random states are saved and restored around it, so validating (or not) never changes the
    training that follows.
    """
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    with preserved_random_states():
        for batch in loader:
            with autocast or nullcontext():
                total += float(loss_fn(model, move_to(batch, device)))
            count += 1
    model.train(was_training)
    if count == 0:
        raise ValueError("the validation loader yielded no batch")
    return total / count


def time_to_stop(config: TrainConfig, loop: "LoopState", clock: "Clock | None" = None) -> str | None:
    """The reason to stop after this optimiser step, or None (no clock: don't look at the time)."""
    if config.epochs is not None and loop.epoch >= config.epochs:
        return "epochs"
    if config.max_steps is not None and loop.step >= config.max_steps:
        return "max_steps"
    if config.minutes is not None and clock is not None and clock.session_minutes() >= config.minutes:
        return "minutes"
    return None


def check_config(config: TrainConfig) -> None:
    """Raise a ValueError naming the bad setting."""
    if config.schedule not in (None, "plateau", "cosine"):
        raise ValueError(f"schedule must be None, 'plateau' or 'cosine', got {config.schedule!r}")
    if config.precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {config.precision!r}")
    if config.accumulate < 1:
        raise ValueError(f"accumulate must be >= 1, got {config.accumulate}")
    if config.ema is not None and not 0.0 < config.ema < 1.0:
        raise ValueError(f"ema is a decay in (0, 1), e.g. 0.999; got {config.ema}")
    for name in ("epochs", "max_steps", "minutes"):
        value = getattr(config, name)
        if value is not None and value <= 0:
            raise ValueError(f"{name} must be positive (or None), got {value}")


# ----------------------------------------------------------------------------------------------
# History: what happened, step by step
# ----------------------------------------------------------------------------------------------


@dataclass
class History:
    """What a run did. Per optimiser step: ``train_step``, ``train_loss`` (mean over the
    accumulated micro-batches), ``grad_norm`` (before clipping), ``lr``, ``time`` (seconds since
    the run started, across resumes). Per validation: ``valid_step``, ``valid_epoch``, ``valid_loss``."""

    train_step: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    time: list = field(default_factory=list)
    valid_step: list = field(default_factory=list)
    valid_epoch: list = field(default_factory=list)
    valid_loss: list = field(default_factory=list)
    best_valid: float | None = None
    best_step: int | None = None
    stopped_because: str | None = None

    @property
    def steps(self) -> int:
        """Number of optimiser steps done."""
        return self.train_step[-1] if self.train_step else 0

    @property
    def minutes(self) -> float:
        return self.time[-1] / 60 if self.time else 0.0

    def add_step(self, step, loss, grad_norm, lr, seconds) -> None:
        self.train_step.append(step)
        self.train_loss.append(loss)
        self.grad_norm.append(grad_norm)
        self.lr.append(lr)
        self.time.append(seconds)

    def add_valid(self, step, epoch, loss) -> bool:
        """Record a validation loss; True when it is the best so far."""
        self.valid_step.append(step)
        self.valid_epoch.append(epoch)
        self.valid_loss.append(loss)
        if self.best_valid is None or loss < self.best_valid:
            self.best_valid, self.best_step = loss, step
            return True
        return False

    def summary(self) -> dict:
        """Key figures: steps, last train loss, best validation, minutes, why it stopped."""
        return {"steps": self.steps,
                "train_loss": self.train_loss[-1] if self.train_loss else None,
                "best_valid": self.best_valid, "best_step": self.best_step,
                "minutes": round(self.minutes, 3), "stopped_because": self.stopped_because}

    def plot(self, ax=None, smooth: int = 0):
        """Training loss per step (and its moving average over ``smooth`` steps) and validation
        loss; log-scale y axis. Returns the matplotlib axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot(self.train_step, self.train_loss, lw=0.8, alpha=0.5 if smooth else 1.0, label="train")
        if smooth and len(self.train_loss) >= smooth:
            kernel = np.ones(smooth) / smooth
            ax.plot(self.train_step[smooth - 1:], np.convolve(self.train_loss, kernel, mode="valid"),
                    label=f"train (mean of {smooth})")
        if self.valid_loss:
            ax.plot(self.valid_step, self.valid_loss, "o-", label="validation")
        ax.set_xlabel("optimiser step")
        ax.set_ylabel("loss")
        if all(v > 0 for v in self.train_loss + self.valid_loss) and self.train_loss:
            ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        return ax

    def state_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_state_dict(cls, state: dict) -> "History":
        return cls(**{f.name: state[f.name] for f in fields(cls) if f.name in state})


@dataclass
class LoopState:
    """Where the loop is: enough to resume it exactly."""
    step: int = 0            # optimiser steps done
    epoch: int = 0           # epochs completed
    batch_in_epoch: int = 0  # batches of the current epoch already consumed
    bad_epochs: int = 0      # epochs since the best end-of-epoch validation (early stopping)
    best_epoch_valid: float = float("inf")


class Clock:
    """Seconds since the run started (continuing a resumed run's count) and minutes of this call."""

    def __init__(self, history: History):
        self.start = time.perf_counter()
        self.offset = history.time[-1] if history.time else 0.0

    def seconds(self) -> float:
        return self.offset + time.perf_counter() - self.start

    def session_minutes(self) -> float:
        return (time.perf_counter() - self.start) / 60


# ----------------------------------------------------------------------------------------------
# Devices, precision, batches
# ----------------------------------------------------------------------------------------------


def choose_device(preference: str = "auto") -> torch.device:
    """``"auto"``: CUDA if available, then Apple's MPS, then the CPU; otherwise the named device."""
    if preference != "auto":
        device = torch.device(preference)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {preference!r} asked for, but torch sees no CUDA GPU")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {preference!r} asked for, but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_context(device: torch.device, precision: str = "auto"):
    """bf16 autocast on CUDA for "auto" (about 2x faster, same range as fp32, so no loss scaling);
    fp32 elsewhere. "bf16" forces autocast (CPU too), "fp32" turns it off."""
    use_bf16 = precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())  # Ampere and later
    if not use_bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def move_to(batch, device: torch.device):
    """Move every tensor of ``batch`` (tensors, nested tuples/lists/dicts) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: move_to(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to(value, device) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(value, device) for value in batch)
    return batch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def random_states() -> dict:
    states = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_random_states(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


@contextmanager
def preserved_random_states():
    """Run a block without changing the random states seen by the code after it."""
    states = random_states()
    try:
        yield
    finally:
        set_random_states(states)


class ResumableSampler(DistributedSampler):
    """A DistributedSampler (shuffled by ``(seed, epoch)``, sharded by rank) that can start
    part-way through its epoch: set ``start`` to the number of indices already consumed."""

    def __init__(self, dataset, num_replicas=1, rank=0, shuffle=True, seed=0):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.start = 0

    def __iter__(self):
        return iter(list(super().__iter__())[self.start:])

    def __len__(self):
        return self.num_samples - self.start


class ReproducibleBatches:
    """The training batches of each epoch, in an order that depends only on (seed, epoch, rank).

    A ``DataLoader`` over a map-style dataset is re-created with a :class:`ResumableSampler`
    (keeping its batch size, collate_fn, workers, drop_last, and whether it shuffles). Anything
    else (an IterableDataset, a custom sampler or batch_sampler, a list of batches) is iterated as given:
    training works, but a resumed run re-reads the epoch from its start.
    """

    def __init__(self, loader, seed: int, rank: int = 0, world_size: int = 1):
        self.original, self.seed = loader, seed
        self.sampler, self.loader = None, loader
        rebuildable = (isinstance(loader, DataLoader) and loader.batch_size is not None
                       and not isinstance(loader.dataset, torch.utils.data.IterableDataset)
                       and isinstance(loader.sampler, (RandomSampler, SequentialSampler, DistributedSampler))
                       and not getattr(loader.sampler, "replacement", False))
        if rebuildable:
            shuffle = isinstance(loader.sampler, (RandomSampler, DistributedSampler))
            if isinstance(loader.sampler, DistributedSampler):
                shuffle = loader.sampler.shuffle
            self.sampler = ResumableSampler(loader.dataset, world_size, rank, shuffle, seed)
            self.generator = torch.Generator()  # seeds the workers; never touches the global RNG
            self.loader = DataLoader(
                loader.dataset, batch_size=loader.batch_size, sampler=self.sampler,
                num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                worker_init_fn=loader.worker_init_fn, generator=self.generator)
        elif world_size > 1:
            raise ValueError("with several processes the trainer needs a DataLoader over a map-style "
                             "dataset (with batch_size), to give each process its own shard")

    @property
    def size(self) -> int | None:
        """Batches in a full epoch (for this process); None when the loader cannot tell."""
        if self.sampler is None:
            try:
                return len(self.loader)
            except TypeError:
                return None
        n, b = self.sampler.num_samples, self.loader.batch_size
        return n // b if self.loader.drop_last else math.ceil(n / b)

    def steps_per_epoch(self, accumulate: int) -> int | None:
        return None if self.size is None else math.ceil(self.size / accumulate)

    def epoch(self, epoch: int, skip: int = 0):
        """An iterable over the batches of ``epoch``, skipping the first ``skip`` ones."""
        if self.sampler is None:
            return self.loader
        self.sampler.set_epoch(epoch)
        self.sampler.start = skip * self.loader.batch_size
        self.generator.manual_seed(self.seed * 100_003 + epoch)
        return self.loader


# ----------------------------------------------------------------------------------------------
# Gradients: NaN/Inf guard, clipping and norm, learning-rate schedule, EMA
# ----------------------------------------------------------------------------------------------


def check_loss(loss: torch.Tensor, step: int, batch, model) -> None:
    """Raise NonFiniteError if the loss is NaN/Inf, saying whether the batch or the weights are to blame."""
    if loss.ndim != 0:
        raise ValueError(f"loss_fn must return a scalar tensor, got shape {tuple(loss.shape)} (take a .mean())")
    if torch.isfinite(loss):
        return
    culprits = [name for name, t in named_tensors(batch, "batch") if not torch.isfinite(t).all()]
    culprits += [f"the weight {name}" for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    where = ("; non-finite values already in " + ", ".join(culprits)) if culprits else (
        "; the batch and the weights are finite, so the forward pass made it: look for log(0), "
        "x/0, sqrt of a negative number or of 0 (its gradient), exp overflow, or an STFT shape mismatch")
    raise NonFiniteError(f"step {step}: the loss is {loss.item()}{where}")


def named_tensors(obj, prefix: str):
    """(name, tensor) pairs inside a nested batch, e.g. ("batch[0]", tensor)."""
    if isinstance(obj, torch.Tensor):
        yield prefix, obj
    elif isinstance(obj, dict):
        for key, value in obj.items():
            yield from named_tensors(value, f"{prefix}[{key!r}]")
    elif isinstance(obj, (list, tuple)):
        for i, value in enumerate(obj):
            yield from named_tensors(value, f"{prefix}[{i}]")


def clip_gradients(model, max_norm: float | None, step: int) -> float:
    """Clip the global gradient norm to ``max_norm`` (None: don't clip) and return the norm
    before clipping. Raise NonFiniteError naming the first parameter whose gradient is NaN/Inf."""
    parameters = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm if max_norm else float("inf"))
    if not torch.isfinite(norm):
        bad = [name for name, p in model.named_parameters()
               if p.grad is not None and not torch.isfinite(p.grad).all()]
        raise NonFiniteError(f"step {step}: the gradient norm is {norm.item()}; non-finite gradient of "
                             f"{', '.join(bad[:5]) or '(none found: overflow of the norm itself)'}"
                             f"{' ...' if len(bad) > 5 else ''} (the loss was finite)")
    return norm.item()


class LRSchedule:
    """The learning rate as a function of the optimiser step, set by hand before each step
    (as in nanoGPT): linear warm-up over ``warmup_steps``, then constant, or cosine decay to
    ``min_lr`` at ``total_steps``; "plateau" halves it when validation stops improving."""

    def __init__(self, config: TrainConfig, total_steps: int | None):
        if config.schedule == "cosine" and total_steps is None:
            raise ValueError("schedule='cosine' needs to know the number of steps: set max_steps or epochs")
        self.config, self.total_steps = config, total_steps
        self.scale = 1.0                       # plateau halvings multiply this by 0.5
        self.best, self.bad = float("inf"), 0

    def __call__(self, step: int) -> float:
        c = self.config
        if step < c.warmup_steps:
            return c.lr * (step + 1) / (c.warmup_steps + 1)
        if c.schedule == "cosine":
            progress = min(1.0, (step - c.warmup_steps) / max(1, self.total_steps - c.warmup_steps))
            return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * progress))
        return max(c.min_lr, c.lr * self.scale)

    def set_lr(self, optimizer, step: int) -> float:
        lr = self(step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def on_validation(self, loss: float) -> None:
        if self.config.schedule != "plateau":
            return
        if loss < self.best:
            self.best, self.bad = loss, 0
            return
        self.bad += 1
        if self.bad >= self.config.plateau_patience:
            self.scale, self.bad = self.scale * 0.5, 0

    def state_dict(self) -> dict:
        return {"scale": self.scale, "best": self.best, "bad": self.bad}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.best, self.bad = state["scale"], state["best"], state["bad"]


def total_steps(config: TrainConfig, steps_per_epoch: int | None) -> int | None:
    """Optimiser steps the run will make, when the limits say (for the cosine schedule)."""
    candidates = []
    if config.max_steps is not None:
        candidates.append(config.max_steps)
    if config.epochs is not None and steps_per_epoch is not None:
        candidates.append(config.epochs * steps_per_epoch)
    if not candidates and config.minutes is None and steps_per_epoch is not None:
        candidates.append(steps_per_epoch)  # the default: one epoch
    return min(candidates) if candidates else None


class EMA:
    """Exponential moving average of the weights: ``shadow <- decay * shadow + (1 - decay) * w``
    after each step. The average is often better than the last weights; validation and
    checkpoints use it. The decay ramps up from ~0.1 so the early average is not stuck at init."""

    def __init__(self, model, decay: float):
        self.decay, self.updates = decay, 0
        self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for key, value in model.state_dict().items():
            if value.is_floating_point():
                self.shadow[key].lerp_(value, 1 - decay)
            else:
                self.shadow[key].copy_(value)

    @contextmanager
    def applied(self, model):
        """Inside the block, ``model`` holds the averaged weights."""
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield model
        finally:
            model.load_state_dict(backup)

    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        self.decay, self.updates = state["decay"], state["updates"]
        for key, value in state["shadow"].items():
            self.shadow[key].copy_(value)


# ----------------------------------------------------------------------------------------------
# Several processes (torchrun): DistributedDataParallel
# ----------------------------------------------------------------------------------------------


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    started_here: bool = False   # did fit() create the process group (so it destroys it)?


def setup_distributed(device_preference: str = "auto") -> Distributed:
    """Under ``torchrun`` (WORLD_SIZE > 1): join the process group (NCCL on GPUs, gloo on CPUs)
    and give each process its own GPU. Otherwise: one process, rank 0."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = choose_device(device_preference)
    if world_size == 1:
        return Distributed(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), device, started)


def wrap_distributed(model, ddp: Distributed):
    """DDP averages the gradients of all processes during backward; one process: the model itself."""
    if ddp.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[ddp.device.index] if ddp.device.type == "cuda" else None)


def sync_gradients(net, sync: bool):
    """With DDP and gradient accumulation, only the last micro-batch needs the all-reduce."""
    if sync or not hasattr(net, "no_sync"):
        return nullcontext()
    return net.no_sync()


def cleanup_distributed(ddp: Distributed) -> None:
    if ddp.started_here:
        dist.barrier()
        dist.destroy_process_group()


# ----------------------------------------------------------------------------------------------
# Checkpoints
# ----------------------------------------------------------------------------------------------


def save_checkpoint(path, model, optimizer, scheduler, step, epoch, history, config, extra=None,
                    ema: EMA | None = None, loop: LoopState | None = None) -> None:
    """Write a checkpoint (atomically: a crash never leaves half a file).

    Keys: ``model`` (the weights to use: the EMA weights when EMA is on), ``extra`` (how to
    rebuild the model, e.g. ``{"model_name": "unet", "model_config": {...}}``), ``step``,
    ``epoch``, ``history``, ``config``, and ``train_state`` (raw weights, optimiser, schedule,
    EMA, loop position, random states) for an exact resume.
    """
    raw_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    weights = {k: v.detach().cpu().clone() for k, v in ema.shadow.items()} if ema else raw_weights
    checkpoint = {
        "model": weights,
        "extra": extra or {},
        "step": step,
        "epoch": epoch,
        "history": history.state_dict() if history is not None else None,
        "config": asdict(config) if config is not None else None,
        "train_state": {
            "raw_model": raw_weights if ema else None,  # None: same as "model"
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "schedule": scheduler.state_dict() if scheduler is not None else None,
            "ema": ema.state_dict() if ema else None,
            "loop": asdict(loop) if loop is not None else None,
            "random": random_states(),
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def save_last(config, model, optimizer, schedule, ema, history, loop, extra) -> None:
    save_checkpoint(os.path.join(config.out_dir, "last.pt"), model, optimizer, schedule,
                    loop.step, loop.epoch, history, config, extra, ema=ema, loop=loop)


def load_checkpoint(path, model=None) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (onto the CPU); if ``model`` is given,
    load its weights (the EMA weights when the run used EMA) into it. Returns the whole dict.
    Only load checkpoints you trust: they are pickles (random states are not plain tensors)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r} (fit writes best.pt and last.pt in out_dir)")
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path!r} is not a tpsep checkpoint (no 'model' key)")
    if model is not None:
        model.load_state_dict(checkpoint["model"])
    return checkpoint


def restore_checkpoint(path, model, optimizer, schedule, ema, history, loop) -> None:
    """Put everything back as it was when ``path`` (a last.pt) was written, for an exact resume."""
    checkpoint = load_checkpoint(path)
    state = checkpoint["train_state"]
    model.load_state_dict(state["raw_model"] or checkpoint["model"])
    optimizer.load_state_dict(state["optimizer"])
    schedule.load_state_dict(state["schedule"])
    if ema is not None:
        if state["ema"] is None:
            raise ValueError(f"{path!r} was trained without EMA; resume with ema=None")
        ema.load_state_dict(state["ema"])
    restored = History.from_state_dict(checkpoint["history"])
    for f in fields(History):
        setattr(history, f.name, getattr(restored, f.name))
    history.stopped_because = None
    for key, value in state["loop"].items():
        setattr(loop, key, value)
    set_random_states(state["random"])


def load_model(path, device: str = "cpu"):
    """Rebuild the model stored in a checkpoint and load its weights, in eval mode.

    Uses ``extra["model_name"]`` and ``extra["model_config"]``: calls
    ``tpsep.models.<model_name>.build_model(model_config)`` (each model module provides it).
    Returns ``(model, checkpoint)``.
    """
    checkpoint = load_checkpoint(path)
    extra = checkpoint.get("extra") or {}
    name = extra.get("model_name")
    if name is None:
        raise ValueError(f"{path!r} does not say which model it holds (extra['model_name'] is missing)")
    module = importlib.import_module(f"tpsep.models.{name}")
    if not hasattr(module, "build_model"):
        raise ValueError(f"tpsep.models.{name} has no build_model(config) to rebuild the model")
    model = module.build_model(extra.get("model_config") or {})
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval(), checkpoint


# ----------------------------------------------------------------------------------------------
# What the user sees: progress bars, live plot, TensorBoard, log.jsonl
# ----------------------------------------------------------------------------------------------


class Logger:
    """Progress bars (tqdm.auto), an in-place live plot in notebooks, TensorBoard when installed,
    and ``log.jsonl`` in out_dir. Only the main process (rank 0) shows or writes anything."""

    def __init__(self, config: TrainConfig, is_main: bool, history: History):
        self.config, self.active = config, is_main
        self.bar = self.writer = self.jsonl = self.plot = None
        if not is_main:
            return
        if config.out_dir:
            os.makedirs(config.out_dir, exist_ok=True)
            self.jsonl = open(os.path.join(config.out_dir, "log.jsonl"), "a")
            if config.tensorboard:
                self.writer = tensorboard_writer(os.path.join(config.out_dir, "tensorboard"))
        if config.live_plot:
            self.plot = LivePlot()

    def progress(self, batches, epoch: int):
        """``batches``, wrapped in a progress bar for this epoch."""
        show = self.active and self.config.progress
        if not show:
            return batches
        from tqdm.auto import tqdm
        try:
            total = len(batches)
        except TypeError:
            total = None
        self.bar = tqdm(batches, total=total, desc=f"epoch {epoch + 1}", leave=False, dynamic_ncols=True)
        return self.bar

    def step(self, history: History) -> None:
        if not self.active:
            return
        step = history.steps
        if step % self.config.log_every and step != 1:
            return
        loss, norm, lr = history.train_loss[-1], history.grad_norm[-1], history.lr[-1]
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4g}", grad=f"{norm:.3g}", lr=f"{lr:.2g}", refresh=False)
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/grad_norm", norm, step)
            self.writer.add_scalar("train/lr", lr, step)
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, "loss": loss, "grad_norm": norm, "lr": lr,
                                         "time": history.time[-1]}) + "\n")
            self.jsonl.flush()
        if self.plot is not None:
            self.plot.update(history)

    def valid(self, history: History) -> None:
        if not self.active:
            return
        step, loss = history.valid_step[-1], history.valid_loss[-1]
        if self.writer is not None:
            self.writer.add_scalar("valid/loss", loss, step)
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, "epoch": history.valid_epoch[-1], "valid_loss": loss}) + "\n")
            self.jsonl.flush()
        if self.plot is not None:
            self.plot.update(history)

    def close(self, history: History) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.plot is not None:
            self.plot.update(history)
            self.plot.close()
        if self.writer is not None:
            self.writer.close()
        if self.jsonl is not None:
            self.jsonl.close()


def tensorboard_writer(log_dir: str):
    """A TensorBoard SummaryWriter, or None (silently) when tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional: pip install tensorboard
        return None
    return SummaryWriter(log_dir=log_dir)


class LivePlot:
    """A loss plot in a notebook output cell, redrawn in place (no-op outside IPython).
    The figure is sent as a PNG image, so it shows whatever matplotlib backend is active."""

    def __init__(self):
        self.handle = None
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:
            return
        from matplotlib.figure import Figure
        self.fig = Figure(figsize=(7, 3.5))  # not a pyplot figure: the cell's end won't show it twice
        self.ax = self.fig.add_subplot()
        self.handle = display(self._image(), display_id=True)

    def _image(self):
        import io

        from IPython.display import Image
        buffer = io.BytesIO()
        self.fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
        return Image(data=buffer.getvalue(), format="png")

    def update(self, history: History) -> None:
        if self.handle is None or not history.train_loss:
            return
        self.ax.clear()
        history.plot(ax=self.ax)
        self.handle.update(self._image())

    def close(self) -> None:
        self.handle = None


# ----------------------------------------------------------------------------------------------
# Command line: tpsep train MODEL
# ----------------------------------------------------------------------------------------------

TRAIN_HELP = """\
Train a model of the course and keep its checkpoints.

The model's recipe (tpsep.train.TRAINABLE) builds the network, its dataset
loaders and its loss; this command runs tpsep.train.fit on them. Training
stops at the first limit reached: --epochs, --minutes or --max-steps.
It writes OUT/best.pt (lowest validation loss), OUT/last.pt (to resume
with --resume OUT/last.pt, exactly where it stopped) and OUT/log.jsonl
(plus TensorBoard logs in OUT/tensorboard if tensorboard is installed).

On a laptop CPU, a few minutes give a loss curve that goes down; a GPU
gives real results. Several GPUs (or CPU processes):
  torchrun --nproc_per_node=2 -m tpsep train unet --minutes 30

examples:
  tpsep train unet --minutes 5 --out runs/unet
  tpsep train unet --dataset /data/musdb18hq --epochs 50 --batch-size 16 --schedule plateau --out runs/unet-musdb
  tpsep train convtasnet --dataset speech --max-steps 2000 --lr 1e-3 --ema 0.999 --out runs/tasnet
  tpsep train unet --resume runs/unet/last.pt --minutes 5 --out runs/unet
"""


def add_train_command(subparsers) -> argparse.ArgumentParser:
    """Register ``tpsep train`` on an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "train", help="train a model (U-Net, Conv-TasNet) and write checkpoints",
        description=TRAIN_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=sorted(TRAINABLE), help="which model to train")
    parser.add_argument("--dataset", default=None,
                        help='"music" or "speech" (the embedded datasets) or a path to real data; '
                             "default: the model's own (music for the U-Net, speech for Conv-TasNet)")
    limits = parser.add_argument_group("when to stop (the first limit reached wins; none given: one epoch)")
    limits.add_argument("--epochs", type=int, default=None, help="passes over the training set")
    limits.add_argument("--minutes", type=float, default=None, help="wall-clock budget of this run")
    limits.add_argument("--max-steps", type=int, default=None, help="optimiser steps (counted across resumes)")
    limits.add_argument("--patience", type=int, default=None,
                        help="early stopping: epochs without a better validation loss")
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--batch-size", type=int, default=8, help="examples per batch (default 8)")
    optim.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    optim.add_argument("--weight-decay", type=float, default=0.0)
    optim.add_argument("--grad-clip", type=float, default=5.0,
                       help="clip the global gradient norm to this (default 5; 0 = off)")
    optim.add_argument("--accumulate", type=int, default=1,
                       help="micro-batches per optimiser step: a bigger effective batch in the same memory")
    optim.add_argument("--schedule", choices=["plateau", "cosine"], default=None,
                       help="plateau: halve the LR when validation stalls; cosine: decay to 0 (needs a step count)")
    optim.add_argument("--warmup-steps", type=int, default=0, help="linear LR warm-up (transformers need it)")
    optim.add_argument("--ema", type=float, default=None, metavar="DECAY",
                       help="keep an exponential moving average of the weights, e.g. 0.999")
    run = parser.add_argument_group("where and how")
    run.add_argument("--device", default="auto", help='"auto" (cuda, then mps, then cpu), "cpu", "cuda", "cuda:1", "mps"')
    run.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                     help="auto: bf16 autocast on CUDA, fp32 elsewhere")
    run.add_argument("--out", default=None, metavar="DIR", help="write best.pt, last.pt and logs here")
    run.add_argument("--resume", default=None, metavar="CHECKPOINT", help="continue exactly from a last.pt")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--num-workers", type=int, default=0, help="DataLoader worker processes")
    run.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                     help="a model-specific setting passed to the recipe (repeatable), e.g. --option channels=32")
    run.add_argument("--no-progress", action="store_true", help="no progress bars")
    run.add_argument("--json", default=None, metavar="PATH", help="also write the key figures to this JSON file")
    parser.set_defaults(func=run_train_command)
    return parser


def parse_options(items: list[str]) -> dict:
    """``["channels=32", "norm=gLN"]`` -> ``{"channels": 32, "norm": "gLN"}`` (numbers, booleans parsed)."""
    import ast
    options = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--option expects KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        try:
            options[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            options[key.strip()] = value
    return options


def get_recipe(name: str):
    """The ``training_recipe`` function registered for model ``name`` in TRAINABLE."""
    if name not in TRAINABLE:
        raise ValueError(f"unknown model {name!r}; trainable models: {sorted(TRAINABLE)}")
    module_name, function_name = TRAINABLE[name].split(":")
    return getattr(importlib.import_module(module_name), function_name)


def run_train_command(args) -> int:
    """Run ``tpsep train``: print one line of key figures (and write them to ``--json``); exit code 0."""
    args.options = parse_options(args.option)
    model, loss_fn, train_loader, valid_loader, extra = get_recipe(args.model)(args)
    config = TrainConfig(
        epochs=args.epochs, minutes=args.minutes, max_steps=args.max_steps, lr=args.lr,
        weight_decay=args.weight_decay, grad_clip=args.grad_clip or None, accumulate=args.accumulate,
        schedule=args.schedule, warmup_steps=args.warmup_steps, ema=args.ema, device=args.device,
        precision=args.precision, patience=args.patience, out_dir=args.out, seed=args.seed,
        progress=not args.no_progress)
    extra = {"model_name": args.model, **(extra or {})}
    history = fit(model, loss_fn, train_loader, valid_loader, config, resume=args.resume, extra=extra)
    figures = {"model": args.model, **history.summary(), "out": args.out}
    if int(os.environ.get("RANK", "0")) == 0:
        best = "none" if figures["best_valid"] is None else f"{figures['best_valid']:.5g}"
        last = "none" if figures["train_loss"] is None else f"{figures['train_loss']:.5g}"
        print(f"train: model={args.model} steps={figures['steps']} train_loss={last} best_valid={best} "
              f"minutes={figures['minutes']:.2f} stopped={figures['stopped_because']} out={args.out}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(figures, f, indent=2)
    return 0
