# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TP 04 · From masks back to audio
#
# The U-Net of notebook 03 turns a 512 × 128 magnitude patch into a mask. A song
# is longer than a patch, has 513 bins, a phase, and its own sample rate. This
# notebook goes the whole way from a song to separated audio files you can hear
# and score:
#
# 1. resample to 8192 Hz, STFT (n_fft 1024, hop 768), drop the Nyquist bin;
# 2. cut the magnitude into patches of 128 frames that **overlap** by half;
# 3. mask every patch with the network and **stitch** the masks back together;
# 4. restore the dropped bin, multiply the mixture STFT by the mask (the
#    **mixture phase** is kept) and invert the STFT;
# 5. resample back to the track's rate and write WAV files.
#
# **You will write:** the stitching (exercise 1) and the reconstruction
# (exercise 2). Then you score the result with museval next to the oracle masks
# of notebook 02.

# %%
from dataclasses import asdict, replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

import tpsep
from tpsep import audio, data, evaluation, masks, metrics, separate, spectral
from tpsep.audio import player
from tpsep.checkpoints import load_separator
from tpsep.exercises import check
from tpsep.losses import l1_mask_loss
from tpsep.models.unet import COURSE, UNet, UNetSeparator
from tpsep.train import TrainConfig, fit

tpsep.setup_notebook(seed=0)
DATASET = "music"   # or a path to real data, e.g. a MUSDB18-HQ folder

# %% [markdown]
# ## 1. A trained U-Net
#
# Notebook 03 trained one and saved `.runs/unet03/best.pt`. So that this notebook
# also runs on its own, the cell below trains the very same model (same data,
# seed and number of steps) when that checkpoint is missing. For better
# results, train longer from the command line and point `CHECKPOINT` at it:
# `tpsep train unet --minutes 20 --out runs/unet` then `CHECKPOINT = "runs/unet/best.pt"`.

# %%
# NBVAL_IGNORE_OUTPUT
# (what this cell prints depends on whether notebook 03 ran first; the model is the same either way)
CHECKPOINT = ".runs/unet03/best.pt"

if Path(CHECKPOINT).exists():
    print(f"loaded {CHECKPOINT}")
else:
    print(f"{CHECKPOINT} not found: training notebook 03's U-Net here")
    tpsep.seed_everything(0)
    train_set = data.SpectrogramPatchDataset(data.load_dataset(DATASET, split="train"), target="vocals",
                                             patches_per_epoch=400, seed=0)
    valid_set = data.SpectrogramPatchDataset(data.load_dataset(DATASET, split="valid"), target="vocals",
                                             random=False)

    def loss_fn(model, batch):
        mixture_mag, target_mag = batch
        return l1_mask_loss(model(mixture_mag), mixture_mag, target_mag)

    tpsep.seed_everything(0)
    model = UNet(COURSE)
    extra = {"model_name": "unet", "model_config": asdict(COURSE), "dataset": str(DATASET)}
    fit(model, loss_fn, DataLoader(train_set, batch_size=8, shuffle=True, drop_last=True),
        DataLoader(valid_set, batch_size=8),
        TrainConfig(max_steps=200, lr=1e-3, device="cpu", out_dir=".runs/unet03", progress=False,
                    tensorboard=False), extra=extra)
separator = load_separator(CHECKPOINT)   # the best validation checkpoint, as notebook 03 left it
model = separator.unet                   # the U-Net itself; the separator wraps it with its front end (section 2)
print(separator.config)

# %% [markdown]
# ## 2. One song, step by step
#
# A test song the network has never seen:

# %%
test_tracks = data.load_dataset(DATASET, split="test")
track = test_tracks[0]
mixture = track.mixture                         # (channels, samples) at the track's rate
print(f"{track.name}: {track.duration:.1f} s, {track.rate} Hz, {track.channels} channel(s)")

low = audio.resample(mixture, track.rate, COURSE.rate)
low_length = low.shape[-1]
low = np.pad(low, [(0, 0), (0, -low_length % COURSE.hop)])   # whole hops: the ISTFT returns every sample
X = spectral.stft(torch.from_numpy(low), n_fft=COURSE.n_fft, hop=COURSE.hop)   # (channels, 513, frames)
mixture_mag = spectral.crop_bins(X.abs())                                          # (channels, 512, frames)
print(f"at {COURSE.rate} Hz: {low.shape[-1]} samples; STFT {tuple(X.shape)}; network input {tuple(mixture_mag.shape)}")

