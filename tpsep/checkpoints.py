"""Checkpoint files: write them safely, read them back, and rebuild any model from one.

A checkpoint is one ``torch.save`` dict:

    model        the weights to use (the EMA weights when the run used EMA)
    extra        how to rebuild the model: {"model_name": "unet", "model_config": {...every
                 config field, front end included...}}, plus what the recipe adds (dataset, ...)
    train_config the TrainConfig of the run, as a dict
    state        the trainer's TrainState as a dict (step, epoch, position in the epoch, history)
    resume       raw weights, optimiser, EMA and random states: what an exact resume needs
                 (None in a weights-only checkpoint)

:func:`load_separator` rebuilds the separator a checkpoint holds through the one table
of models, :data:`tpsep.recipes.MODELS`: ``tpsep separate`` and ``tpsep evaluate``
need nothing else.
"""

from __future__ import annotations

import json
import os
import random
from contextlib import contextmanager
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path

import numpy as np
import torch


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


def _plain(value):
    return asdict(value) if is_dataclass(value) else value


def save_checkpoint(path, model, train_config=None, extra: dict | None = None, optimizer=None, ema=None,
                    state=None) -> None:
    """Write a checkpoint atomically (a crash never leaves half a file); see the module's docstring."""
    raw_weights = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    weights = {k: v.detach().cpu().clone() for k, v in ema.shadow.items()} if ema else raw_weights
    checkpoint = {
        "model": weights,
        "extra": dict(extra or {}),
        "train_config": _plain(train_config),
        "state": _plain(state),
        "resume": None if optimizer is None else {
            "raw_model": raw_weights if ema else None,  # None: same as "model"
            "optimizer": optimizer.state_dict(),
            "ema": ema.state_dict() if ema else None,
            "random": random_states(),
        },
    }
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, model=None) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint` (onto the CPU); if ``model`` is given,
    load its weights (the EMA weights when the run used EMA) into it. Returns the whole dict.
    Only load checkpoints you trust: they are pickles (random states are not plain tensors)."""
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path!r} is a folder; give a checkpoint file in it, e.g. {os.path.join(path, 'best.pt')}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no checkpoint at {path!r} (training writes best.pt and last.pt in its out folder)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # torch raises pickle, zip and EOF errors of many kinds on a bad file
        raise ValueError(f"{path!r} is not a readable checkpoint (truncated, or not written by torch.save): "
                         f"{type(error).__name__}") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(f"{path!r} is not a tpsep checkpoint (no 'model' key)")
    if model is not None:
        model.load_state_dict(checkpoint["model"])
    return checkpoint


def model_config(name: str, settings: dict):
    """The config dataclass of model ``name`` from plain ``settings``; unknown keys are a clear error."""
    from tpsep.recipes import MODELS

    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; the models are {sorted(MODELS)}")
    config_class = MODELS[name].config
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f"{name}: unknown config key(s) {unknown}; {config_class.__name__} has {sorted(known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    return config_class(**values)


def load_separator(path, device: str = "cpu") -> torch.nn.Module:
    """Rebuild the separator that the checkpoint file ``path`` holds (see :func:`separator_from`)."""
    return separator_from(load_checkpoint(path), device, source=repr(str(path)))


def separator_from(checkpoint: dict, device: str = "cpu", source: str = "the checkpoint") -> torch.nn.Module:
    """Rebuild the separator a loaded checkpoint holds, with its weights, in eval mode.

    Uses ``extra["model_name"]`` and ``extra["model_config"]`` (the whole config, front end
    included). For a model whose trained part is inside a front end (the U-Net inside
    :class:`tpsep.models.unet.UNetSeparator`), the weights go to that part.
    """
    from tpsep.recipes import MODELS

    extra = checkpoint.get("extra") or {}
    name = extra.get("model_name")
    if name is None:
        raise ValueError(f"{source} does not say which model it holds (extra['model_name'] is missing)")
    config = model_config(name, extra.get("model_config") or {})
    entry = MODELS[name]
    separator = entry.separator(config, verbose=False)
    trained = separator.get_submodule(entry.trained) if entry.trained else separator
    trained.load_state_dict(checkpoint["model"])
    return separator.to(device).eval()


# ----------------------------------------------------------------------------- shipped reference models

REFERENCES = Path(__file__).parent / "references"


def reference_names() -> list[str]:
    """The reference checkpoints shipped with tpsep (``tpsep/references/<name>.pt``)."""
    return sorted(p.stem for p in REFERENCES.glob("*.pt"))


def reference(name: str) -> Path:
    """The path of the shipped reference checkpoint ``name``, e.g. ``"convtasnet-speech"``.

    Each one holds weights and config only (no optimiser state) and comes with a card,
    ``<name>.json`` (:func:`reference_card`): what produced it, for how long, and its scores.
    Load it with :func:`load_separator`.
    """
    path = REFERENCES / f"{name}.pt"
    if not path.is_file():
        raise ValueError(f"no reference checkpoint named {name!r}; the shipped ones are {reference_names()}")
    return path


def reference_card(name: str) -> dict:
    """The card of the shipped reference ``name``: command, budget, steps, seed, machine, scores."""
    return json.loads(reference(name).with_suffix(".json").read_text())


def slim_weights(weights: dict, dtype: torch.dtype | None = None) -> dict:
    """A copy of a state dict, its floating-point tensors cast to ``dtype`` when one is given.

    float16 halves a shipped file; ``load_state_dict`` casts the weights back to the model's
    float32 when they are loaded, so only their rounding differs.
    """
    return {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v.clone() for k, v in weights.items()}


def export_reference(checkpoint_path, out_path, card: dict, dtype: torch.dtype | None = None) -> Path:
    """Write the weights (cast to ``dtype`` if given) and config of a training checkpoint, with no
    optimiser and no random states, to ``out_path``, and ``card`` beside it as ``<stem>.json``;
    returns the checkpoint path."""
    checkpoint = load_checkpoint(checkpoint_path)
    slim = {"model": slim_weights(checkpoint["model"], dtype), "extra": checkpoint.get("extra") or {},
            "train_config": checkpoint.get("train_config"), "state": checkpoint.get("state"), "resume": None}
    separator_from(slim, source=repr(str(checkpoint_path)))  # fails here, not in a student's notebook
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(slim, out_path)
    out_path.with_suffix(".json").write_text(json.dumps(card, indent=1, default=str) + "\n")
    return out_path
