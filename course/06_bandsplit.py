# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TP 06 · Band-split models: full-band music, complex masks, and the lab where training turns to NaN
#
# The U-Net of notebooks 03-04 works at 8192 Hz: it never hears anything above
# 4096 Hz, and it keeps the mixture's phase. The models that lead music
# separation today work on the full band, cut the spectrum into **bands of
# unequal width**, and predict a **complex mask** per band, which can correct
# the phase as well as the level. The family starts with BSRNN (Luo & Yu,
# *Music Source Separation with Band-split RNN*, IEEE/ACM TASLP 2023) and goes
# on with BS-RoFormer (Lu et al., ICASSP 2024), Mel-RoFormer and light versions
# such as Moises-Light. They share three blocks:
#
# 1. **band split**: each band of the complex spectrogram is normalised and
#    mapped by its own linear layer to `N` features;
# 2. **band-sequence modelling**: a sequence model runs across time within each
#    band, then across bands within each frame (a BLSTM in BSRNN, a transformer
#    with rotary position embeddings in BS-RoFormer);
# 3. **mask estimation**: a small MLP per band gives that band's complex mask.
#
# We train a small BSRNN on the default chorales at 16 kHz, full band, for the
# vocals, and compare it with the U-Net. Then comes the **stability lab**: the
# ways such a training run ends with a loss of 0 or NaN, which fixes treat the
# cause, and which only hide it.
#
# **You will write:** `band_bins` (the band layout), `split_bands` (the band
# split), `apply_complex_mask` and `ideal_raw_mask` (four exercises, each
# followed by a check), and answer four written questions.

# %%
import math
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import tpsep
from tpsep import data, diagnose, evaluation, masks, metrics, separate, spectral
from tpsep.audio import player
from tpsep.checkpoints import load_separator
from tpsep.exercises import check
from tpsep.losses import bandsplit_loss, si_snr
from tpsep.models import bandsplit
from tpsep.models.bandsplit import COURSE, BandSplit
from tpsep.train import TrainConfig, fit

DATASET = "music"  # or the path of a MUSDB18 / MUSDB18-HQ folder
TARGET = "vocals"
# Step budgets sized for a 2-core laptop CPU (the notebook runs in about 4 minutes there).
# On a GPU, or with time to spare, multiply TRAIN_STEPS by 10 or more.
TRAIN_STEPS, TRAIN_LR, BATCH_SIZE, SECONDS = 200, 1e-3, 4, 1.0
N_EVAL_TRACKS = 3   # `tpsep evaluate CHECKPOINT --split test` scores them all
UNET_CHECKPOINT = ".runs/unet03/best.pt"  # written by notebook 03
tpsep.setup_notebook(seed=0)
torch.set_num_threads(1)  # one thread: the same printed numbers on every machine

# %%
train_tracks = data.load_dataset(DATASET, split="train")
valid_tracks = data.load_dataset(DATASET, split="valid")
test_tracks = data.load_dataset(DATASET, split="test")
RATE = train_tracks[0].rate
for split, tracks in (("train", train_tracks), ("valid", valid_tracks), ("test", test_tracks)):
    print(f"{split:5s}: {len(tracks):2d} tracks, {sum(t.duration for t in tracks) / 60:4.1f} minutes")
print("rate:", RATE, "Hz; sources:", list(train_tracks[0].source_names))

# %% [markdown]
# ## 1. What the U-Net never hears
#
# A voice has its fundamental and most of its energy below 4 kHz, but its
# consonants, breaths and upper harmonics go higher, and they are what makes it
# sound present. Here is the average spectrum of the test vocals, with the
# U-Net's limit drawn in.

