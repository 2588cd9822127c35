"""What the user sees of a training run: its :class:`History` (and its plot), progress
bars, a live loss plot in notebooks, TensorBoard logs when tensorboard is installed,
and ``log.jsonl`` in the run's folder.

:func:`tpsep.train.fit` fills one History and makes one :class:`Logger`, whose ``step``,
``valid`` and ``close`` it calls; only the main process (rank 0) shows or writes anything.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields

import numpy as np


@dataclass
class History:
    """What a run did. Per optimiser step: ``train_step``, ``train_loss`` (mean over the
    accumulated micro-batches), ``grad_norm`` (before clipping), ``lr``, ``time`` (seconds since
    the run started, across resumes). Per validation: ``valid_step``, ``valid_epoch``, ``valid_loss``,
    and the best so far (the only place that tracks it)."""

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
        for name, value in zip(("train_step", "train_loss", "grad_norm", "lr", "time"),
                               (step, loss, grad_norm, lr, seconds)):
            getattr(self, name).append(value)

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
        loss; log-scale y axis when every loss is positive. Returns the matplotlib axes."""
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




class Logger:
    """Progress bars (tqdm.auto), an in-place live plot in notebooks, TensorBoard when installed,
    and ``log.jsonl`` in out_dir. Only the main process (rank 0) shows or writes anything."""

    def __init__(self, config, is_main: bool = True):
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

    def step(self, history) -> None:
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

    def valid(self, history) -> None:
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

    def failure(self, step: int, error: BaseException) -> None:
        """Write why the run stopped as the last line of ``log.jsonl``, then close everything."""
        if self.jsonl is not None:
            self.jsonl.write(json.dumps({"step": step, "error": f"{type(error).__name__}: {error}"}) + "\n")
            self.jsonl.flush()
        self.close(None)

    def close(self, history) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.plot is not None:
            if history is not None:
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

    def update(self, history) -> None:
        if self.handle is None or not history.train_loss:
            return
        self.ax.clear()
        history.plot(ax=self.ax)
        self.handle.update(self._image())

    def close(self) -> None:
        self.handle = None
