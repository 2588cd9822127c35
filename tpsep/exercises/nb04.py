"""Exercises of notebook 04 (reconstruction): stitching patches, and turning a mask into audio."""

from __future__ import annotations

import torch

from tpsep import spectral
from tpsep.exercises import register
from tpsep.spectral import reconstruct, stitch_patches


def _stitch_inputs(rng):
    patch_frames = int(rng.choice([8, 16, 32]))
    hop_frames = patch_frames // int(rng.choice([1, 2, 4]))
    n_patches = int(rng.integers(1, 6))
    length = (n_patches - 1) * hop_frames + patch_frames
    total_frames = int(rng.integers(max(1, length - hop_frames + 1), length + 1))
    patches = torch.from_numpy(rng.random((n_patches, int(rng.integers(2, 10)), patch_frames))).float()
    return (patches, hop_frames, total_frames), {}


register("04.stitch_patches", reference=stitch_patches, make_inputs=_stitch_inputs,
         hint="add weights * patch at frame i * hop_frames, add the weights themselves to a second array, "
              "divide the two, keep the first total_frames frames",
         atol=1e-5, rtol=1e-4)


def _reconstruct_inputs(rng):
    samples = int(rng.integers(8, 40)) * 768  # whole hops: the inverse STFT gives back every sample
    x = torch.from_numpy(rng.standard_normal((int(rng.integers(1, 3)), samples))).float()
    mixture_stft = spectral.stft(x, n_fft=1024, hop=768)
    mask = torch.from_numpy(rng.random((x.shape[0], 512, mixture_stft.shape[-1]))).float()
    return (mask, mixture_stft, samples), {}


def reconstruct_at_the_unet_setting(mask, mixture_stft, length):
    """The reference of exercise 2: :func:`tpsep.spectral.reconstruct` with the U-Net's n_fft 1024, hop 768."""
    return reconstruct(mask, mixture_stft, length, n_fft=1024, hop=768)


register("04.reconstruct", reference=reconstruct_at_the_unet_setting, make_inputs=_reconstruct_inputs,
         hint="give the Nyquist bin the mask of bin 511 (torch.cat along the frequency axis), multiply the "
              "complex mixture STFT, then spectral.istft(..., n_fft=1024, hop=768, length=length)",
         atol=1e-4, rtol=1e-3)
