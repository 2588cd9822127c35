"""Training: one loop you can read in one sitting.

``fit(model, loss_fn, train_loader, valid_loader, config)`` trains any tpsep model.
Read ``fit`` first: it is the whole algorithm (forward, backward, clip, step,
validate, checkpoint, stop). The rest of this file is what ``fit`` calls by name:
the learning rate, the moving average of the weights (EMA), the NaN guard, the
order of the batches. Devices and DDP live in :mod:`tpsep.devices`, progress bars
and logs in :mod:`tpsep.reporting`, checkpoint files in :mod:`tpsep.checkpoints`.

The loss function owns the model call, so the loop does not care what a batch is::

    def loss_fn(model, batch):                    # batch = what the loader yields, already on the device
        mixture_mag, target_mag = batch           # (batch, 512, 128) each
        mask = model(mixture_mag)                 # call the model itself (not a method): DDP hooks forward
        return tpsep.losses.l1_mask_loss(mask, mixture_mag, target_mag)

    history = fit(model, loss_fn, train_loader, valid_loader, TrainConfig(epochs=5, out_dir="runs/unet"))
    history.plot()

Fresh examples every epoch, and an exact resume: the trainer owns the order of the
training data. When the training loader is a plain ``DataLoader`` over a map-style
dataset, ``fit`` re-creates it with a sampler whose shuffle depends only on
``(seed, epoch)``, and tells the dataset the epoch (``dataset.set_epoch(epoch)``),
so random chunks and remixes are drawn anew each epoch, from the seed and the epoch
alone. A checkpoint stores the position in the epoch and the random states, so a
resumed run sees the same batches and the same random numbers as a run that was
never interrupted.
"""

from __future__ import annotations

import math
import os
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, SequentialSampler

from tpsep import seed_everything
from tpsep.checkpoints import load_checkpoint, preserved_random_states, save_checkpoint, set_random_states
from tpsep.devices import (agreed_minutes, autocast_context, cleanup_distributed, move_to, setup_distributed,
                           sync_gradients, wrap_distributed)
from tpsep.reporting import History, Logger