# %%
def average_power_spectrum(tracks, stem, n_fft=1024):
    """Mean power per bin of a stem over every frame of the tracks (first channel)."""
    powers = [spectral.stft(t.stem(stem)[0], n_fft=n_fft, hop=n_fft // 4).abs().numpy() ** 2 for t in tracks]
    return np.concatenate(powers, axis=-1).mean(-1)


frequencies = np.arange(513) * RATE / 1024
vocals_power = average_power_spectrum(test_tracks, TARGET)
above = frequencies > 4096
print(f"vocal energy above 4096 Hz: {100 * vocals_power[above].sum() / vocals_power.sum():.2f} % of the total")
print(f"bins above 4096 Hz at 16 kHz, n_fft 1024: {above.sum()} of {above.size}")
fig, ax = plt.subplots(figsize=(8, 3))
ax.semilogy(frequencies, vocals_power, label="vocals (test split)")
ax.axvline(4096, color="k", ls="--", label="the U-Net's Nyquist frequency (8192 Hz / 2)")
ax.set(xlabel="frequency (Hz)", ylabel="mean power", title="What a full-band model gets to work with")
ax.legend()
plt.show()

# %% [markdown]
# Little energy, many bins: more than half the spectrum holds a small share of
# the voice's energy. Giving every bin the same attention, as a U-Net does,
# spends most of the model on the top of the spectrum. A band-split model
# spends it where the detail is.
#
# ## 2. Bands of unequal width
#
# BSRNN's layout for vocals ("v7" in the paper) has bands 100 Hz wide up to
# 1 kHz, 250 Hz up to 4 kHz, 500 Hz up to 8 kHz, 1 kHz up to 16 kHz, then wider.
# The layout is given **in Hz**: the same layout then holds at 16 kHz with a
# 1024-point STFT and at 44.1 kHz with a 2048-point one. The model converts it
# to bins, and the bands must cover every one of the `n_fft // 2 + 1` bins
# exactly once: no bin forgotten (the Nyquist bin is the classic one), no bin
# in two bands.
#
# **Exercise.** Write `band_bins(edges_hz, rate, n_fft)`. `edges_hz` lists the
# boundaries *between* bands, increasing; the first band starts at 0 Hz and the
# last one ends at Nyquist. A boundary at `f` Hz falls on bin
# `round(f * n_fft / rate)`. Return the list of band widths in bins.

# %%
def band_bins(edges_hz, rate, n_fft):
    """Band widths in bins.

    Args:
        edges_hz: increasing boundaries between bands, in Hz (K - 1 of them for K bands).
        rate: sample rate in Hz.
        n_fft: STFT size; the spectrogram has n_fft // 2 + 1 bins.

    Returns:
        list of K ints, each >= 1, summing to n_fft // 2 + 1.
    """
    ### BEGIN SOLUTION
    boundaries = [0] + [round(f * n_fft / rate) for f in edges_hz] + [n_fft // 2 + 1]
    return [high - low for low, high in zip(boundaries, boundaries[1:])]
    ### END SOLUTION


# %%
band_bins = check("06.band_bins", band_bins)

# %%
widths = band_bins(COURSE.band_edges_hz, RATE, COURSE.n_fft)
print(f"course layout at {RATE} Hz, n_fft {COURSE.n_fft}: K = {len(widths)} bands, {sum(widths)} bins")
print("widths:", widths)
paper_widths = band_bins(bandsplit.V7_VOCALS_EDGES_HZ, 44100, 2048)
print(f"BSRNN's v7 at 44.1 kHz, n_fft 2048: K = {len(paper_widths)} bands, {sum(paper_widths)} bins")

fig, ax = plt.subplots(figsize=(8, 2.5))
starts = np.cumsum([0] + widths[:-1]) * RATE / COURSE.n_fft
ax.bar(starts, np.array(widths) * RATE / COURSE.n_fft, width=np.array(widths) * RATE / COURSE.n_fft,
       align="edge", edgecolor="k", alpha=0.6)
ax.axvline(4096, color="k", ls="--")
ax.set(xlabel="frequency (Hz)", ylabel="band width (Hz)", title=f"The course's {len(widths)} bands at {RATE} Hz")
plt.show()

# %% [markdown]
# The model refuses a layout that does not fit. The v7 layout written for
# 44.1 kHz has edges up to 20 kHz, far above the 8 kHz Nyquist frequency of our
# audio: the error says so, and what to do.

# %%
try:
    BandSplit(replace(COURSE, band_edges_hz=bandsplit.V7_VOCALS_EDGES_HZ), verbose=False)
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# **Question 1.** The course layout gives the bands below 1 kHz about 100 Hz
# each, and those above 4 kHz 500 Hz or more. Why this way round, for a
# singing voice? What would you change for a bass guitar?
#
# ### BEGIN SOLUTION
# A voice's pitch and its first harmonics, which decide who sings which note,
# sit below 1 kHz, where neighbouring harmonics are 100-300 Hz apart: narrow
# bands keep them apart, so each band's features describe one harmonic. Above
# 4 kHz the voice is mostly noise-like (consonants, breath) with a smooth
# envelope, so one wide band per octave region loses little and saves
# features. A bass lives below 200-300 Hz: it would need even narrower bands at
# the bottom (or a longer STFT), and could share very wide bands above 1 kHz.
# ### END SOLUTION
#
# ## 3. The band split
#
# Each band of the complex spectrogram `X` (batch, channels, F, T) becomes, for
# every frame, a vector of `F_k × channels × 2` real numbers (real and imaginary
# parts), ordered (bin, channel, real/imaginary). The model then normalises
# that vector and maps it to `N` features with the band's own linear layer, so
# a 2-bin band and a 64-bin band both end up as `N` numbers per frame: a grid of
# `K` bands by `T` frames by `N` features.
#
# **Exercise.** Write `split_bands(X, widths)`. `torch.view_as_real` turns a
# complex tensor into a real one with a last axis of 2.

# %%
def split_bands(X, widths):
    """Cut a complex spectrogram into bands of real numbers per frame.

    Args:
        X: complex ``(batch, channels, F, T)``.
        widths: K band widths in bins, summing to F.

    Returns:
        list of K real tensors ``(batch, T, F_k * channels * 2)``, ordered (bin, channel, real/imaginary).
    """
    ### BEGIN SOLUTION
    parts = torch.view_as_real(X).permute(0, 3, 2, 1, 4)  # (batch, T, F, channels, 2)
    return [band.reshape(*band.shape[:2], -1) for band in parts.split(widths, dim=2)]
    ### END SOLUTION


# %%
split_bands = check("06.split_bands", split_bands)

# %% [markdown]
# Now the whole model, built from its config. The constructor prints its size;
# `parameter_counts` says where the parameters go.

# %%
tpsep.seed_everything(0)
model = BandSplit(COURSE)
print(model.parameter_counts())
example = test_tracks[0]
chunk = torch.from_numpy(example.mixture[:, 20 * RATE:21 * RATE])[None]  # one second, (1, 1, samples)
X = model.spectrogram(chunk)
bands = split_bands(X, model.widths)
print("spectrogram", tuple(X.shape), "->", len(bands), "bands, the first", tuple(bands[0].shape),
      "the last", tuple(bands[-1].shape))
print("band-split features Z:", tuple(model.band_split(X).shape), "(batch, K, T, N)")

# %% [markdown]
# ## 4. Band-sequence modelling, and the papers' sizes
#
# Each of the `L` layers runs a sequence model **across time** for each band
# (what happens next in this band), then **across bands** for each frame (how
# this frame's bands relate: a harmonic at 300 Hz implies one at 600 Hz), each
# with a norm and a residual connection. BSRNN uses BLSTMs; BS-RoFormer uses
# transformer layers whose attention rotates queries and keys by their position
# (RoPE), so that it knows how far apart two frames, or two bands, are.
#
# The papers' models are large. We count their parameters without allocating
# them (on PyTorch's `meta` device):

# %%
def size_of(config):
    with torch.device("meta"):
        return BandSplit(config, verbose=False).num_parameters()


sizes = pd.DataFrame([
    ("course BSRNN (this notebook)", "16 kHz mono", size_of(COURSE)),
    ("course BS-RoFormer", "16 kHz mono", size_of(replace(COURSE, sequence_model="roformer"))),
    ("BSRNN vocals (Luo & Yu 2023)", "44.1 kHz", size_of(bandsplit.PAPER_BSRNN_VOCALS)),
    ("BS-RoFormer, L = 6 (Lu et al. 2024)", "44.1 kHz stereo", size_of(bandsplit.PAPER_BS_ROFORMER)),
], columns=["model", "audio", "parameters"]).set_index("model")
sizes["parameters"] = (sizes["parameters"] / 1e6).round(2).astype(str) + "M"
sizes

# %% [markdown]
# ## 5. The complex mask
#
# For each band, the mask MLP outputs `F_k × channels × 2` numbers per frame,
# in the same (bin, channel, real/imaginary) order as the band-split input; the
# bands are concatenated in frequency order. These numbers are the real and
# imaginary parts of a complex mask `M`, and the source's spectrogram is the
# **complex product** `M · X`: it scales the mixture (as a ratio mask does) and
# rotates its phase (which a ratio mask cannot). Complex numbers exist only in
# float32 or float64 here: this step always runs in float32.
#
# **Exercise.** Write `apply_complex_mask(raw, X)`.

# %%
def apply_complex_mask(raw, X):
    """Apply one source's raw mask to the mixture spectrogram.

    Args:
        raw: real ``(batch, T, F * channels * 2)``, ordered (bin, channel, real/imaginary).
        X: complex ``(batch, channels, F, T)``.

    Returns:
        complex ``(batch, channels, F, T)``: the source's spectrogram.
    """
    ### BEGIN SOLUTION
    batch, frames, _ = raw.shape
    channels, bins = X.shape[1], X.shape[2]
    parts = raw.float().reshape(batch, frames, bins, channels, 2)
    mask = torch.view_as_complex(parts).permute(0, 3, 2, 1)  # (batch, channels, F, T)
    return mask * X
    ### END SOLUTION


# %%
apply_complex_mask = check("06.apply_complex_mask", apply_complex_mask)

# %% [markdown]
# ## 6. Training on the chorales, full band
#
# The recipe of `tpsep train bandsplit`: random 1-second chunks of the training
# tracks at 16 kHz, the vocals as the target, and BSRNN's loss, the L1 distance
# between the waveforms plus the L1 distance between the real and imaginary
# parts of their STFTs (`tpsep.losses.bandsplit_loss`). Before training, one
# check that costs nothing (section 8.1 shows why): the loss of the mixture as
# the estimate, and that of silence, must both be above zero.

# %%
OWN_STFT = ((COURSE.n_fft, COURSE.hop, COURSE.n_fft),)  # BSRNN's loss uses the model's own STFT


def loss_fn(model, batch):
    mixture, targets = batch  # (batch, 1, samples), (batch, 1 source, 1, samples)
    return bandsplit_loss(model(mixture), targets, resolutions=OWN_STFT)


tpsep.seed_everything(0)
train_set = data.ChunkDataset(train_tracks, SECONDS, sources=(TARGET,))
train_loader = torch.utils.data.DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=True, drop_last=True)
valid_loader = torch.utils.data.DataLoader(
    data.ChunkDataset(valid_tracks, SECONDS, sources=(TARGET,), chunks_per_epoch=32), batch_size=8)
mixtures, targets = next(iter(train_loader))
as_estimate = {"the mixture": mixtures[:, None], "silence": torch.zeros_like(targets)}
for name, estimate in as_estimate.items():
    print(f"loss of {name} as the estimate: {bandsplit_loss(estimate, targets, resolutions=OWN_STFT).item():.4f}")
assert all(bandsplit_loss(e, targets, resolutions=OWN_STFT) > 0 for e in as_estimate.values()), "a dead loss"

# %%
# NBVAL_IGNORE_OUTPUT
# (a training run: its last digits depend on the CPU's floating-point kernels)
tpsep.seed_everything(0)
model = BandSplit(COURSE)
# the checkpoints go to .runs/bandsplit06/, where notebook 08 finds them for its leaderboard
history = fit(model, loss_fn, train_loader, valid_loader,
              TrainConfig(max_steps=TRAIN_STEPS, lr=TRAIN_LR, grad_clip=5.0, log_every=25, progress=False,
                          out_dir=".runs/bandsplit06", tensorboard=False),
              extra={"model_name": "bandsplit", "model_config": vars(COURSE), "dataset": DATASET})
print(f"after {history.steps} steps: validation loss {history.valid_loss[-1]:.4f} "
      f"(the mixture as the estimate: {bandsplit_loss(mixtures[:, None], targets, resolutions=OWN_STFT).item():.4f} "
      "on a training batch)")
history.plot(smooth=10).set(ylabel="waveform L1 + STFT L1", title="BSRNN (course), vocals")
plt.show()

# %% [markdown]
# ## 7. Scores on the test split, beside the U-Net and the oracles
#
# museval's SDR on the first test tracks (median over 1-second frames, then over
# tracks), at the tracks' own 16 kHz, full band:
#
# - **band-split (this notebook)**: the model you just trained;
# - **U-Net (notebook 03)**: trained at 8192 Hz; `tpsep.separate` brings its
#   vocals back to 16 kHz, with nothing above 4096 Hz, and the accompaniment
#   is the mixture minus the vocals;
# - **IRM, 16 kHz full band**: the ideal ratio mask on the band-split model's
#   own STFT, the ceiling of any real-valued mask there;
# - **IRM, 8192 Hz**: the same oracle in the U-Net's setting, its ceiling.
#
# If notebook 03 has not been run here, the next cell trains its U-Net for 200
# steps (about a minute).

# %%
if not Path(UNET_CHECKPOINT).exists():
    from tpsep.models.unet import COURSE as UNET_COURSE, UNet, UNetSeparator
    from tpsep.recipes import DataSettings, unet_recipe

    tpsep.seed_everything(0)
    recipe = unet_recipe(UNetSeparator(UNET_COURSE), DataSettings(dataset=DATASET, patches_per_epoch=400))
    fit(recipe.model, recipe.loss_fn, recipe.train_loader, recipe.valid_loader,
        TrainConfig(max_steps=200, lr=1e-3, device="cpu", out_dir=str(Path(UNET_CHECKPOINT).parent), progress=False,
                    tensorboard=False),
        extra={"model_name": "unet", "model_config": UNET_COURSE.__dict__, "dataset": DATASET})
unet = load_separator(UNET_CHECKPOINT)

eval_tracks = test_tracks[:N_EVAL_TRACKS]
separators = {"band-split (this notebook)": separate.track_separator(model),
              "U-Net (notebook 03)": separate.track_separator(unet),
              "IRM, 16 kHz full band": masks.oracle_separator("irm", n_fft=1024, hop=256),
              "IRM, 8192 Hz": separate.oracle_at_model_rate}
frames = pd.concat([evaluation.evaluate(s, eval_tracks, targets=[TARGET, "accompaniment"], method=name)
                    for name, s in separators.items()], ignore_index=True)
table = metrics.summary_table(frames)

# %%
# NBVAL_IGNORE_OUTPUT
# (the trained rows depend on the CPU's floating-point kernels)
print(f"{len(eval_tracks)} test tracks; {table.attrs['aggregation']}")
table.round(1)

# %% [markdown]
# ### Above 4 kHz
#
# The SDR of the whole signal weighs every decibel of error by its energy, and
# the voice has little energy above 4 kHz. So we also score the band the U-Net
# cannot touch: the SNR of the vocals above 4096 Hz, after a high-pass filter
# of both the estimate and the reference. An estimate with nothing there scores
# 0 dB; a useful one scores above.

# %%
def high_band(x, cutoff=4096):
    """``x`` with every STFT bin at or below ``cutoff`` Hz set to zero."""
    X = spectral.stft(x, n_fft=1024, hop=256)
    X[..., torch.arange(513) * RATE / 1024 <= cutoff, :] = 0
    return spectral.istft(X, n_fft=1024, hop=256, length=x.shape[-1]).numpy()


def high_band_snr(estimate, reference):
    e, r = high_band(estimate), high_band(reference)
    return 10 * np.log10(np.sum(r ** 2) / np.sum((r - e) ** 2))


estimates = {name: separators[name](example)[TARGET]
             for name in ("band-split (this notebook)", "U-Net (notebook 03)", "IRM, 16 kHz full band")}
reference = example.stem(TARGET)

# %%
# NBVAL_IGNORE_OUTPUT
for name, estimate in estimates.items():
    print(f"{name:28s} vocals above 4096 Hz: SNR {high_band_snr(estimate, reference):5.1f} dB")

# %%
excerpt = slice(20 * RATE, 28 * RATE)
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), sharey=True)
for ax, (name, signal) in zip(axes, [("true vocals", reference), ("U-Net (notebook 03)", estimates["U-Net (notebook 03)"]),
                                     ("band-split", estimates["band-split (this notebook)"])]):
    S = spectral.stft(signal[0, excerpt], n_fft=1024, hop=256).abs().numpy()
    ax.imshow(20 * np.log10(S + 1e-5), origin="lower", aspect="auto", vmin=-80, vmax=0, cmap="magma",
              extent=[0, 8, 0, RATE / 2])
    ax.axhline(4096, color="w", ls="--", lw=0.8)
    ax.set(title=name, xlabel="time (s)")
