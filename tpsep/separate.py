"""Whole-track separation with a mask network (the U-Net of notebook 03).

A network trained on 512 x 128 patches cannot see a whole song at once. So:

1. resample the mixture to the model's rate (8192 Hz) and take its STFT
   (n_fft 1024, hop 768): ``(channels, 513, frames)``;
2. drop the Nyquist bin (the 512-bin convention) and cut the magnitude into
   patches of 128 frames that overlap by half (:func:`make_patches`);
3. run the network on each patch, then put the masks back in place, each
   frame the weighted average of the patches that cover it (:func:`stitch_patches`);
   the weights fall towards a patch's edges, where the network saw the least context;
4. give the dropped Nyquist bin the mask of its neighbour, multiply the mixture
   STFT by the mask (keeping the mixture phase), inverse STFT (:func:`reconstruct`);
5. resample back to the track's rate. The accompaniment is the mixture minus the
   vocals, at the track's rate, so it keeps the band above 4096 Hz that the
   8192 Hz model never saw.

Shapes: audio ``(channels, samples)``; spectrograms and masks ``(channels, freq, frames)``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from tpsep import spectral

PATCH_FRAMES = 128


def patch_weights(patch_frames: int) -> torch.Tensor:
    """Stitching weights over a patch's frames: a Hann bump, > 0 everywhere. ``(patch_frames,)``."""
    return torch.hann_window(patch_frames + 2, periodic=False, dtype=torch.float64)[1:-1].float()