def setting(default, help: str):
    """A config field with its help text: ``tpsep train --help`` prints it, so each default exists once."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    """Plain training settings; ``tpsep train`` makes one flag of each. When several limits are
    set, the first one reached stops training; when none of epochs/minutes/max_steps is set,
    training runs one epoch."""

    epochs: int | None = setting(None, "stop after this many passes over the training set")
    minutes: float | None = setting(None, "stop after this much wall time (of this call)")
    max_steps: int | None = setting(None, "stop after this many optimiser steps (counted across resumes)")
    lr: float = setting(1e-3, "AdamW learning rate (the peak, with a schedule)")
    weight_decay: float = setting(0.0, "AdamW weight decay")
    grad_clip: float | None = setting(5.0, "clip the global gradient norm to this (None: no clipping)")
    accumulate: int = setting(1, "micro-batches per optimiser step: a bigger effective batch in the same memory")
    schedule: str | None = setting(None, "None | plateau (halve the LR when validation stalls) | cosine (decay to min_lr)")
    warmup_steps: int = setting(0, "linear warm-up of the learning rate over this many steps")
    plateau_patience: int = setting(2, "plateau: epochs without a better validation before halving the LR")
    min_lr: float = setting(0.0, "floor of plateau, end point of cosine")
    ema: float | None = setting(None, "decay of an exponential moving average of the weights, e.g. 0.999; "
                                      "validation and checkpoints use the averaged weights")
    patience: int | None = setting(None, "early stopping: epochs without a better validation loss")
    device: str = setting("auto", "auto (cuda, then mps, then cpu) | cpu | cuda | cuda:1 | mps")
    precision: str = setting("auto", "auto (bf16 autocast on CUDA, fp32 elsewhere) | bf16 | fp32")
    out_dir: str | None = setting(None, "folder for best.pt, last.pt, log.jsonl (and TensorBoard); None: no files")
    save_every: int | None = setting(None, "also write last.pt every this many steps (long epochs, early kills)")
    seed: int = setting(0, "seeds the weights, the data order and the random chunks")
    log_every: int = setting(10, "steps between progress-bar, log and live-plot updates")
    progress: bool = setting(True, "tqdm progress bars")
    live_plot: bool = setting(False, "a live loss plot in a notebook, updated in place")
    tensorboard: bool = setting(True, "TensorBoard logs when tensorboard is installed and out_dir is set")


class NonFiniteError(FloatingPointError):
    """Training met NaN or Inf; the message names the step and the tensor (loss, gradient, weight)."""


@dataclass
class TrainState:
    """Everything a resume needs besides the weights, the optimiser and the EMA: one object."""
    step: int = 0                # optimiser steps done
    epoch: int = 0               # epochs completed
    batch_in_epoch: int = 0      # batches of the current epoch already consumed
    epochs_since_best: int = 0   # end-of-epoch validations without a new best (plateau, early stopping)
    lr_scale: float = 1.0        # halved by the plateau schedule
    history: History = field(default_factory=History)


# ----------------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------------


def fit(model, loss_fn, train_loader, valid_loader=None, config: TrainConfig | None = None,
        resume: str | None = None, extra: dict | None = None) -> History:
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
        extra: dict stored in checkpoints: how to rebuild the model,
            ``{"model_name": "unet", "model_config": {...}}`` (see :func:`tpsep.checkpoints.load_separator`).

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
    batches = EpochBatches(train_loader, config.seed, ddp.rank, ddp.world_size)
    total = total_steps(config, batches.steps_per_epoch(config.accumulate))
    if config.schedule == "cosine" and total is None:
        raise ValueError("schedule='cosine' needs to know the number of steps: set max_steps or epochs")
    ema = EMA(model, config.ema) if config.ema else None
    state = restore(resume, model, optimizer, ema) if resume else TrainState()
    history = state.history
    history.stopped_because = None
    net = wrap_distributed(model, ddp)              # the module that loss_fn calls (== model without DDP)
    autocast = autocast_context(device, config.precision)
    log = Logger(config, is_main)
    started, seconds_before = time.perf_counter(), (history.time[-1] if history.time else 0.0)

    def minutes_so_far() -> float | None:
        """Minutes of this call (None without a minutes limit: no clock to agree on between processes)."""
        if config.minutes is None:
            return None
        return agreed_minutes(ddp, (time.perf_counter() - started) / 60)

    def save(name: str) -> None:
        if is_main and config.out_dir:
            save_checkpoint(os.path.join(config.out_dir, name), model, config, extra, optimizer, ema, state)

    try:
        stop_reason = time_to_stop(config, state)       # a resumed run may have nothing left to do
        while stop_reason is None:
            # ---- one epoch (or its remainder after a resume) ----
            model.train()
            micro_losses = []
            for batch in log.progress(batches.epoch(state.epoch, skip=state.batch_in_epoch), state.epoch):
                state.batch_in_epoch += 1
                last_micro = state.batch_in_epoch % config.accumulate == 0 or state.batch_in_epoch == batches.size
                with sync_gradients(net, last_micro), autocast:
                    loss = loss_fn(net, move_to(batch, device))
                check_loss(loss, state.step, batch, model)
                (loss / config.accumulate).backward()  # gradients add up over the micro-batches
                micro_losses.append(loss.item())
                if not last_micro:
                    continue

                grad_norm = clip_gradients(model, config.grad_clip, state.step)
                lr = learning_rate(config, state.step, total, state.lr_scale)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if ema:
                    ema.update(model)
                state.step += 1
                history.add_step(state.step, float(np.mean(micro_losses)), grad_norm, lr,
                                 seconds_before + time.perf_counter() - started)
                micro_losses = []
                log.step(history)
                if config.save_every and state.step % config.save_every == 0:
                    save("last.pt")
                stop_reason = time_to_stop(config, state, minutes_so_far())
                if stop_reason:
                    break

            if state.batch_in_epoch == 0:
                raise ValueError("the training loader yielded no batch (empty dataset, or drop_last with too few examples)")
            epoch_done = stop_reason is None or state.batch_in_epoch == batches.size
            if epoch_done:
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0

            # ---- validation, best/last checkpoints, schedule and early stopping ----
            if valid_loader is not None:
                with ema.applied(model) if ema else nullcontext():
                    valid_loss = validation_loss(model, loss_fn, valid_loader, device, autocast)
                improved = history.add_valid(state.step, state.epoch, valid_loss)
                log.valid(history)
                if improved:
                    save("best.pt")
                if epoch_done:  # the schedule and patience move once per epoch (a mid-epoch stop only reports)
                    state.epochs_since_best = 0 if improved else state.epochs_since_best + 1
                    if (config.schedule == "plateau" and state.epochs_since_best
                            and state.epochs_since_best % config.plateau_patience == 0):
                        state.lr_scale *= 0.5
                    if config.patience is not None and state.epochs_since_best >= config.patience:
                        stop_reason = stop_reason or f"early stopping (no better validation for {config.patience} epochs)"
            stop_reason = stop_reason or time_to_stop(config, state, minutes_so_far())
            save("last.pt")
    except Exception as error:  # the log keeps why the run stopped, for tpsep doctor
        log.failure(state.step, error)
        raise

    history.stopped_because = stop_reason
    log.close(history)
    cleanup_distributed(ddp)
    return history


def restore(path, model, optimizer, ema) -> TrainState:
    """Put everything back as it was when ``path`` (a last.pt) was written, for an exact resume."""
    checkpoint = load_checkpoint(path)
    resume = checkpoint.get("resume")
    if not resume:
        raise ValueError(f"{path!r} holds weights only (no optimiser state): it cannot be resumed; "
                         "resume from the last.pt of a run")
    model.load_state_dict(resume["raw_model"] or checkpoint["model"])
    optimizer.load_state_dict(resume["optimizer"])
    if ema is not None:
        if resume["ema"] is None:
            raise ValueError(f"{path!r} was trained without EMA; resume with ema=None")
        ema.load_state_dict(resume["ema"])
    elif resume["ema"] is not None:
        raise ValueError(f"{path!r} was trained with EMA (decay {resume['ema']['decay']}); resume with the same ema")
    saved = dict(checkpoint["state"])
    history = History.from_state_dict(saved.pop("history"))
    set_random_states(resume["random"])
    return TrainState(**saved, history=history)


@torch.no_grad()
def validation_loss(model, loss_fn, loader, device=None, autocast=None) -> float:
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


def time_to_stop(config: TrainConfig, state: TrainState, minutes: float | None = None) -> str | None:
    """The reason to stop after this optimiser step, or None (no minutes given: don't look at the time)."""
    if config.epochs is not None and state.epoch >= config.epochs:
        return "epochs"
    if config.max_steps is not None and state.step >= config.max_steps:
        return "max_steps"
    if config.minutes is not None and minutes is not None and minutes >= config.minutes:
        return "minutes"
    return None


def check_config(config: TrainConfig) -> None:
    """Raise a ValueError naming the bad setting, what it must be and what arrived."""
    choices = {"schedule": (None, "plateau", "cosine"), "precision": ("auto", "bf16", "fp32")}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {allowed}, got {getattr(config, name)!r}")
    positive = {"lr": config.lr, "grad_clip": config.grad_clip, "epochs": config.epochs,
                "max_steps": config.max_steps, "minutes": config.minutes, "save_every": config.save_every,
                "log_every": config.log_every, "accumulate": config.accumulate,
                "plateau_patience": config.plateau_patience}
    for name, value in positive.items():
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number{' (or None)' if name != 'lr' else ''}, got {value!r}")
    for name in ("accumulate", "epochs", "max_steps", "save_every", "log_every", "plateau_patience"):
        value = getattr(config, name)
        if value is not None and int(value) != value:
            raise ValueError(f"{name} must be a whole number, got {value!r}")
    for name in ("weight_decay", "warmup_steps", "min_lr"):
        if getattr(config, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(config, name)!r}")
    if config.patience is not None and config.patience < 1:
        raise ValueError(f"patience must be >= 1 epoch (or None), got {config.patience!r}")
    if config.ema is not None and not 0.0 < config.ema < 1.0:
        raise ValueError(f"ema is a decay in (0, 1), e.g. 0.999; got {config.ema!r}")


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


def learning_rate(config: TrainConfig, step: int, total: int | None, scale: float = 1.0) -> float:
    """The learning rate of optimiser step ``step``, set by hand before each step (as in nanoGPT):
    linear warm-up over ``warmup_steps``, then constant (times ``scale``, which the plateau
    schedule halves), or a cosine decay to ``min_lr`` at step ``total``."""
    c = config
    if step < c.warmup_steps:
        return c.lr * (step + 1) / (c.warmup_steps + 1)
    if c.schedule == "cosine":
        progress = min(1.0, (step - c.warmup_steps) / max(1, total - c.warmup_steps))
        return c.min_lr + 0.5 * (c.lr - c.min_lr) * (1 + math.cos(math.pi * progress))
    return max(c.min_lr, c.lr * scale)


# ----------------------------------------------------------------------------------------------
# Batches: a new draw every epoch, the same draw on every run
# ----------------------------------------------------------------------------------------------


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


class EpochBatches:
    """The training batches of each epoch, in an order that depends only on (seed, epoch, rank).

    A ``DataLoader`` over a map-style dataset is re-created with a :class:`ResumableSampler`
    (keeping its batch size, collate_fn, workers, drop_last, and whether it shuffles). Anything
    else (an IterableDataset, a custom sampler or batch_sampler, a list of batches) is iterated as given:
    training works, but a resumed run re-reads the epoch from its start. Either way, a dataset
    with ``set_epoch`` (the chunk and patch datasets) is told the epoch, so it draws new examples.
    """

    def __init__(self, loader, seed: int, rank: int = 0, world_size: int = 1):
        self.seed, self.sampler, self.loader = seed, None, loader
        self.dataset = getattr(loader, "dataset", None)
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
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)   # new chunks, remixes and gains: a function of (seed, epoch, index)
        if self.sampler is None:
            return self.loader
        self.sampler.set_epoch(epoch)
        self.sampler.start = skip * self.loader.batch_size
        self.generator.manual_seed(self.seed * 100_003 + epoch)
        return self.loader