axes[0].set_ylabel("frequency (Hz)")
plt.show()

# %%
for name, signal in [("mixture", example.mixture), ("U-Net vocals", estimates["U-Net (notebook 03)"]),
                     ("band-split vocals", estimates["band-split (this notebook)"])]:
    print(name)
    display(player(signal[:, excerpt], RATE))

# %% [markdown]
# Listen for the "s" and "t" of the words and the breath before a phrase. The
# U-Net's vocals stop at 4096 Hz by construction: its SNR above that is 0 dB,
# however long it trains. The band-split model's can rise above 0 dB, and the
# IRM row shows how far a mask on this STFT can go. After a few minutes on a
# laptop it is still far from there, and its overall SDR may trail the U-Net's.
# One reason is how much music each model hears per step:

# %%
from tpsep.models.unet import COURSE as UNET_COURSE

unet_seconds = 8 * UNET_COURSE.patch_frames * UNET_COURSE.hop / UNET_COURSE.rate  # notebook 03: batches of 8 patches
print(f"audio per training step: U-Net {unet_seconds:.0f} s (8 patches of {UNET_COURSE.patch_frames} frames), "
      f"band-split {BATCH_SIZE * SECONDS:.0f} s ({BATCH_SIZE} chunks of {SECONDS:g} s)")

