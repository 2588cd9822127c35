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
# Then a last step that does not need the network: the **Wiener-like
# refinement**, which recomputes the masks of all sources from their estimated
# powers so that the estimates add up to the mixture.
#
# **You will write:** the stitching of overlapping patches (exercise 1),
# the restoring of the dropped Nyquist bin (exercise 2), the reconstruction of
# audio from a mask (exercise 3) and the Wiener-like refinement of several
# estimates (exercise 4). Then you score the U-Net, with and without the
# refinement, with museval next to the oracle masks of notebook 02, and answer
# four written questions.

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
# **Question 1.** Your stitching divides by the sum of the weights, and the
# weights are a Hann bump rather than ones. What would go wrong if you simply
# **added** the overlapping patch masks? If you averaged them with equal
# weights? Why trust a patch's centre more than its edges?
#
# ### BEGIN SOLUTION
# Adding without dividing counts each frame as often as patches cover it: with
# 50% overlap almost every frame gets the sum of two masks, up to 2, so the
# "mask" leaves [0, 1] and the estimate is louder than the mixture there, with a
# step wherever the number of covering patches changes (the first and last
# half-patch). Dividing by the sum of the weights makes each frame a weighted
# *average*, so a mask stays a mask. With equal weights the average is right
# inside the overlap but jumps where a patch starts or stops counting: an edge
# frame of one patch weighs as much as a centre frame of the next, and the
# seams of the left plot come back as smaller steps. The Hann bump makes each
# patch fade in and out, a cross-fade. A patch's edge frames are the least
# reliable: the convolutions see zero padding there instead of music, so the
# network has half the context it had in the middle; a smooth weight that is
# small at the edges (but > 0, so the division never fails) lets the
# neighbouring patch, for which those frames are central, decide.
# ### END SOLUTION

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
# ### Exercise 2 · Restoring the dropped bin
#
# The network saw 512 bins; the inverse STFT needs all 513. The network has no
# mask for the Nyquist bin (4096 Hz) that `crop_bins` dropped, so we give it the
# mask of its neighbour, the bin just below: a mask changes slowly across
# frequency. Append a copy of the top bin along the frequency axis (the
# second-to-last one) with `torch.cat`. Write it for any number of bins and any
# leading axes: `(..., bins, frames) -> (..., bins + 1, frames)`.

# %%
def full_band_mask(mask):
    """The mask with its Nyquist bin back: a copy of the bin just below it.

    Args:
        mask: real ``(..., bins, frames)``, e.g. 512 bins.

    Returns:
        ``(..., bins + 1, frames)``: bin ``bins`` equals bin ``bins - 1``.
    """
    ### BEGIN SOLUTION
    return torch.cat([mask, mask[..., -1:, :]], dim=-2)
    ### END SOLUTION


# %%
full_band_mask = check("04.full_band_mask", full_band_mask)

# %% [markdown]
# How much does that one bin carry? The cell below prints the share of the
# mixture's energy that sits in the Nyquist bin, next to the share of an
# average bin.

# %%
mixture_power = X.abs() ** 2                     # (1, 513, frames)
print(f"mask {tuple(mask.shape)} -> {tuple(full_band_mask(mask).shape)}")
print(f"Nyquist bin: {float(mixture_power[..., -1, :].sum() / mixture_power.sum()):.2e} of the mixture's energy; "
      f"an average bin: {1 / mixture_power.shape[-2]:.2e}")

# %% [markdown]
# **Question 2.** There are three obvious ways to fill the Nyquist bin's mask:
# 0, 1, or the neighbour's value. Using the energy printed above, say why the
# choice barely changes the score here. Why can the bin still not simply be
# left out, and when would the choice start to matter?
#
# ### BEGIN SOLUTION
# The Nyquist bin carries a tiny share of the energy, orders of magnitude below
# an average bin: the resampler's anti-aliasing low-pass filter removes almost
# everything near 4096 Hz before the STFT, and music has little energy there
# anyway. Whatever mask it gets, the estimate changes by a negligible amount of
# energy, so SDR does not move. It cannot be left out because the inverse STFT
# of a 1024-sample frame needs n_fft / 2 + 1 = 513 bins (tpsep's `istft`
# refuses 512 and says to restore the bin); a zero bin is a valid choice but
# cuts whatever the mixture had there, 1 leaves all of it in the vocals
# estimate, the neighbour's value is the smoothest guess. It would matter with
# a short frame (few bins, each a larger share of the band), or at a rate where
# the Nyquist frequency falls inside the voice's band with real energy, e.g. a
# model working at a low rate on audio that was not low-passed.
# ### END SOLUTION