# ----------------------------------------------------------------------------------------------
# Gradients: the NaN/Inf guard, clipping, EMA
# ----------------------------------------------------------------------------------------------

NAN_ADVICE = ("run tpsep.diagnose.find_nonfinite(model, loss_fn, batch) on this batch: it names the first "
              "layer whose output or gradient is not finite")


def check_loss(loss: torch.Tensor, step: int, batch, model) -> None:
    """Raise NonFiniteError if the loss is NaN/Inf, saying whether the batch or the weights are to blame."""
    if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
        shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
        raise ValueError(f"loss_fn must return a scalar tensor, got {shape} (take a .mean())")
    if torch.isfinite(loss):
        return
    culprits = [name for name, t in named_tensors(batch, "batch") if not torch.isfinite(t).all()]
    culprits += [f"the weight {name}" for name, p in model.named_parameters() if not torch.isfinite(p).all()]
    where = ("; non-finite values already in " + ", ".join(culprits)) if culprits else (
        "; the batch and the weights are finite, so the forward pass made it: look for log(0), "
        "x/0, sqrt of a negative number or of 0 (its gradient), exp overflow, a silent chunk "
        "normalised by its std, or an STFT shape mismatch")
    raise NonFiniteError(f"step {step}: the loss is {loss.item()}{where}; {NAN_ADVICE}")


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
    before clipping. Raise NonFiniteError naming the first parameters whose gradient is NaN/Inf."""
    parameters = [p for p in model.parameters() if p.grad is not None]
    norm = torch.nn.utils.clip_grad_norm_(parameters, max_norm if max_norm else float("inf"))
    if not torch.isfinite(norm):
        bad = [name for name, p in model.named_parameters()
               if p.grad is not None and not torch.isfinite(p.grad).all()]
        raise NonFiniteError(f"step {step}: the gradient norm is {norm.item()}; non-finite gradient of "
                             f"{', '.join(bad[:5]) or '(none found: overflow of the norm itself)'}"
                             f"{' ...' if len(bad) > 5 else ''} (the loss was finite); {NAN_ADVICE}")
    return norm.item()


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