# %% [markdown]
# The U-Net's step is cheap because it sees a low-resolution, real-valued
# picture of the music; the band-split model's is dear because its BLSTMs run
# over every frame of every band. `benchmarks/bandsplit_long_run.py` trains it
# longer and prints both models beside the oracles, on the whole test split.
#
# **Question 2.** Compare the two models in the SDR table and in the SNR above
# 4096 Hz. Can a model be behind on SDR and ahead above 4 kHz at the same time?
# Use the share of vocal energy above 4096 Hz printed in section 1. Which
# figure would you trust to choose a model for listeners, and which for a
# karaoke app that only needs the voice removed?
#
# ### BEGIN SOLUTION
# Yes. SDR weighs every error by its energy, and section 1 printed that only a
# small share of the voice's energy lies above 4096 Hz: a model can miss all of
# it and lose little SDR, or get it right and gain little. The high-band SNR
# isolates that band. For listeners, presence and intelligibility (the "s" and
# "t", the breath) live up there, so the high-band figure and listening count;
# for removing the voice, what matters is how much of the voice's energy is
# left in the accompaniment, which the overall SDR/SIR of the accompaniment
# measures, and a model that never touches the top band leaves the voice's
# top there.
# ### END SOLUTION
#
# ## 8. The stability lab
#
# A student trained a band-split model and the loss sat at 0, or became NaN.
# The fixes tried, in turn: slicing `torch.stft`'s output to a `freq_bins`
# constant, cropping a mask to the spectrogram's size, `torch.clamp` on
# spectrograms, activations and the output, Xavier initialisation with a tiny
# gain, gradient clipping, a lower learning rate with warm-up, and switching
# mixed precision off. Some fix a cause; others only hide it. We reproduce each
# failure on our model, one at a time, find its cause, and apply the real fix.
# The tool: `tpsep.diagnose.find_nonfinite(model, loss_fn, batch)`, which runs
# one forward and backward pass with hooks on every layer and names the first
# whose output, or whose gradient, is not finite, and the layers whose gradient
# is exactly zero.
#
# ### 8.1 A loss that is exactly 0
#
# Popular music-separation training code uses a *quantile-masked* loss: compute
# one loss per example of the batch, and drop the worst ones (those above the
# 90th percentile of the batch), so that a few bad examples don't dominate.
# Here it is, trained at batch size 1 with several of the report's "fixes":

