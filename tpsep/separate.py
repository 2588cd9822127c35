"""Any separator, any audio: estimates at the input's rate and length.

A *separator* is a ``torch.nn.Module`` that takes a mixture ``(batch, channels, samples)``
at its own rate (``separator.config.rate``) and returns ``(batch, sources, channels,
samples)`` (see :mod:`tpsep.models`). :func:`separate` puts any audio through any
of them:

1. check the audio (layout, dtype, NaN, silence) and convert integer PCM to float;
2. resample it to the separator's rate;
3. run the separator (in eval mode, without gradients);
4. resample each estimate back to the input's rate and cut it to the input's length.
   A separator may name a *residual* source (the U-Net's "accompaniment"): it is
   computed at the input's rate as the mixture minus the other estimates, so it keeps
   the band above the model's Nyquist frequency that the model never heard.

:func:`track_separator` turns a separator into the ``separator(track) -> {name: estimate}``
form that :func:`tpsep.evaluation.evaluate` scores, and ``tpsep separate`` writes the
estimates of audio files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tpsep import audio, masks
from tpsep.checkpoints import load_checkpoint, separator_from
from tpsep.losses import apply_permutation, pit_si_snr
from tpsep.models.unet import residual_name


def source_names(separator: torch.nn.Module) -> list[str]:
    """The names of a separator's outputs: its ``sources`` when it has them (the U-Net's
    ("vocals", "accompaniment")), else ``s1, s2, ...`` (PIT models have no order)."""
    names = getattr(separator, "sources", None)
    if names:
        return list(names)
    if separator.config.C == 1:  # one output: an enhancement model, trained on task "enhance"
        return ["speech"]
    return [f"s{i + 1}" for i in range(separator.config.C)]


@torch.no_grad()
def separate(separator: torch.nn.Module, mixture, rate: int) -> dict[str, np.ndarray]:
    """Separate one mixture with any separator, at any rate and channel count.

    Args:
        separator: a module ``(batch, channels, samples) -> (batch, sources, channels, samples)``
            at ``separator.config.rate``.
        mixture: ``(channels, samples)`` or ``(samples,)``, float or integer PCM, numpy or torch.
        rate: the mixture's sample rate in Hz.

    Returns:
        ``{source name: float32 (channels, samples)}`` at ``rate``, as long as the mixture.
    """
    mixture = audio.as_mixture(mixture, rate)
    model_rate = separator.config.rate
    device = next(separator.parameters()).device
    was_training = separator.training
    separator.eval()
    low = audio.resample(mixture, rate, model_rate)
    outputs = separator(torch.from_numpy(low)[None].to(device))[0].float().cpu().numpy()  # (sources, channels, samples)
    separator.train(was_training)
    names = source_names(separator)
    residual = getattr(separator, "residual_source", None)
    # a separator returns every named source, or all but the residual (the band-split model)
    computed = [n for n in names if n != residual]
    if outputs.shape[0] == len(names):
        outputs = [output for name, output in zip(names, outputs) if name != residual]
    elif outputs.shape[0] != len(computed):
        raise ValueError(f"{type(separator).__name__} returned {outputs.shape[0]} sources for names {names}")
    estimates = {}
    for name, output in zip(computed, outputs):
        estimates[name] = fit_length(audio.resample(output, model_rate, rate), mixture.shape[-1])
    if residual is not None:
        estimates[residual] = (mixture - sum(estimates.values())).astype(np.float32)
        estimates = {name: estimates[name] for name in names}
    return estimates


def fit_length(x: np.ndarray, length: int) -> np.ndarray:
    """Cut or zero-pad the last axis of ``x`` to ``length`` samples (float32)."""
    if x.shape[-1] < length:
        x = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])
    return np.ascontiguousarray(x[..., :length], dtype=np.float32)


def track_separator(separator: torch.nn.Module, align: bool | None = None, name: str | None = None) -> Callable:
    """A ``method(track) -> {source name: estimate (channels, samples)}`` for :mod:`tpsep.evaluation`.

    A separator whose outputs have names (the U-Net) gives them. One trained with PIT gives
    its outputs in no particular order: with ``align`` (the default for them) they are
    matched to the track's sources by the permutation of best SI-SNR, as every
    speech-separation benchmark does; the estimates themselves are untouched.
    """
    named = bool(getattr(separator, "sources", None))
    align = (not named) if align is None else align

    def method(track) -> dict:
        estimates = separate(separator, track.mixture, track.rate)
        if not align:
            return estimates
        names = list(track.source_names)
        if len(names) != len(estimates):
            raise ValueError(f"this model separates {len(estimates)} sources, track {track.name!r} has "
                             f"{len(names)} {names} (for the speech set, pass --dataset speech)")
        stacked = torch.from_numpy(np.stack(list(estimates.values())))[None]          # (1, C, channels, samples)
        references = torch.from_numpy(np.stack([track.stem(n) for n in names]))[None]
        _, permutation = pit_si_snr(stacked, references)
        aligned = apply_permutation(stacked, permutation)[0].numpy()
        return {n: aligned[i] for i, n in enumerate(names)}

    method.__name__ = name or type(separator).__name__
    return method


def oracle_at_model_rate(track, target: str = "vocals", rate: int = 8192, n_fft: int = 1024, hop: int = 768) -> dict:
    """The ideal ratio mask in the U-Net's own setting (8192 Hz, n_fft 1024, hop 768): the
    ceiling of any model trained there. A method for :mod:`tpsep.evaluation`; the rest is
    mixture - target at the track's rate, as :func:`separate` returns it for the U-Net."""
    mixture = np.asarray(track.mixture, dtype=np.float32)
    at_model_rate = [audio.resample(x, track.rate, rate) for x in (mixture, track.stem(target))]
    padded_mixture, padded_target = (np.pad(x, [(0, 0), (0, -x.shape[-1] % hop)]) for x in at_model_rate)
    low = masks.separate_with_oracle(padded_mixture, {target: padded_target}, kind="irm",
                                     n_fft=n_fft, hop=hop)[target]
    estimate = fit_length(audio.resample(low, rate, track.rate), mixture.shape[-1])
    return {target: estimate, residual_name(target): mixture - estimate}