def make_patches(mag: torch.Tensor, patch_frames: int = PATCH_FRAMES, hop_frames: int | None = None) -> torch.Tensor:
    """Cut a magnitude spectrogram into overlapping patches along time.

    The end is zero-padded so that every frame is inside at least one patch.

    Args:
        mag: ``(freq, frames)``.
        patch_frames: frames per patch (128 for the U-Net).
        hop_frames: step between patch starts (default ``patch_frames // 2``: 50% overlap).

    Returns:
        ``(n_patches, freq, patch_frames)`` with ``n_patches = 1 + ceil(max(frames - patch_frames, 0) / hop_frames)``.
    """
    hop_frames = hop_frames or patch_frames // 2
    if mag.ndim != 2:
        raise ValueError(f"make_patches expects one spectrogram (freq, frames), got shape {tuple(mag.shape)}")
    if not 0 < hop_frames <= patch_frames:
        raise ValueError(f"hop_frames must be in 1..{patch_frames}, got {hop_frames}")
    frames = mag.shape[-1]
    n_patches = 1 + -(-max(frames - patch_frames, 0) // hop_frames)
    padded_frames = (n_patches - 1) * hop_frames + patch_frames
    mag = torch.nn.functional.pad(mag, (0, padded_frames - frames))
    return mag.unfold(-1, patch_frames, hop_frames).permute(1, 0, 2).contiguous()


def stitch_patches(patches: torch.Tensor, hop_frames: int, total_frames: int) -> torch.Tensor:
    """Put overlapping patches back in place: the inverse of :func:`make_patches`.

    Each output frame is the weighted average of the patches that cover it, with
    the weights of :func:`patch_weights`, so a mask stays a mask (in [0, 1]) and a
    seam between two patches is a cross-fade, not a jump.

    Args:
        patches: ``(n_patches, freq, patch_frames)``; patch ``i`` starts at frame ``i * hop_frames``.
        hop_frames: step between patch starts.
        total_frames: number of frames to return (the padding is cut off).

    Returns:
        ``(freq, total_frames)``.
    """
    n_patches, freq, patch_frames = patches.shape
    weights = patch_weights(patch_frames).to(patches.dtype)
    length = (n_patches - 1) * hop_frames + patch_frames
    if total_frames > length:
        raise ValueError(f"{n_patches} patches of {patch_frames} frames (hop {hop_frames}) cover {length} frames, "
                         f"fewer than total_frames={total_frames}")
    out = torch.zeros(freq, length, dtype=patches.dtype)
    norm = torch.zeros(length, dtype=patches.dtype)
    for i in range(n_patches):
        start = i * hop_frames
        out[:, start:start + patch_frames] += weights * patches[i]
        norm[start:start + patch_frames] += weights
    return (out / norm)[:, :total_frames]


@torch.no_grad()
def predict_mask(model: torch.nn.Module, mixture_mag: torch.Tensor, patch_frames: int = PATCH_FRAMES,
                 hop_frames: int | None = None, batch_size: int = 8) -> torch.Tensor:
    """The model's mask for a whole spectrogram, patch by patch.

    Args:
        model: maps ``(batch, 512, patch_frames)`` magnitudes to masks of the same shape.
        mixture_mag: ``(channels, 512, frames)`` or ``(512, frames)``, the Nyquist bin already dropped.

    Returns:
        mask of the same shape as ``mixture_mag``, in [0, 1].
    """
    hop_frames = hop_frames or patch_frames // 2
    single = mixture_mag.ndim == 2
    mags = mixture_mag[None] if single else mixture_mag
    if mags.shape[-2] != spectral.BINS:
        raise ValueError(f"predict_mask expects {spectral.BINS} frequency bins (crop the Nyquist bin "
                         f"with tpsep.spectral.crop_bins), got shape {tuple(mixture_mag.shape)}")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    masks = []
    for mag in mags:
        patches = make_patches(mag.float(), patch_frames, hop_frames)
        outputs = [model(chunk.to(device)).cpu() for chunk in patches.split(batch_size)]
        masks.append(stitch_patches(torch.cat(outputs), hop_frames, mag.shape[-1]))
    model.train(was_training)
    mask = torch.stack(masks)
    return mask[0] if single else mask


def full_band_mask(mask: torch.Tensor) -> torch.Tensor:
    """Restore the dropped Nyquist bin of a 512-bin mask by repeating its neighbour: ``(..., 513, frames)``."""
    return torch.cat([mask, mask[..., -1:, :]], dim=-2)


def wiener_refine(mask: torch.Tensor, power: float = 2.0) -> torch.Tensor:
    """Wiener-like refinement of a two-source mask: ``M^p / (M^p + (1 - M)^p)``.

    The estimates of the target and of the rest are ``M |X|`` and ``(1 - M) |X|``;
    a power ratio of the two (p = 2, as a Wiener filter uses powers) pushes
    uncertain bins towards 0 or 1: less bleeding, a little more artefacts.
    """
    target, rest = mask.clamp(0, 1) ** power, (1 - mask.clamp(0, 1)) ** power
    return target / (target + rest + 1e-10)


def reconstruct(mask: torch.Tensor, mixture_stft: torch.Tensor, length: int,
                n_fft: int = spectral.N_FFT, hop: int = spectral.HOP) -> torch.Tensor:
    """Turn a 512-bin mask back into audio, with the mixture phase.

    Args:
        mask: ``(..., 512, frames)`` in [0, 1].
        mixture_stft: complex ``(..., 513, frames)``.
        length: samples to return (the mixture's length at the STFT's rate).

    Returns:
        ``(..., length)`` waveform: ``istft(full_band_mask(mask) * mixture_stft)``.
    """
    if mask.shape[-2] + 1 != mixture_stft.shape[-2] or mask.shape[-1] != mixture_stft.shape[-1]:
        raise ValueError(f"mask {tuple(mask.shape)} does not fit the mixture STFT {tuple(mixture_stft.shape)}: "
                         f"expected (..., {mixture_stft.shape[-2] - 1}, {mixture_stft.shape[-1]})")
    estimate = full_band_mask(mask).to(mixture_stft.real.dtype) * mixture_stft
    return spectral.istft(estimate, n_fft=n_fft, hop=hop, length=length)


def separate_track(model: torch.nn.Module, mixture: np.ndarray, rate: int, target: str = "vocals",
                   model_rate: int = spectral.RATE, refine: bool = False, batch_size: int = 8,
                   return_mask: bool = False):
    """Separate a whole track with a mask network.

    Args:
        model: the trained U-Net (or any ``(batch, 512, 128) -> mask`` model).
        mixture: float32 ``(channels, samples)`` at ``rate`` Hz; each channel is separated on its own.
        rate: the mixture's sample rate.
        target: the name of what the model extracts; the rest is called "accompaniment"
            for vocals, ``"rest"`` otherwise.
        model_rate: the rate the model was trained at (8192 Hz).
        refine: apply :func:`wiener_refine` to the mask.

    Returns:
        ``{target: (channels, samples), rest_name: (channels, samples)}`` float32 at ``rate``;
        with ``return_mask=True`` also the mask ``(channels, 512, frames)`` (a tuple).
    """
    from tpsep import audio

    mixture = np.asarray(mixture, dtype=np.float32)
    if mixture.ndim != 2:
        raise ValueError(f"separate_track expects a mixture (channels, samples), got shape {mixture.shape}")
    if not np.isfinite(mixture).all():
        raise ValueError("the mixture contains NaN or Inf")
    if np.abs(mixture).max(initial=0.0) == 0:
        raise ValueError("the mixture is silent (all zeros): nothing to separate")
    low, padded = _at_model_rate(mixture, rate, model_rate)
    X = spectral.stft(torch.from_numpy(padded), n_fft=spectral.N_FFT, hop=spectral.HOP)   # (C, 513, frames)
    mask = predict_mask(model, spectral.crop_bins(X.abs()), batch_size=batch_size)
    if refine:
        mask = wiener_refine(mask)
    estimate_low = reconstruct(mask, X, length=padded.shape[-1]).numpy()[..., :low.shape[-1]]
    estimate = audio.resample(estimate_low, model_rate, rate)
    estimate = _fit_length(estimate, mixture.shape[-1]).astype(np.float32)
    rest_name = "accompaniment" if target == "vocals" else "rest"
    estimates = {target: estimate, rest_name: (mixture - estimate).astype(np.float32)}
    return (estimates, mask) if return_mask else estimates


def _at_model_rate(x: np.ndarray, rate: int, model_rate: int = spectral.RATE):
    """``x`` resampled to ``model_rate``, and the same padded to whole hops (so that the
    inverse STFT gives back every sample, the last partial hop too)."""
    from tpsep import audio

    low = audio.resample(x, rate, model_rate)
    return low, np.pad(low, [(0, 0), (0, -low.shape[-1] % spectral.HOP)])


def oracle_at_model_rate(track, target: str = "vocals") -> dict:
    """The ideal ratio mask in the U-Net's own setting (8192 Hz, n_fft 1024, hop 768): the
    ceiling of any model trained there. A separator for :mod:`tpsep.evaluation`; the rest is
    mixture - target, as :func:`separate_track` returns it."""
    from tpsep import audio, masks

    mixture = np.asarray(track.mixture, dtype=np.float32)
    _, padded_mixture = _at_model_rate(mixture, track.rate)
    _, padded_target = _at_model_rate(track.stem(target), track.rate)
    low = masks.separate_with_oracle(padded_mixture, {target: padded_target}, kind="irm",
                                     n_fft=spectral.N_FFT, hop=spectral.HOP)[target]
    estimate = _fit_length(audio.resample(low, spectral.RATE, track.rate), mixture.shape[-1]).astype(np.float32)
    rest_name = "accompaniment" if target == "vocals" else "rest"
    return {target: estimate, rest_name: mixture - estimate}


def _fit_length(x: np.ndarray, length: int) -> np.ndarray:
    if x.shape[-1] >= length:
        return x[..., :length]
    return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(0, length - x.shape[-1])])