# %% [markdown]
# ### Patches
#
# `spectral.make_patches` cuts the `(512, frames)` magnitude into patches of 128
# frames every 64 frames, zero-padding the end so that every frame is covered:

# %%
patches = spectral.make_patches(mixture_mag[0], patch_frames=128, hop_frames=64)
with torch.no_grad():
    patch_masks = model(patches)
print(f"{patches.shape[0]} patches {tuple(patches.shape[1:])} -> {patch_masks.shape[0]} masks")

# %% [markdown]
# ### Exercise 1 · Stitching
#
# Patch `i` covers frames `i * hop_frames` to `i * hop_frames + patch_frames`.
# Where patches overlap, take the **weighted average**, with the weights
# `spectral.patch_weights(patch_frames)` (a Hann bump: the network is least
# sure at a patch's edges, where it saw the least context). Concretely:
# accumulate `weights * patch` in an output array and `weights` in a
# normalisation array, divide, and keep the first `total_frames` frames.

# %%
def stitch_patches(patches, hop_frames, total_frames):
    """Put overlapping patches back in place.

    Args:
        patches: ``(n_patches, freq, patch_frames)``; patch ``i`` starts at frame ``i * hop_frames``.
        hop_frames: step between patch starts.
        total_frames: number of frames to return.

    Returns:
        ``(freq, total_frames)``: each frame the weighted average of the patches covering it.
    """
    ### BEGIN SOLUTION
    n_patches, freq, patch_frames = patches.shape
    weights = spectral.patch_weights(patch_frames).to(patches.dtype)
    length = (n_patches - 1) * hop_frames + patch_frames
    out = torch.zeros(freq, length, dtype=patches.dtype)
    norm = torch.zeros(length, dtype=patches.dtype)
    for i in range(n_patches):
        start = i * hop_frames
        out[:, start:start + patch_frames] += weights * patches[i]
        norm[start:start + patch_frames] += weights
    return (out / norm)[:, :total_frames]
    ### END SOLUTION


# %%
stitch_patches = check("04.stitch_patches", stitch_patches)

# %%
mask = stitch_patches(patch_masks, 64, mixture_mag.shape[-1])[None]   # (1, 512, frames)
no_overlap = spectral.make_patches(mixture_mag[0], 128, 128)
with torch.no_grad():
    mask_no_overlap = spectral.stitch_patches(model(no_overlap), 128, mixture_mag.shape[-1])
print(f"mask {tuple(mask.shape)}: one value in [0, 1] per bin and frame of the whole song")

fig, axes = plt.subplots(1, 2, figsize=(11, 2.6), sharey=True)
seconds = COURSE.hop / COURSE.rate
for ax, (name, m) in zip(axes, {"no overlap: seams every 128 frames": mask_no_overlap,
                                "50% overlap, cross-faded": mask[0]}.items()):
    ax.plot(np.arange(m.shape[-1]) * seconds, m[40:120].mean(0), lw=1)  # bins 40-120: ~320-960 Hz
    for edge in range(128, m.shape[-1], 128):
        ax.axvline(edge * seconds, color="grey", ls=":", lw=0.8)
    ax.set_title(name)
    ax.set_xlabel("time (s)")
axes[0].set_ylabel("mean mask, 320-960 Hz")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### The spectrograms: mixture, mask, estimate

# %%
vocals_low = audio.resample(track.stem("vocals"), track.rate, COURSE.rate)
vocals_low = np.pad(vocals_low, [(0, 0), (0, low.shape[-1] - vocals_low.shape[-1])])
vocals_mag = spectral.crop_bins(spectral.stft(vocals_low, n_fft=COURSE.n_fft, hop=COURSE.hop).abs())
panels = {"mixture": mixture_mag[0], "U-Net mask": mask[0], "estimate = mask x mixture": mask[0] * mixture_mag[0],
          "true vocals": vocals_mag[0]}
fig, axes = plt.subplots(1, 4, figsize=(15, 3), sharey=True)
reference = float(mixture_mag.max())
for ax, (name, values) in zip(axes, panels.items()):
    is_mask = name.endswith("mask")
    image = values if is_mask else spectral.to_db(values, ref=reference)
    ax.imshow(image, origin="lower", aspect="auto", cmap="magma", vmin=0 if is_mask else -80, vmax=1 if is_mask else 0,
              extent=[0, values.shape[-1] * seconds, 0, COURSE.rate / 2])
    ax.set_title(name)
    ax.set_xlabel("time (s)")