# %%
def quantile_masked_loss(estimate, target, q=0.9):
    per_example = ((estimate - target) ** 2).mean(dim=tuple(range(1, estimate.dim())))
    threshold = torch.quantile(per_example.detach(), q)
    return (per_example * (per_example < threshold)).mean()


def quantile_loss_fn(model, batch):
    mixture, targets = batch
    return quantile_masked_loss(model(mixture), targets)


one_example = (mixtures[:1], targets[:1])
for what, lr, clip in (("lr 1e-3", 1e-3, None), ("lr 1e-5 + clipping at 1", 1e-5, 1.0)):
    tpsep.seed_everything(0)
    lab_model = BandSplit(COURSE, verbose=False)
    optimizer = torch.optim.Adam(lab_model.parameters(), lr=lr)
    losses = []
    for step in range(3):
        loss = quantile_loss_fn(lab_model, one_example)
        optimizer.zero_grad()
        loss.backward()
        if clip:
            torch.nn.utils.clip_grad_norm_(lab_model.parameters(), clip)
        optimizer.step()
        losses.append(loss.item())
    print(f"{what:24s}: losses {losses}")

# %% [markdown]
# Nothing moves, whatever the learning rate. With one example, that example *is*
# the 90th percentile, and `loss < threshold` is false: every example is
# dropped, the loss is exactly 0, and so is its gradient. Initialisation,
# clipping, learning rate and mixed precision cannot change that. The
# diagnosis:

# %%
print(diagnose.find_nonfinite(BandSplit(COURSE, verbose=False), quantile_loss_fn, one_example))

# %% [markdown]
# The assertion that catches it, at step 0 of any run: the loss of the mixture
# as the estimate, and that of an all-zero estimate, must both be above 0 (we
# ran it in section 6). Here it fails:

# %%
for name, estimate in {"the mixture": one_example[0][:, None], "silence": torch.zeros_like(one_example[1])}.items():
    print(f"quantile-masked loss of {name} as the estimate: {quantile_masked_loss(estimate, one_example[1]).item()}")

# %% [markdown]
# The fix: keep every example when the batch is too small to have outliers (or
# compare with `<=`), or use a plain mean.
#
# ### 8.2 NaN from digital silence
#
# The chorales have rests: some 1-second chunks of the vocals are exactly zero.
# `ChunkDataset` draws them again by default (`min_level_db=-60`); with the
# filter off, we can count them.

# %%
unfiltered = data.ChunkDataset(train_tracks, SECONDS, sources=(TARGET,), min_level_db=None, chunks_per_epoch=400)
silent = [i for i in range(len(unfiltered)) if unfiltered[i][1].abs().max() == 0]
print(f"{len(silent)} of {len(unfiltered)} one-second vocal chunks are digital silence "
      f"({100 * len(silent) / len(unfiltered):.1f} %)")
silent_batch = torch.utils.data.default_collate([unfiltered[i] for i in (0, 1, silent[0], 3)])

# %% [markdown]
# A batch of four with one silent target. Three ways of writing a loss that are
# fine on every other chunk:

# %%
def snr_loss(model, batch):  # an SNR-type loss, written by hand
    mixture, targets = batch
    estimate = model(mixture)
    return -(10 * torch.log10(targets.pow(2).sum(-1) / (targets - estimate).pow(2).sum(-1))).mean()


def normalised_l1_loss(model, batch):  # each example scaled by its standard deviation first
    mixture, targets = batch
    estimate = model(mixture)
    return ((estimate / targets.std(-1, keepdim=True)) - (targets / targets.std(-1, keepdim=True))).abs().mean()


def log_magnitude_loss(model, batch):  # magnitudes by hand, in the log domain
    mixture, targets = batch
    estimate = model(mixture)
    E, S = (torch.stft(x.reshape(-1, x.shape[-1]), 1024, 256, window=torch.hann_window(1024), return_complex=True)
            for x in (estimate, targets))
    magnitude = lambda Z: torch.sqrt(Z.real ** 2 + Z.imag ** 2)
    return (torch.log(magnitude(E)) - torch.log(magnitude(S))).abs().mean()


for fn in (snr_loss, normalised_l1_loss, log_magnitude_loss):
    tpsep.seed_everything(0)
    lab_model = BandSplit(COURSE, verbose=False)
    loss = fn(lab_model, silent_batch)
    loss.backward()
    grads_finite = all(torch.isfinite(p.grad).all() for p in lab_model.parameters() if p.grad is not None)
    print(f"{fn.__name__:20s}: loss {loss.item():.4g}, gradients finite: {grads_finite}")

# %% [markdown]
# The loss is NaN or infinite before the first update, so a lower learning rate,
# a warm-up or gradient clipping cannot help: clipping a NaN gradient leaves
# NaN. `find_nonfinite` points at the cause:

# %%
print(diagnose.find_nonfinite(BandSplit(COURSE, verbose=False), normalised_l1_loss, silent_batch))

# %% [markdown]
# The real fixes: an `eps` where a norm divides or a log is taken
# (`x.std() + eps`, `log(|S| + eps)`); `Z.abs()` for a complex magnitude, whose
# gradient at 0 PyTorch defines as 0 where `sqrt(re² + im²)` gives `0 / 0`; and
# the silent-chunk filter, on by default. The magnitude at an exact zero, by hand
# and with `.abs()`:

# %%
for name, magnitude in (("sqrt(re² + im²)", lambda z: torch.sqrt(z.real ** 2 + z.imag ** 2)),
                        ("z.abs()", lambda z: z.abs())):
    z = torch.zeros(3, dtype=torch.complex64, requires_grad=True)
    magnitude(z).sum().backward()
    print(f"{name:16s}: gradient at 0 = {z.grad.tolist()}")

# %% [markdown]
# `bandsplit_loss`, written with these in mind, stays finite on the batch with
# the silent target:

# %%
tpsep.seed_everything(0)
lab_model = BandSplit(COURSE, verbose=False)
loss = loss_fn(lab_model, silent_batch)
loss.backward()
print(f"bandsplit_loss on the batch with a silent target: {loss.item():.4f}, gradients finite:",
      all(torch.isfinite(p.grad).all().item() for p in lab_model.parameters()))

# %% [markdown]
# **Question 3.** Why can a lower learning rate, a warm-up or gradient clipping
# not fix the NaN of a silent chunk, when they often do fix a loss that
# explodes after some steps? What does `find_nonfinite` print that tells the
# two cases apart?
#
# ### BEGIN SOLUTION
# Here the loss is already NaN (or infinite) on the first batch, before any
# update: it comes from the data and the formula (0 / 0, log 0), not from the
# weights. The learning rate, warm-up and clipping only change the updates,
# and clipping a NaN gradient leaves NaN. An explosion after some steps comes
# from weights that grew too large, which smaller or clipped updates prevent.
# `find_nonfinite` says "every module output is finite but the loss is nan:
# loss_fn made it": the model is healthy, the loss function is not. In an
# explosion it would name a layer whose output (or weight) is not finite.
# ### END SOLUTION
#
# ### 8.3 Mask-layout plumbing
#
# Between the mask MLPs and the complex product sits a reshape, and a reshape
# with the wrong layout raises no error: the numbers just land in the wrong
# places. The test is to pass the **ideal complex mask** `S / X` through the
# same plumbing and score the result: done right, it gives the source back up to
# rounding, far above 100 dB.
#
# **Exercise.** Write `ideal_raw_mask(S, X)`: the ideal complex mask `S / X`
# laid out as the mask MLPs output it, `(batch, T, F × channels × 2)` ordered
# (bin, channel, real/imaginary). It is the exact inverse of the reshape in
# your `apply_complex_mask`.