def write_estimates(estimates: dict, rate: int, folder: str | Path, overwrite: bool = False) -> list[Path]:
    """Write each estimate ``(channels, samples)`` to ``folder/<name>.wav`` (32-bit float: no clipping).
    Existing files are an error unless ``overwrite``: nothing is lost without being asked."""
    folder = Path(folder)
    paths = [folder / f"{name}.wav" for name in estimates]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"refusing to overwrite {', '.join(existing)}; pass overwrite=True (--overwrite)")
    return [audio.save(path, estimate, rate, subtype="FLOAT") for path, estimate in zip(paths, estimates.values())]


# ---- the command line: tpsep separate CHECKPOINT FILE... ----

SEPARATE_HELP = """\
Separate audio files with any trained model (U-Net, Conv-TasNet, ...).

Each file is read at its own rate and channel count, resampled to the model's
rate, separated channel by channel, and each estimate is resampled back to the
file's rate and length. For the U-Net (notebook 04 explains each step) the
accompaniment is the mixture minus the vocals, at the file's rate.

For each AUDIO file it writes OUT/<file name>/<source>.wav; two inputs with the
same file name go to distinct folders (<name>, <name>-2, ...). Existing files
are kept unless --overwrite is given.

examples:
  tpsep train unet --minutes 5 --out runs/unet
  tpsep separate runs/unet/best.pt song.wav --out separated
  tpsep separate runs/unet/best.pt a.flac b.wav --refine --out separated --json sep.json
  tpsep separate runs/tasnet/best.pt conversation.wav --out separated
"""


def add_separate_command(subparsers) -> argparse.ArgumentParser:
    """Add ``tpsep separate`` to an argparse ``subparsers`` object (called by :mod:`tpsep.cli`)."""
    parser = subparsers.add_parser(
        "separate", help="separate audio files with a trained model's checkpoint",
        description=SEPARATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint from `tpsep train` (best.pt or last.pt)")
    parser.add_argument("audio", nargs="+", help="audio files to separate (wav, flac, ogg, ...)")
    parser.add_argument("--out", default="separated", metavar="DIR", help="output folder (default: separated)")
    parser.add_argument("--refine", action="store_true",
                        help="U-Net: Wiener-like refinement, sharpen the mask with M^2 / (M^2 + (1-M)^2)")
    parser.add_argument("--overwrite", action="store_true", help="replace estimates already in the output folder")
    parser.add_argument("--device", default="cpu", help='"cpu" (default), "cuda", "mps"')
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the key figures to this JSON file")
    parser.set_defaults(func=run_separate_command)
    return parser


def output_folders(paths, out) -> list[Path]:
    """One output folder per input: ``out/<stem>``, then ``out/<stem>-2``, ... for repeated names."""
    folders, seen = [], {}
    for path in paths:
        stem = Path(path).stem
        seen[stem] = seen.get(stem, 0) + 1
        folders.append(Path(out) / (stem if seen[stem] == 1 else f"{stem}-{seen[stem]}"))
    return folders


def run_separate_command(args) -> int:
    """Run ``tpsep separate``: print one line of key figures (``--json`` writes them all); exit status 0."""
    checkpoint = load_checkpoint(args.checkpoint)
    separator = separator_from(checkpoint, device=args.device)
    model_name = checkpoint["extra"]["model_name"]
    if args.refine:
        if not hasattr(separator.config, "refine"):
            raise ValueError(f"--refine is for mask models (the U-Net); {args.checkpoint} holds a {model_name}")
        separator.config.refine = True
    inputs = [audio.load(path) for path in args.audio]          # read everything first: a bad file stops nothing half-written
    folders = output_folders(args.audio, args.out)
    for folder in folders:
        clashes = [str(p) for p in folder.glob("*.wav")] if folder.exists() else []
        if clashes and not args.overwrite:
            raise FileExistsError(f"{folder} already holds {len(clashes)} file(s), e.g. {clashes[0]}; "
                                  "pass --overwrite to replace them, or choose another --out")
    files, seconds, written_count = [], 0.0, 0
    for path, (mixture, rate), folder in zip(args.audio, inputs, folders):
        estimates = separate(separator, mixture, rate)
        written = write_estimates(estimates, rate, folder, overwrite=True)
        written_count += len(written)
        seconds += mixture.shape[-1] / rate
        energy = {name: float(np.mean(est ** 2) / (np.mean(mixture ** 2) + 1e-12)) for name, est in estimates.items()}
        files.append({"input": str(path), "outputs": [str(p) for p in written], "rate": rate,
                      "seconds": mixture.shape[-1] / rate, "energy_ratio": energy})
    figures = {"checkpoint": args.checkpoint, "model": model_name, "files": len(files),
               "written": written_count, "seconds": seconds, "refine": bool(args.refine),
               "out": str(args.out), "details": files}
    print(f"separate: model={model_name} files={len(files)} written={written_count} audio_seconds={seconds:.1f} "
          f"refine={'yes' if args.refine else 'no'} out={args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0