axes[0].set_ylabel("frequency (Hz)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### Exercise 2 · Reconstruction
#
# The network saw 512 bins; the inverse STFT needs 513. Give the Nyquist bin
# (4096 Hz) the mask of its neighbour, bin 511 (`spectral.full_band_mask` does
# exactly that, try writing it with `torch.cat`), multiply the complex mixture
# STFT by the mask (a real mask keeps the **mixture phase**), and invert with
# `spectral.istft(..., n_fft=1024, hop=768, length=length)`.

# %%
def reconstruct(mask, mixture_stft, length):
    """Audio from a 512-bin mask and the mixture STFT.

    Args:
        mask: ``(..., 512, frames)`` in [0, 1].
        mixture_stft: complex ``(..., 513, frames)``.
        length: number of samples to return.

    Returns:
        ``(..., length)`` waveform, at the STFT's rate (8192 Hz).
    """
    ### BEGIN SOLUTION
    full_mask = torch.cat([mask, mask[..., -1:, :]], dim=-2)
    return spectral.istft(full_mask * mixture_stft, n_fft=1024, hop=768, length=length)
    ### END SOLUTION


# %%
reconstruct = check("04.reconstruct", reconstruct)

# %%
vocals_estimate_low = reconstruct(mask, X, low.shape[-1]).numpy()[..., :low_length]   # drop the padding
vocals_estimate = audio.resample(vocals_estimate_low, COURSE.rate, track.rate)[..., : mixture.shape[-1]]
accompaniment_estimate = mixture - vocals_estimate   # at the track's rate: keeps the band above 4096 Hz
library = separate.separate(separator, mixture, track.rate)   # the same steps, for any separator and any audio
print("same as tpsep.separate.separate with the UNetSeparator:",
      np.allclose(library["vocals"], vocals_estimate, atol=1e-5))

# %% [markdown]
# ### Listen
#
# The estimate is band-limited to 4096 Hz (the model works at 8192 Hz); the
# accompaniment, computed at the track's rate as `mixture - vocals`, keeps the
# highs.

# %%
excerpt = slice(0, 8 * track.rate)  # 8 seconds keep the notebook light; play the whole arrays if you like
print("mixture")
display(player(mixture[..., excerpt], track.rate))
print("U-Net vocals")
display(player(vocals_estimate[..., excerpt], track.rate))
print("U-Net accompaniment")
display(player(accompaniment_estimate[..., excerpt], track.rate))
print("true vocals")
display(player(track.stem("vocals")[..., excerpt], track.rate))

# %%
written = separate.write_estimates({"vocals": vocals_estimate, "accompaniment": accompaniment_estimate},
                                   track.rate, Path(".runs") / "separated" / track.name, overwrite=True)
print("wrote", ", ".join(str(p) for p in written))

# %% [markdown]
# From the command line, the same for any audio file:
# `tpsep separate .runs/unet03/best.pt song.wav --out .runs/separated`.
#
# ## 3. Scores, next to the oracles
#
# Every separator is a function `separator(track) -> {source: estimate}`, so the
# U-Net is scored by exactly the code that scored the oracle masks in notebook
# 02 (museval, BSS Eval v4: median over 1 s frames, then over tracks), on the
# same first test tracks. Four rows:
#
# - **U-Net**: our model; **U-Net + Wiener-like**: its mask sharpened as
#   `M² / (M² + (1 - M)²)` (`masks.wiener_refine`), a power ratio as a
#   Wiener filter would use;
# - **IRM, 8192 Hz**: the ideal ratio mask in the U-Net's own setting (8192 Hz,
#   n_fft 1024, hop 768, accompaniment = mixture - vocals): the ceiling of any
#   model of this notebook;
# - **IRM (notebook 02)**: the oracle of notebook 02, at the track's rate,
#   n_fft 1024, hop 256.

# %%
N_EVAL_TRACKS = 3   # as in notebook 02; `tpsep evaluate CHECKPOINT --split test` scores them all
eval_tracks = test_tracks[:N_EVAL_TRACKS]
separators = {"U-Net": separator,
              "U-Net + Wiener-like": UNetSeparator(replace(COURSE, refine=True), unet=model),
              "IRM, 8192 Hz": separate.oracle_at_model_rate,
              "IRM (notebook 02)": masks.oracle_separator("irm", n_fft=1024, hop=256)}
frames = pd.concat([evaluation.evaluate(separator, eval_tracks, targets=["vocals", "accompaniment"], method=name)
                    for name, separator in separators.items()], ignore_index=True)
table = metrics.summary_table(frames)

# %%
# NBVAL_IGNORE_OUTPUT
# (the U-Net rows come from a training run, whose last digits depend on the CPU's floating-point kernels)
print(f"{len(eval_tracks)} test tracks; {table.attrs['aggregation']}")
table.round(1)

# %%
def sdr_bars(table):
    vocals = table.xs("vocals", level="target")
    fig, ax = plt.subplots(figsize=(7, 2.8))
    ax.barh(vocals.index[::-1], vocals["SDR"][::-1], color=["C2", "C2", "C0", "C0"])
    ax.set_xlabel("vocals SDR (dB)")
    ax.set_title("the U-Net (blue) and the oracle masks (green)")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    plt.show()


sdr_bars(table)

# %% [markdown]
# How to read it:
#
# - The distance between **U-Net** and **IRM, 8192 Hz** is what the model has
#   not learned yet: 200 training steps on a CPU, on a few minutes of music.
#   `benchmarks/unet_long_run.py` trains longer and closes part of that gap.
# - The distance between the two IRM rows is the price of the **setting**:
#   at 8192 Hz nothing above 4096 Hz can be separated (the vocals estimate has no
#   highs, and the accompaniment keeps all the voice's highs), and a hop of 768
#   samples (94 ms) blurs fast changes.
# - The Wiener-like sharpening usually trades some artefacts (SAR) for less
#   interference (SIR).
#
# ## 4. A real recording
#
# Everything so far ran on the course's chorales, whose singer and band are
# rendered by tpsep. What matters is whether the model separates a real song.
# The folder `shared/realdata` that sits beside the project on the developers'
# and CI's machines holds real solo singing over real instrument loops
# (vocadito singers over Sonic Pi loops) and a MUSDB18 excerpt. Their licenses
# forbid shipping them with tpsep, and no recording of singing with its separate
# accompaniment ships under one that allows it, so on your machine this section
# says so and moves on. With your own stems, point `REAL_FOLDER` at a folder of
# `<track>/mixture.wav, vocals.wav, ...`.

# %%
# NBVAL_IGNORE_OUTPUT
# (what it prints depends on whether the real recordings are on this machine)
REAL_FOLDER = next((parent / "shared" / "realdata" / "vocals-over-loops"
                    for parent in Path.cwd().resolve().parents
                    if (parent / "shared" / "realdata" / "vocals-over-loops").is_dir()), None)
if REAL_FOLDER is None:
    print("no real recordings on this machine: skipping this section")
else:
    real_tracks = data.load_dataset(str(REAL_FOLDER), split="all")
    real_separators = {"mixture": lambda t: {"vocals": t.mixture, "accompaniment": t.mixture},
                       "U-Net": separator, "IRM, 8192 Hz": separate.oracle_at_model_rate}
    real_frames = pd.concat([evaluation.evaluate(s, real_tracks, targets=["vocals", "accompaniment"], method=name)
                             for name, s in real_separators.items()], ignore_index=True)
    print(f"{len(real_tracks)} real tracks from {REAL_FOLDER.name}; {metrics.summary_table(real_frames).attrs['aggregation']}")
    display(metrics.summary_table(real_frames).round(1))
    real = real_tracks[0]
    real_vocals = separate.separate(separator, real.mixture, real.rate)["vocals"]
    print(f"{real.name}: mixture, then the U-Net's vocals")
    display(player(real.mixture, real.rate))
    display(player(real_vocals, real.rate))

# %% [markdown]
# Read the U-Net's row between the two others. Its distance from the
# mixture (doing nothing) is what the rendered chorales taught it about real
# singing; its distance to the ideal mask at 8192 Hz, the ceiling of this
# model, is what they did not. How far a model trained on the default data
# gets on real recordings, for a notebook-length and a longer run, is what
# `python benchmarks/transfer.py unet --steps 1200` measures.
#
# ## 5. What to remember
#
# - Overlap the patches and cross-fade the masks: no seams every 128 frames.
# - The dropped bin must come back before the inverse STFT; the mixture phase
#   is reused as is (a real mask cannot fix the phase, see notebook 06 for
#   complex masks).
# - Score at the track's rate with the same code as the oracles, so that
#   the numbers can sit in one table.