# %%
def ideal_raw_mask(S, X):
    """Args: S, X complex ``(batch, channels, F, T)``. Returns: real ``(batch, T, F * channels * 2)``."""
    ### BEGIN SOLUTION
    parts = torch.view_as_real(S / X)                                   # (batch, channels, F, T, 2)
    return parts.permute(0, 3, 2, 1, 4).reshape(S.shape[0], S.shape[-1], -1)
    ### END SOLUTION


# %%
ideal_raw_mask = check("06.ideal_raw_mask", ideal_raw_mask)

# %%
lab_model = BandSplit(COURSE, verbose=False)
segment = slice(10 * RATE, 14 * RATE)
mix = torch.from_numpy(example.mixture[:, segment])[None]             # (1, 1, samples)
vocals = torch.from_numpy(example.stem(TARGET)[:, segment])[None]     # (1, 1, samples)
X, S = lab_model.spectrogram(mix), lab_model.spectrogram(vocals)      # (1, 1, F, T) each
raw = ideal_raw_mask(S, X)                                            # the ideal mask, as the MLPs would output it
bins, frames = X.shape[-2], X.shape[-1]


def score(Y):
    estimate = lab_model.waveforms(Y[:, None], length=mix.shape[-1])[:, 0]
    return metrics.si_sdr(estimate[0, 0], vocals[0, 0]).item()


wrong_ways = {
    "right: interleaved, transposed, complex product": apply_complex_mask(raw, X),
    "view without the transpose": torch.view_as_complex(raw.reshape(1, 1, bins, frames, 2).contiguous()) * X,
    "real and imaginary as halves": torch.complex(*raw.reshape(1, frames, 2, bins).permute(2, 0, 3, 1)[:, :, None]) * X,
    "elementwise product of real parts": torch.complex(
        raw.reshape(1, frames, bins, 2)[..., 0].transpose(1, 2)[:, None] * X.real,
        raw.reshape(1, frames, bins, 2)[..., 1].transpose(1, 2)[:, None] * X.imag),
}
print(f"the mixture itself: {metrics.si_sdr(mix[0, 0], vocals[0, 0]).item():7.1f} dB")
for name, Y in wrong_ways.items():
    print(f"{name:50s}: {score(Y):7.1f} dB")

# %% [markdown]
# Only the right plumbing passes. Run this test on any mask head you write,
# before the first training step. Cropping, the other silent fix of the report,
# is the same kind of bug: a mask and a spectrogram of different sizes must
# be an error, never a crop.
#
# ### 8.4 The STFT bin mismatch
#
# The report's code sliced `torch.stft`'s output to a `FREQ_BINS = 512`
# constant, the U-Net's convention of notebook 02, while the band widths were
# computed for `n_fft // 2 + 1 = 513` bins. The band layout must cover the bins
# that exist: our model checks it and names the mismatch instead of cropping.

# %%
FREQ_BINS = 512
print("bins of the STFT:", X.shape[-2], "; band widths add up to", sum(lab_model.widths))
try:
    lab_model.raw_masks(X[..., :FREQ_BINS, :])
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# The fix is to derive every size from `n_fft` (`n_fft // 2 + 1`, `band_bins`),
# never from a constant, and to pass the model the full STFT.
#
# ### 8.5 Low precision
#
# On a GPU, training runs under `torch.autocast(dtype=torch.bfloat16)`: matrix
# products in bf16, twice as fast. But bf16 has no complex type, and its 8-bit
# mantissa cannot hold the statistics of a quiet band. A mask head that builds
# its complex mask from the real and imaginary parts it computed fails, because
# under autocast those parts are bf16:

# %%
head = torch.nn.Linear(8, 2 * bins)  # a toy mask head: real and imaginary parts of each bin
features = torch.randn(1, frames, 8)
with torch.autocast("cpu", dtype=torch.bfloat16):
    real, imaginary = head(features).chunk(2, dim=-1)
    print("the mask head's outputs under autocast:", real.dtype)
    try:
        torch.complex(real, imaginary)
    except RuntimeError as error:
        print("RuntimeError:", error)
    mask = torch.complex(real.float(), imaginary.float())  # the fix: a cast to float32 where it matters
    print("with the cast:", mask.dtype, tuple(mask.shape))

# %% [markdown]
# Switching mixed precision off makes the error go away, and the speed with it.
# The real fix is the cast where it matters: the STFT, the norms, the complex
# mask and its product run in float32 (`.float()` inside
# `torch.autocast(..., enabled=False)`), everything else in bf16. Our model
# does that; its output under bf16 autocast stays finite and close to float32:

# %%
tpsep.seed_everything(0)
lab_model = BandSplit(COURSE, verbose=False)
with torch.no_grad():
    full = lab_model(mix)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = lab_model(mix)