def unet_separator(model: torch.nn.Module, target: str = "vocals", refine: bool = False):
    """A ``separator(track) -> {source: estimate (channels, samples)}`` for :mod:`tpsep.evaluation`."""

    def separator(track) -> dict:
        return separate_track(model, track.mixture, track.rate, target=target, refine=refine)

    separator.__name__ = "unet" + ("_wiener" if refine else "")
    separator.description = f"U-Net mask for {target}" + (", Wiener-like refinement" if refine else "")
    return separator


def load_separator_model(checkpoint: str, device: str = "cpu"):
    """Load a U-Net checkpoint written by ``tpsep train unet`` (or notebook 03).

    Returns:
        ``(model in eval mode, target name)``.
    """
    from tpsep.train import load_checkpoint, load_model

    extra = load_checkpoint(checkpoint).get("extra") or {}
    if extra.get("model_name") != "unet":
        raise ValueError(f"{checkpoint!r} holds a {extra.get('model_name')!r} model; "
                         "tpsep separate works with mask networks trained by `tpsep train unet`")
    model, _ = load_model(checkpoint, device=device)
    return model, extra.get("target", "vocals")


def write_estimates(estimates: dict, rate: int, folder: str | Path) -> list[Path]:
    """Write each estimate ``(channels, samples)`` to ``folder/<name>.wav`` (32-bit float: no clipping)."""
    from tpsep import audio

    return [audio.save(Path(folder) / f"{name}.wav", estimate, rate, subtype="FLOAT")
            for name, estimate in estimates.items()]


