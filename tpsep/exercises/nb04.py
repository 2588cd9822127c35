"""Exercises of notebook 04 (reconstruction): stitching patches, restoring the dropped bin,
turning a mask into audio, and the Wiener-like refinement of several estimates."""

from __future__ import annotations

import torch

from tpsep import spectral
from tpsep.exercises import register
from tpsep.masks import wiener_refine_sources
from tpsep.spectral import full_band_mask, reconstruct, stitch_patches


def _stitch_inputs(rng):
    patch_frames = int(rng.choice([8, 16, 32]))
    # always overlapping (50% or 75%) and at least two patches: without overlap a plain
    # average would equal the weighted one, and the check could not tell them apart
    hop_frames = patch_frames // int(rng.choice([2, 4]))
    n_patches = int(rng.integers(2, 7))
    length = (n_patches - 1) * hop_frames + patch_frames
    total_frames = int(rng.integers(max(1, length - hop_frames + 1), length + 1))
    patches = torch.from_numpy(rng.random((n_patches, int(rng.integers(2, 10)), patch_frames))).float()
    return (patches, hop_frames, total_frames), {}


register("04.stitch_patches", reference=stitch_patches, make_inputs=_stitch_inputs,
         hint="add weights * patch at frame i * hop_frames, add the weights themselves to a second array, "
              "divide the two, keep the first total_frames frames",
         atol=1e-5, rtol=1e-4, points=3)


def _full_band_inputs(rng):
    leading = tuple(int(n) for n in rng.integers(1, 4, size=int(rng.integers(0, 3))))
    bins = int(rng.choice([16, 64, 512]))
    mask = torch.from_numpy(rng.random((*leading, bins, int(rng.integers(1, 20))))).float()
    return (mask,), {}


register("04.full_band_mask", reference=full_band_mask, make_inputs=_full_band_inputs,
         hint="append a copy of the top bin, mask[..., -1:, :], along the frequency axis (dim=-2) with torch.cat",
         atol=0.0, rtol=0.0)


def _reconstruct_inputs(rng):
    samples = int(rng.integers(8, 40)) * 768  # whole hops: the inverse STFT gives back every sample
    x = torch.from_numpy(rng.standard_normal((int(rng.integers(1, 3)), samples))).float()
    mixture_stft = spectral.stft(x, n_fft=1024, hop=768)
    mask = torch.from_numpy(rng.random((x.shape[0], 512, mixture_stft.shape[-1]))).float()
    return (mask, mixture_stft, samples), {}


def reconstruct_at_the_unet_setting(mask, mixture_stft, length):
    """The reference of exercise 3: :func:`tpsep.spectral.reconstruct` with the U-Net's n_fft 1024, hop 768."""
    return reconstruct(mask, mixture_stft, length, n_fft=1024, hop=768)


register("04.reconstruct", reference=reconstruct_at_the_unet_setting, make_inputs=_reconstruct_inputs,
         hint="full_band_mask(mask) * mixture_stft (the complex STFT, so the mixture phase is kept), then "
              "spectral.istft(..., n_fft=1024, hop=768, length=length)",
         atol=1e-4, rtol=1e-3)


def _refine_inputs(rng):
    sources = int(rng.integers(2, 5))
    shape = (*(int(n) for n in rng.integers(1, 3, size=int(rng.integers(1, 3)))),
             int(rng.integers(3, 40)), int(rng.integers(2, 30)))
    source_mags = torch.from_numpy(0.1 + 0.9 * rng.random((sources, *shape))).float()
    # a few bins where every estimate is silent (as in digital silence): 0 there, not 0 / 0 = NaN
    silent = torch.from_numpy(rng.random(shape) < 0.1)
    silent.view(-1)[0] = True
    source_mags[:, silent] = 0.0
    mixture_stft = torch.complex(*(torch.from_numpy(rng.standard_normal(shape)).float() for _ in range(2)))
    # never p = 1: (sum_k |S_k|)^p and sum_k |S_k|^p must differ
    return (source_mags, mixture_stft), {"power": float(rng.choice([1.5, 2.0, 3.0]))}


register("04.wiener_refine_sources", reference=wiener_refine_sources, make_inputs=_refine_inputs,
         hint="powers = source_mags ** power; masks = powers / powers.sum(dim=0, keepdim=True).clamp_min(1e-30) "
              "(a bin where every estimate is 0 gives 0, not NaN); return masks * mixture_stft (complex)",
         atol=1e-5, rtol=1e-4, points=3)