print(f"bf16 autocast: output {mixed.dtype}, finite: {torch.isfinite(mixed).all().item()}, "
      f"SNR against float32: {10 * math.log10(full.pow(2).sum() / (full - mixed).pow(2).sum()):.0f} dB")

# %% [markdown]
# ### 8.6 Why clamping is not a fix
#
# Give the mask's output layers a bad initialisation (Xavier with a gain of
# 1000): the masks are huge, the estimates too, and the loss explodes. The
# tempting fix is a clamp on the output audio to [-1, 1]. The loss becomes
# finite, but a clamp passes no gradient where it is active.

# %%
class ClampedBandSplit(BandSplit):
    def forward(self, mixture):
        return super().forward(mixture).clamp(-1, 1)  # the "fix"


def badly_initialised(model):
    for mlp in model.mask_estimators[0].mlps:
        torch.nn.init.xavier_uniform_(mlp[-2].weight, gain=1000.0)
    return model


def mask_gradient_norm(model, batch):
    model.zero_grad()
    loss = loss_fn(model, batch)
    loss.backward()
    norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.mask_estimators.parameters()]))
    return loss.item(), norm.item()


batch = (mixtures, targets)
for name, build in (("bad init", BandSplit), ("bad init + clamp", ClampedBandSplit)):
    tpsep.seed_everything(0)
    lab_model = badly_initialised(build(COURSE, verbose=False))
    loss, norm = mask_gradient_norm(lab_model, batch)
    print(f"{name:18s}: loss {loss:9.3f}, gradient norm of the mask estimators {norm:9.3f}")
with torch.no_grad():
    estimate = BandSplit.forward(lab_model, mixtures)
print(f"estimate samples beyond ±1, where the clamp passes no gradient: "
      f"{100 * (estimate.abs() > 1).float().mean().item():.1f} %")

# %% [markdown]
# Twelve training steps of each, beside the real fix (the default
# initialisation, no clamp):

# %%
# NBVAL_IGNORE_OUTPUT
def short_run(model, steps=12):
    optimizer = torch.optim.Adam(model.parameters(), lr=TRAIN_LR)
    losses = []
    for step, batch in zip(range(steps), train_loader):
        loss = loss_fn(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(round(loss.item(), 2))
    return losses


runs = {}
for name, build in (("bad init + clamp", lambda: badly_initialised(ClampedBandSplit(COURSE, verbose=False))),
                    ("default init, no clamp", lambda: BandSplit(COURSE, verbose=False))):
    tpsep.seed_everything(0)
    runs[name] = short_run(build())
    print(f"{name:24s}: {runs[name]}")
print(f"(the mixture as the estimate: {bandsplit_loss(mixtures[:, None], targets, resolutions=OWN_STFT).item():.2f})")

# %% [markdown]
# The clamp hides the explosion and stops the learning: almost every output
# sample sits at ±1, the loss stays far above that of the mixture itself, and
# it barely moves. The real fix is the initialisation (PyTorch's default, or
# any that keeps the masks of order 1 at the start), after which no clamp is
# needed.
#
# **Question 4.** Of the fixes in the student's report (slicing to a
# `freq_bins` constant, cropping the mask, clamps, a tiny Xavier gain,
# clipping, a lower learning rate with warm-up, mixed precision off), which
# treat a cause, which hide a symptom, and which cost something? Say, for each,
# which section of this lab shows it.
#
# ### BEGIN SOLUTION
# Hide a symptom: the clamps (8.6: finite loss, no gradient where they act,
# no learning), cropping a mask or slicing to a constant (8.3, 8.4: the shapes
# agree and the numbers land in the wrong bins, or the Nyquist bin is lost),
# and clipping or a lower learning rate against NaN from silence (8.2: the loss
# is NaN before any update). Treat a cause: an eps, `.abs()` and the silent-chunk
# filter (8.2), deriving sizes from `n_fft` (8.4), a cast to float32 where
# complex numbers and norms are computed (8.5), a sane initialisation (8.6:
# PyTorch's default; a tiny gain is a fix only if the outputs were too large,
# and it slows the start). Cost something: switching mixed precision off
# (8.5) removes the error and the speed with it; a lower learning rate with
# warm-up slows every run. None of them helps a loss that is exactly 0 (8.1),
# which only the step-0 check catches.
# ### END SOLUTION
#
# ## 9. What to remember
#
# - A band-split model spends its features where the source has detail, and
#   works on the full band: what a U-Net at 8192 Hz cannot hear, it can
#   separate.
# - Its complex mask corrects the phase; complex arithmetic stays in float32.
# - Before training: the layout covers every bin once; the ideal mask through
#   the mask plumbing scores > 100 dB; the loss of the mixture and of silence are
#   both > 0.
# - When the loss is NaN or stuck: `find_nonfinite` names the layer. Fix the
#   cause (an eps, `.abs()`, the silent-chunk filter, a cast to float32, the
#   initialisation), not the symptom (a clamp, a lower learning rate).
#
# From the command line: `tpsep train bandsplit --minutes 30 --out runs/bsrnn`
# then `tpsep evaluate runs/bsrnn/best.pt --split test`, and
# `python benchmarks/bandsplit_long_run.py --unet notebooks/.runs/unet03/best.pt` for the
# long comparison.