SEPARATE_HELP = """\
Separate whole songs with a trained U-Net (notebook 04 explains each step).

Each file is resampled to 8192 Hz, cut into 512-bin x 128-frame patches that
overlap by half, masked by the network, stitched back (a cross-fade between
patches), turned back into audio with the mixture's phase (inverse STFT), and
resampled to the file's own rate. The accompaniment is the mixture minus the
vocals. Stereo files are separated channel by channel.

For each AUDIO file it writes OUT/<file name>/vocals.wav and accompaniment.wav.

examples:
  tpsep train unet --minutes 5 --out runs/unet
  tpsep separate runs/unet/best.pt song.wav --out separated
  tpsep separate runs/unet/best.pt a.flac b.wav --refine --out separated --json sep.json
"""


def add_separate_command(subparsers) -> argparse.ArgumentParser:
    """Register ``tpsep separate`` on an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "separate", help="separate audio files with a trained U-Net checkpoint",
        description=SEPARATE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a checkpoint from `tpsep train unet` (best.pt or last.pt)")
    parser.add_argument("audio", nargs="+", help="audio files to separate (wav, flac, ogg, ...)")
    parser.add_argument("--out", default="separated", metavar="DIR", help="output folder (default: separated)")
    parser.add_argument("--refine", action="store_true",
                        help="Wiener-like refinement: sharpen the mask with a power ratio M^2 / (M^2 + (1-M)^2)")
    parser.add_argument("--device", default="cpu", help='"cpu" (default), "cuda", "mps"')
    parser.add_argument("--batch-size", type=int, default=8, help="patches per forward pass")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the key figures to this JSON file")
    parser.set_defaults(func=run_separate_command)
    return parser


def run_separate_command(args) -> int:
    """Run ``tpsep separate``: print one line of key figures (``--json`` writes them all); exit status 0."""
    from tpsep import audio

    model, target = load_separator_model(args.checkpoint, device=args.device)
    files, seconds = [], 0.0
    for path in args.audio:
        mixture, rate = audio.load(path)
        estimates = separate_track(model, mixture, rate, target=target, refine=args.refine,
                                   batch_size=args.batch_size)
        written = write_estimates(estimates, rate, Path(args.out) / Path(path).stem)
        seconds += mixture.shape[-1] / rate
        energy = {name: float(np.mean(est ** 2) / (np.mean(mixture ** 2) + 1e-12)) for name, est in estimates.items()}
        files.append({"input": str(path), "outputs": [str(p) for p in written], "rate": rate,
                      "seconds": mixture.shape[-1] / rate, "energy_ratio": energy})
    figures = {"checkpoint": args.checkpoint, "target": target, "files": len(files), "seconds": seconds,
               "refine": bool(args.refine), "out": str(args.out), "details": files}
    print(f"separate: files={len(files)} audio_seconds={seconds:.1f} target={target} "
          f"refine={'yes' if args.refine else 'no'} out={args.out}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))
    return 0


# ---- checkpoint mode of `tpsep evaluate CHECKPOINT` (see tpsep.evaluation) ----

def evaluate_checkpoint_loader(path: str, args) -> Callable | None:
    """``tpsep evaluate`` hook: a separator for a U-Net checkpoint, None for any other checkpoint."""
    from tpsep.train import load_checkpoint

    try:
        extra = load_checkpoint(path).get("extra") or {}
    except ValueError:  # not a tpsep checkpoint: another loader may understand it
        return None
    if extra.get("model_name") != "unet":
        return None
    model, target = load_separator_model(path, device=getattr(args, "device", None) or "cpu")
    return unet_separator(model, target=target, refine=bool(getattr(args, "refine", False)))


def _register_with_evaluate() -> None:
    from tpsep import evaluation

    if evaluate_checkpoint_loader not in evaluation.CHECKPOINT_LOADERS:
        evaluation.register_checkpoint_loader(evaluate_checkpoint_loader)


_register_with_evaluate()