# %% [markdown]
# ### Exercise 3 · Reconstruction
#
# Now the whole way back: restore the Nyquist bin with your `full_band_mask`,
# multiply the complex mixture STFT by the mask (a real mask keeps the
# **mixture phase**), and invert with
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
    return spectral.istft(full_band_mask(mask) * mixture_stft, n_fft=1024, hop=768, length=length)
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
# ## 3. The Wiener-like refinement
#
# A separator gives one estimate per source. Nothing forces the estimates to
# **add up to the mixture**: a model with one output per source (or two models,
# one per source) can leave a bit of the mixture in no estimate, or put it in
# two. A classic post-processing step borrowed from the Wiener filter fixes that
# without any training: take the estimated magnitudes $|\hat S_1|, \dots,
# |\hat S_J|$ of **all** sources, turn their powers into soft masks and apply
# them to the mixture STFT $X$:
#
# $$M_j = \frac{|\hat S_j|^p}{\sum_{k=1}^{J} |\hat S_k|^p}, \qquad \hat S_j^{\text{refined}} = M_j\, X .$$
#
# The masks add up to one in every bin, so the refined estimates add up to $X$;
# each keeps the mixture phase. With $p = 2$ the masks are ratios of (estimated)
# powers, as in a Wiener filter; a larger $p$ gives the louder source more of
# each bin.
#
# ### Exercise 4 · Refining several estimates
#
# `source_mags` stacks the $J$ magnitude estimates on a first axis:
# `(J, ..., freq, frames)`; `mixture_stft` is `(..., freq, frames)`. Return the
# $J$ refined complex estimates, `(J, ..., freq, frames)`. Careful with the
# denominator: it is the sum of the powers, not the power of the sum. And a bin
# where every estimate is 0 (digital silence) must give 0, not 0 / 0 = NaN:
# divide by the sum clamped from below, `.clamp_min(1e-30)`.

# %%
def wiener_refine_sources(source_mags, mixture_stft, power=2.0):
    """Soft masks |S_j|^p / sum_k |S_k|^p from the estimates, applied to the mixture STFT.

    Args:
        source_mags: real ``(J, ..., freq, frames)``, magnitude estimates of the J sources (>= 0).
        mixture_stft: complex ``(..., freq, frames)``.
        power: the exponent p (2: a ratio of powers).

    Returns:
        complex ``(J, ..., freq, frames)``; the J refined estimates add up to ``mixture_stft``.
    """
    ### BEGIN SOLUTION
    powers = source_mags ** power                                            # |S_j|^p
    soft_masks = powers / powers.sum(dim=0, keepdim=True).clamp_min(1e-30)  # sum over the J sources
    return soft_masks * mixture_stft                                         # complex: the mixture phase
    ### END SOLUTION


# %%
wiener_refine_sources = check("04.wiener_refine_sources", wiener_refine_sources)

# %% [markdown]
# The U-Net gives the vocals' magnitude $M|X|$ and, implicitly, the
# accompaniment's, $(1 - M)|X|$. Refine the pair for a few powers $p$:

# %%
full_mask = full_band_mask(mask)                                              # (1, 513, frames)
source_mags = torch.stack([full_mask * X.abs(), (1 - full_mask) * X.abs()])   # (2, 1, 513, frames)
POWERS = (1.0, 2.0, 4.0)
refined = {p: wiener_refine_sources(source_mags, X, power=p) for p in POWERS}


def same_stft(a, b):
    """Equal up to float32 rounding, relative to the loudest bin of the mixture."""
    return torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(X.abs().max()))


print("refined estimates add up to the mixture:", all(same_stft(refined[p].sum(0), X) for p in POWERS))
print("p = 1 gives back the U-Net's own estimate:", same_stft(refined[1.0][0], full_mask * X))
print("p = 2 is the two-source masks.wiener_refine (UNetSeparator with refine=True):",
      same_stft(refined[2.0][0], full_band_mask(masks.wiener_refine(mask)) * X))

fig, ax = plt.subplots(figsize=(7, 2.6))
bins = np.linspace(0, 1, 41)
for p in POWERS:
    effective_mask = refined[p][0].abs() / (X.abs() + 1e-10)   # |M_vocals X| / |X|
    ax.hist(effective_mask[..., :512, :].flatten().numpy(), bins=bins, histtype="step", lw=1.5, label=f"p = {p:g}")
ax.set_yscale("log")
ax.set_xlabel("vocals mask value")
ax.set_ylabel("time-frequency bins")
ax.legend()
fig.tight_layout()
plt.show()

# %% [markdown]
# The histogram shows the sharpening: the larger $p$, the fewer bins keep a
# mask value near 0.5. What it does to the scores of this song (museval at the
# track's rate, median over 1 s frames; the accompaniment is `mixture - vocals`
# as before):

# %%
# NBVAL_IGNORE_OUTPUT
# (the U-Net's scores come from a training run, whose last digits depend on the CPU's floating-point kernels)
refined_frames = []
for p in POWERS:
    vocals_low_p = spectral.istft(refined[p][0], n_fft=COURSE.n_fft, hop=COURSE.hop,
                                  length=low.shape[-1]).numpy()[..., :low_length]
    vocals_p = separate.fit_length(audio.resample(vocals_low_p, COURSE.rate, track.rate), mixture.shape[-1])
    refined_frames.append(evaluation.score_track({"vocals": vocals_p, "accompaniment": mixture - vocals_p}, track,
                                                 method=f"p = {p:g}" + (" (the U-Net)" if p == 1 else "")))
print(f"{track.name}: median over 1 s frames")
metrics.track_table(pd.concat(refined_frames, ignore_index=True)).droplevel("track").round(1)

# %% [markdown]
# **Question 3.** (3 points) Why is it desirable that the estimates add up to
# the mixture? Why does $p = 1$ leave the U-Net's estimates exactly as they
# were, and what does $p = 2$ or $4$ change in the table above: which of SIR
# and SAR goes up, which goes down, and why? When would the refinement change
# the estimates even with $p = 1$?
#
# ### BEGIN SOLUTION
# If the estimates add up to the mixture, nothing of the mixture is lost or
# counted twice: remixing the stems gives the original back (karaoke, remixing
# and upmixing rely on that), and every bit of energy is assigned to some
# source, so errors of one estimate show up as the opposite error in another
# rather than as energy created from nothing. Here the U-Net's two estimates
# $M|X|$ and $(1 - M)|X|$ already add up; with $p = 1$ the new mask is
# $M|X| / (M|X| + (1 - M)|X|) = M$, the U-Net's own, so nothing changes. With
# $p = 2$ it becomes $M^2 / (M^2 + (1 - M)^2)$: values above 0.5 move towards
# 1 and values below towards 0 (the histogram). Bins the model thinks are
# mostly accompaniment are cut harder, so less accompaniment leaks into the
# vocals: SIR goes up. But bins where the voice is weaker than the rest are cut
# too, and the voice loses part of its energy there, which BSS Eval counts as
# artefacts: SAR goes down (and SDR, which weighs both, often goes down a
# little when SAR is the weaker of the two; the table says which happened
# here). With $p = 1$ the refinement changes the estimates when they do not
# add up to the mixture in the first place: models with an independent output
# per source (one sigmoid mask per stem, or two separate models), or estimates
# that are not masks of the mixture at all, such as magnitudes regressed
# directly.
# ### END SOLUTION
#
# ## 4. Scores, next to the oracles
#
# Every separator is a function `separator(track) -> {source: estimate}`, so the
# U-Net is scored by exactly the code that scored the oracle masks in notebook
# 02 (museval, BSS Eval v4: median over 1 s frames, then over tracks), on the
# same first test tracks. Four rows:
#
# - **U-Net**: our model; **U-Net + Wiener-like**: the refinement of
#   section 3 with $p = 2$, i.e. the mask sharpened as
#   `M² / (M² + (1 - M)²)` (`UNetSeparator` with `refine=True` calls
#   `masks.wiener_refine`), now on every test track;
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
# **Question 4.** The table has two gaps: between **U-Net** and
# **IRM, 8192 Hz**, and between **IRM, 8192 Hz** and **IRM (notebook 02)**.
# What does each gap measure? Which one could more training, more data or a
# bigger network close, and which one only a change of the setting? Does the
# **U-Net + Wiener-like** row tell you anything about which gap it works on?
#
# ### BEGIN SOLUTION
# Both IRM rows use the true sources, so no learning is involved in them. The
# gap between the U-Net and the IRM at 8192 Hz (same rate, n_fft, hop and
# mask-times-mixture-phase reconstruction) is what the model has not learned:
# it is the part a longer run, more and more varied data, or a better network
# can close (`benchmarks/unet_long_run.py` trains longer and closes part of
# it); the U-Net here is a short CPU run on a few minutes of music. The gap
# between the two IRM rows is the price of the setting itself, paid even by a
# perfect mask: at 8192 Hz nothing above 4096 Hz can be separated (the vocals
# estimate has no highs and the accompaniment keeps all the voice's highs), and
# a hop of 768 samples (94 ms) blurs fast changes, where notebook 02's oracle
# used the track's rate and a hop of 256. No training closes it; only a higher
# rate, a shorter hop or a different front end (a model at the track's rate,
# complex masks) can. The Wiener-like refinement does not learn anything
# either: it reshapes the model's own mask, trading SAR for SIR, so it moves
# along the model's gap (sometimes a little closer, sometimes a little
# further in SDR) and cannot cross the setting's gap.
# ### END SOLUTION
#
# ## 5. A real recording
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
# ## 6. What to remember
#
# - Overlap the patches and cross-fade the masks with weights that fade at the
#   patch edges, then divide by the sum of the weights: no seams every 128
#   frames, and a mask stays in [0, 1].
# - The dropped bin must come back before the inverse STFT (the neighbour's
#   mask is as good a guess as any: it carries almost no energy); the mixture
#   phase is reused as is (a real mask cannot fix the phase, see notebook 06
#   for complex masks).
# - The Wiener-like refinement recomputes all the masks from the estimated
#   powers: the estimates then add up to the mixture, and $p > 1$ trades
#   artefacts for less interference. It needs no training.
# - Score at the track's rate with the same code as the oracles, so that
#   the numbers can sit in one table, and read the model's gap to the oracle in
#   its own setting separately from the setting's gap to the best oracle.
