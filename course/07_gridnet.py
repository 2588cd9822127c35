# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TP 07 · TF-GridNet: a grid of time and frequency, a per-sample report, and the lab where the scores are absurd
#
# TF-GridNet (Wang, Cornell, Choi, Lee, Kim & Watanabe, *TF-GridNet: Integrating
# Full- and Sub-Band Modeling for Speech Separation*, IEEE/ACM TASLP 2023) is the
# last model of the course. The paper reports about 23 dB SI-SDRi on
# wsj0-2mix, against 15.3 dB for Conv-TasNet. It reads the complex STFT of the
# mixture as a **grid** of frames × bins, with `D` numbers per cell, and refines
# it with `B` blocks of three modules:
#
# 1. **intra-frame**: within each frame, a BLSTM runs *across frequency*, over
#    groups of `I` neighbouring bins taken every `J` bins;
# 2. **sub-band**: within each bin, the same runs *across time*;
# 3. **full-band self-attention**: `L` heads attend from frame to frame, a frame
#    being described by all its bins (`E` numbers per bin for queries and keys).
#
# It predicts no mask: the output layer writes the real and imaginary parts of
# each speaker's STFT directly.
#
# This is also the notebook where you learn to **read results**. A per-sample
# report shows what an average hides, and the absurd-scores lab shows the
# numbers a broken pipeline produces, so that you recognise them.
#
# **You will write:** the unfolded BLSTM of the intra-frame and sub-band
# modules, one full-band attention step, the per-sample improvement and the lag
# between two signals (four exercises, each followed by a check), and answer
# four written questions.

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

import tpsep
from tpsep import audio, data, diagnose, masks, metrics, spectral
from tpsep.audio import player
from tpsep.checkpoints import load_separator, reference, reference_card
from tpsep.evaluation import enhancement_method, per_sample_summary, per_sample_table
from tpsep.exercises import check
from tpsep.losses import pit_si_snr_loss
from tpsep.models import gridnet
from tpsep.models.gridnet import TFGridNet
from tpsep.train import TrainConfig, fit

DATASET = "speech"  # or the path of a LibriMix / wsj0-2mix folder
# Step budgets sized for a 2-core laptop CPU (the notebook runs in about 4 minutes there).
# On a GPU, or with time to spare, multiply them by 10 or more.
PLATEAU_STEPS = 100
TRAIN_STEPS, TRAIN_LR = 200, 3e-3
ENHANCE_STEPS = 100
N_TEST = 30  # test mixtures in the tables; `tpsep evaluate --per-sample` scores them all
tpsep.setup_notebook(seed=0)
torch.set_num_threads(1)  # one thread: the same printed numbers on every machine

# %%
train_tracks = data.load_dataset(DATASET, split="train")
valid_tracks = data.load_dataset(DATASET, split="valid")
test_tracks = data.load_dataset(DATASET, split="test")[:N_TEST]
RATE = train_tracks[0].rate
SOURCES = list(train_tracks[0].source_names)
print(f"{len(train_tracks)} training mixtures, {len(test_tracks)} test mixtures here; rate {RATE} Hz; "
      f"sources {SOURCES}")

# %% [markdown]
# ## 1. The grid
#
# At 8 kHz with a 16 ms window and an 8 ms hop, the STFT has `F = 65` bins; a
# 1-second chunk has 126 frames. The input convolution turns the 2 numbers of
# each cell (real and imaginary part) into `D`: the blocks work on a tensor
# `(batch, T, F, D)`.

# %%
config = gridnet.COURSE
model = TFGridNet(config)
print(pd.Series(gridnet.parameter_breakdown(config)).to_string())
paper = gridnet.parameter_breakdown(gridnet.PAPER)["total"]
print(f"the paper's wsj0-2mix configuration (D 128, B 6, I 4, J 1, H 192, L 4, E 4): {paper / 1e6:.2f}M parameters")

# %% [markdown]
# The paper reports 14.4M for that configuration; counted module by module as
# above, and as the authors' own ESPnet code builds it, it has 16.05M (the note
# at the end of `tpsep/models/gridnet.py` says where we looked for the gap).
#
# ## 2. The unfolded BLSTM
#
# The intra-frame module sees each frame as a sequence of `F` bins (the sub-band
# module sees each bin as a sequence of `T` frames). Rather than one BLSTM step
# per bin, it groups `I` neighbouring bins, every `J` bins (`x.unfold`), so
# one BLSTM step reads `I × D` numbers. A transposed convolution with kernel
# `I` and stride `J` spreads each of the BLSTM's outputs back over the `I`
# positions it came from, adding where groups overlap.
#
# **Exercise.** Write the forward pass of `UnfoldedBLSTM`. Pad the end of the
# sequence so that the groups cover it exactly, `(padded - I) % J == 0`, and cut
# the output back to the input length.

# %%
class UnfoldedBLSTM(nn.Module):
    def __init__(self, D, I, J, H):  # noqa: E741
        super().__init__()
        self.I, self.J = I, J
        self.blstm = nn.LSTM(I * D, H, batch_first=True, bidirectional=True)
        self.fold_back = nn.ConvTranspose1d(2 * H, D, kernel_size=I, stride=J)

    def forward(self, x):
        """``(batch, length, D)`` -> ``(batch, length, D)``."""
        ### BEGIN SOLUTION
        batch, length, D = x.shape
        padded = self.I + int(np.ceil(max(length - self.I, 0) / self.J)) * self.J
        x = F.pad(x, (0, 0, 0, padded - length))
        groups = x.unfold(1, self.I, self.J)                                  # (batch, groups, D, I)
        groups = groups.transpose(-1, -2).reshape(batch, -1, self.I * D)     # (batch, groups, I * D)
        hidden, _ = self.blstm(groups)                                        # (batch, groups, 2H)
        y = self.fold_back(hidden.transpose(1, 2))                            # (batch, D, padded)
        return y[..., :length].transpose(1, 2)
        ### END SOLUTION


# %%
UnfoldedBLSTM = check("07.unfolded_blstm", UnfoldedBLSTM)

# %% [markdown]
# ## 3. Full-band attention
#
# For head `l`, a frame's query and key are all its bins' `E` numbers, flattened
# into one vector of `F × E`; its value is its bins' `D / L` numbers. Each frame
# attends to every frame: weights `softmax(q kᵀ / sqrt(F E))` over the frames,
# and the output is the weighted sum of the values. Because a frame is compared
# with another through all its frequencies at once, this is "full band": it
# lets the model follow a speaker from one moment to another.
#
# **Exercise.** Write `full_band_attention(q, k, v)` for all heads at once.

# %%
def full_band_attention(q, k, v):
    """One full-band attention step.

    Args:
        q, k: ``(batch, L, T, F, E)``.
        v: ``(batch, L, T, F, V)``.

    Returns:
        ``(batch, T, F, L * V)``: the heads' outputs stacked on the last axis.
    """
    ### BEGIN SOLUTION
    batch, L, T, freqs, _ = v.shape
    q, k, values = q.flatten(3), k.flatten(3), v.flatten(3)
    weights = (q @ k.transpose(-1, -2) / np.sqrt(q.shape[-1])).softmax(dim=-1)  # (batch, L, T, T)
    heads = (weights @ values).view(batch, L, T, freqs, -1)
    return heads.permute(0, 2, 3, 1, 4).reshape(batch, T, freqs, -1)
    ### END SOLUTION


# %%
full_band_attention = check("07.full_band_attention", full_band_attention)

# %% [markdown]
# ## 4. The plateau where both outputs are the mixture
#
# TF-GridNet divides the mixture by its standard deviation, and its first
# steps find an easy minimum of the PIT SI-SNR loss: **both outputs equal the
# mixture**. Each then scores the input SI-SNR, about 0 dB, against its speaker.
# A tiny model (D 8, B 1) at a learning rate of 1e-3 can stay there for hundreds
# of steps. The signature: the loss sits near 0, and each output is nearly the
# mixture (its SI-SDR against the mixture is high).

# %%
def pit_loss_fn(model, batch):
    mixture, sources = batch  # (batch, 1, samples), (batch, C, 1, samples)
    return pit_si_snr_loss(model(mixture), sources)


def likeness_to_mixture(model, tracks):
    """Mean SI-SDR (dB) of each output against the mixture itself: high means 'output = mixture'."""
    scores = []
    with torch.no_grad():
        for track in tracks:
            mixture = torch.from_numpy(track.mixture)[None]
            outputs = model(mixture)[0, :, 0]
            scores.append(metrics.si_sdr(outputs, mixture[0].expand_as(outputs)).mean().item())
    return float(np.mean(scores))


tpsep.seed_everything(0)
train_loader = torch.utils.data.DataLoader(data.ChunkDataset(train_tracks, seconds=1.0), batch_size=4,
                                           shuffle=True, drop_last=True)
valid_loader = torch.utils.data.DataLoader(data.ChunkDataset(valid_tracks, seconds=1.0, chunks_per_epoch=32),
                                           batch_size=16)
tiny = TFGridNet(gridnet.TINY)

# %%
# NBVAL_IGNORE_OUTPUT
# (a training run: its last digits depend on the CPU's floating-point kernels)
tiny_history = fit(tiny, pit_loss_fn, train_loader, None,
                   TrainConfig(max_steps=PLATEAU_STEPS, lr=1e-3, grad_clip=5.0, log_every=10, progress=False))
print(f"tiny model after {tiny_history.steps} steps at lr 1e-3: loss {np.mean(tiny_history.train_loss[-10:]):.2f}; "
      f"its outputs score {likeness_to_mixture(tiny, test_tracks[:5]):.1f} dB against the mixture itself")

# %% [markdown]
# Leaving the plateau takes a push: a larger learning rate, a larger model,
# more steps. A plateau is not a bug, but you must recognise it: *a loss near 0
# with outputs that equal the input* is this plateau, not a broken pipeline.
#
# **Question 1.** Why is "both outputs are the mixture" such an easy place for
# PIT SI-SNR training to reach, and such a hard one to leave? Think of what
# each output scores there, and of what a small change of one output does to
# the loss.
#
# ### BEGIN SOLUTION
# Copying the input is the simplest function a network with residual paths can
# compute, and it already scores the input SI-SNR (about 0 dB) against each
# speaker: from a random start, that is a large improvement, reached fast.
# There, the two outputs are identical, so PIT cannot tell which speaker each
# one should follow: a change that moves an output towards one speaker moves
# it away from the other, and the best permutation flips with small changes,
# so the gradients of the two assignments largely cancel. Leaving requires a
# step large enough to break the symmetry (a larger learning rate) or many
# small steps that accumulate.
# ### END SOLUTION
#
# ## 5. Training
#
# The course model (D 16, B 2, H 32) with the course's trainer: random
# 1-second chunks, batches of 4, the PIT SI-SNR loss, and a learning rate three
# times larger. Watch the mean loss of each block of 50 steps: it leaves 0 dB
# slowly, and the outputs stop being copies of the mixture.

# %%
# NBVAL_IGNORE_OUTPUT
tpsep.seed_everything(0)
model = TFGridNet(gridnet.COURSE)
# the checkpoints go to .runs/gridnet07/, where notebook 08 finds them for its leaderboard
history = fit(model, pit_loss_fn, train_loader, valid_loader,
              TrainConfig(max_steps=TRAIN_STEPS, lr=TRAIN_LR, grad_clip=5.0, log_every=10, progress=False,
                          out_dir=".runs/gridnet07", tensorboard=False),
              extra={"model_name": "gridnet", "model_config": vars(gridnet.COURSE), "dataset": DATASET})
losses = np.array(history.train_loss)
print("mean loss per 50 steps:", [round(float(losses[i:i + 50].mean()), 2) for i in range(0, len(losses), 50)])
print(f"validation SI-SNR after {history.steps} steps: {-history.valid_loss[-1]:.2f} dB; outputs against the "
      f"mixture: {likeness_to_mixture(model, test_tracks[:5]):.1f} dB")
history.plot(smooth=10).set(ylabel="loss = -SI-SNR (dB)", title="TF-GridNet (course)")
plt.show()

# %% [markdown]
# ## 6. A per-sample report
#
# An average hides which mixtures fail. The per-sample table has one row per
# test mixture: the **input** score (the mixture itself taken as the estimate
# of each speaker), the **output** score, the **improvement** (SI-SDRi), the
# length, and the pair of voices.
#
# **Exercise.** Write `per_sample_improvement(estimates, references, mixture)`
# for a batch: the input SI-SDR, the output SI-SDR and the improvement of each
# item, each the mean over its sources.

# %%
def per_sample_improvement(estimates, references, mixture):
    """Args: estimates, references ``(batch, sources, samples)`` (estimates in the references'
    order), mixture ``(batch, samples)``. Returns: dict of ``(batch,)`` tensors "input", "output",
    "improvement" (dB)."""
    ### BEGIN SOLUTION
    output = metrics.si_sdr(estimates, references).mean(-1)
    input_ = metrics.si_sdr(mixture[:, None].expand_as(references), references).mean(-1)
    return {"input": input_, "output": output, "improvement": output - input_}
    ### END SOLUTION


# %%
per_sample_improvement = check("07.per_sample_improvement", per_sample_improvement)

# %% [markdown]
# `tpsep.evaluation.per_sample_table` does the same for any separator and any
# set of tracks, matching the outputs to the speakers by the best permutation
# (`tpsep evaluate CHECKPOINT --per-sample table.csv` writes it). Beside our
# model: the same TF-GridNet trained longer, and Conv-TasNet (notebook 05),
# both shipped with tpsep and trained with the same batches of 4 one-second
# chunks, and the ideal ratio mask on a 32 ms STFT. Their cards say how long
# each trained:

# %%
for name in ("gridnet-speech-b4x1s", "convtasnet-speech-b4x1s"):
    card = reference_card(name)
    print(f"{name}: {card['steps']} steps, {card['training_minutes']} min on {card['machine'].split(',')[0]}")

# %%
# NBVAL_IGNORE_OUTPUT
# (scores of a trained model)
separators = {"TF-GridNet (this notebook)": model,
              "TF-GridNet (reference)": load_separator(reference("gridnet-speech-b4x1s")),
              "Conv-TasNet (reference)": load_separator(reference("convtasnet-speech-b4x1s")),
              "IRM (STFT 32 ms)": masks.oracle_separator("irm", n_fft=256, hop=64)}
tables = {name: per_sample_table(s, test_tracks, method=name) for name, s in separators.items()}
table = tables["TF-GridNet (this notebook)"]
table.head()

# %%
# NBVAL_IGNORE_OUTPUT
summary = pd.DataFrame({name: t["improvement"] for name, t in tables.items()})
by_pair = summary.groupby(table["pair"]).mean().T
by_pair.insert(0, "all", summary.mean())
print(f"SI-SDRi (dB) on {len(test_tracks)} test mixtures, mean, overall and by pair of voices:")
by_pair.round(2)

# %% [markdown]
# Compare the two TF-GridNet rows: the same model, trained for minutes or for
# longer. The paper's ranking (TF-GridNet ahead of Conv-TasNet, both far
# ahead of the IRM on wsj0-2mix) comes from far longer training on the 30
# hours of wsj0-2mix; read the IRM row as the distance a laptop budget leaves.

# %%
# NBVAL_IGNORE_OUTPUT
per_sample_summary(table, by="pair")

# %% [markdown]
# The best and the worst mixtures for our model, with what the model made of
# them. Listen to the worst: two voices of the same sex are the hard case, and
# a model that swaps speakers in the middle of a mixture is punished hard by
# SI-SDR.

# %%
def show_item(track, estimates, title):
    """Spectrograms of the mixture, the two speakers and the two estimates (in the model's order)."""
    panels = [("mixture", track.mixture[0])] + [(s, track.stem(s)[0]) for s in SOURCES]
    panels += [(f"estimate {i + 1}", e[0]) for i, e in enumerate(estimates)]
    fig, axes = plt.subplots(1, len(panels), figsize=(13, 2.6), sharey=True)
    for ax, (name, signal) in zip(axes, panels):
        S = spectral.stft(signal, n_fft=256, hop=64).abs().numpy()
        ax.imshow(20 * np.log10(S + 1e-5), origin="lower", aspect="auto", vmin=-70, vmax=10, cmap="magma",
                  extent=[0, len(signal) / RATE, 0, RATE / 2])
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("time (s)")
    axes[0].set_ylabel("frequency (Hz)")
    fig.suptitle(title)
    plt.show()


for label, name in (("best", table["improvement"].idxmax()), ("worst", table["improvement"].idxmin())):
    track = next(t for t in test_tracks if t.name == name)
    with torch.no_grad():
        estimates = model(torch.from_numpy(track.mixture)[None])[0].numpy()  # (C, 1, samples)
    row = table.loc[name]
    show_item(track, estimates, f"{label}: {name} ({row['pair']}), SI-SDRi {row['improvement']:.1f} dB")
    for i, e in enumerate(estimates):
        display(player(e, RATE))

# %% [markdown]
# **Question 2.** Read the table by pair of voices for the three methods. Which
# pairs are hardest for the trained models, is it the same for the IRM, and
# why would two voices of the same sex be harder to separate without a mask
# oracle?
#
# ### BEGIN SOLUTION
# For trained models the same-sex pairs (FF, MM) are usually the hardest: two
# voices of the same sex have fundamental frequencies and formants in the same
# ranges, so their harmonics overlap in the same bins and their timbres are
# alike; the model must use finer cues (exact pitch tracks, speaker identity
# over time), and it may swap the speakers in the middle of a mixture, which
# SI-SDR punishes hard. The IRM knows the sources, so pitch similarity matters
# less to it: its scores vary much less between pairs. (On 30 mixtures, with
# only a handful of FF and MM pairs, small differences are noise: check the
# counts in the per-sample summary.)
# ### END SOLUTION
#
# ## 7. The absurd-scores lab
#
# A real report, on TF-GridNetV2 trained for speech enhancement:
#
# - the validation "SI-SNR" was logged as a *positive* loss of 32-34 dB;
# - the noisy input scored -36 dB SI-SNR against the clean reference, the
#   enhanced output -35 dB;
# - improvements ranged from -38 to +43 dB;
# - the learning rate had decayed 8,000-fold, to 6e-8;
# - the best checkpoint was from epoch 100 of 1,496.
#
# SI-SDR is blind to scale, and a sign flip costs nothing (the projection
# takes it back). So an input at -36 dB means the input and the reference are
# nearly **uncorrelated**: they are not the same recording, or not aligned. The
# model is not the problem; the pipeline is. We break ours in the ways that
# produce such numbers, and let `tpsep.diagnose.check_pipeline` find each one.

# %%
# NBVAL_IGNORE_OUTPUT
# (scores of a trained model, or random noise drawn after training)
lab_tracks = test_tracks[:10]


def broken_copy(tracks, change):
    """The same mixtures, with references made by change(track, source) -> array."""
    return [data.memory_track(t.name, RATE, t.mixture, {s: change(t, s) for s in SOURCES}, meta=t.meta)
            for t in tracks]


def delayed(samples):
    return lambda t, s: np.pad(t.stem(s), ((0, 0), (samples, 0)))[:, :t.frames]


def from_the_next_item(t, s):
    following = lab_tracks[(lab_tracks.index(t) + 1) % len(lab_tracks)]
    return np.resize(following.stem(s), t.stem(s).shape)


def at_16k_read_as_8k(t, s):
    return audio.resample(t.stem(s), RATE, 2 * RATE)[:, :t.frames]


broken = {"as it should be": lab_tracks,
          "reference 1 ms late": broken_copy(lab_tracks, delayed(RATE // 1000)),
          "reference 32 ms late": broken_copy(lab_tracks, delayed(32 * RATE // 1000)),
          "reference from the next item": broken_copy(lab_tracks, from_the_next_item),
          "16 kHz reference read at 8 kHz": broken_copy(lab_tracks, at_16k_read_as_8k)}
scores = {name: per_sample_table(model, tracks, method=name) for name, tracks in broken.items()}
pd.DataFrame({name: {"input (dB)": t["input"].mean(), "output (dB)": t["output"].mean(),
                     "improvement: worst (dB)": t["improvement"].min(), "best (dB)": t["improvement"].max()}
              for name, t in scores.items()}).T.round(1)

# %% [markdown]
# The report's symptoms, reproduced: inputs far below 0 dB, outputs as bad, and
# improvements spread both ways. None of this is the model.
#
# A lag is found by cross-correlation: slide the reference against the mixture,
# and the shift where they are most alike is the lag.
#
# **Exercise.** Write `find_lag(mixture, reference, max_lag)`: how many samples
# the reference is late (negative: early), searched within `±max_lag`. Take
# the shift of the largest *absolute* correlation (a polarity flip is still
# the same signal). `np.correlate(reference, mixture, "full")` gives every
# shift; its middle entry, at index `len(mixture) - 1`, is shift 0.

# %%
def find_lag(mixture, reference, max_lag):
    """Args: mixture, reference ``(samples,)`` numpy arrays; max_lag in samples. Returns: an int."""
    ### BEGIN SOLUTION
    correlation = np.correlate(reference, mixture, "full")
    shifts = np.arange(-max_lag, max_lag + 1)
    return int(shifts[np.argmax(np.abs(correlation[len(mixture) - 1 + shifts]))])
    ### END SOLUTION


# %%
find_lag = check("07.find_lag", find_lag)
late = broken["reference 32 ms late"][0]
print(f"{late.name}: s1 is {find_lag(late.mixture[0], late.stem('s1')[0], max_lag=RATE // 10)} samples late "
      f"(32 ms at {RATE} Hz is {32 * RATE // 1000} samples)")

# %% [markdown]
# `check_pipeline` runs this and the other checks on every track (no model
# needed), and names the cause:

# %%
for name in ("reference 32 ms late", "16 kHz reference read at 8 kHz"):
    print(f"--- {name}")
    print(diagnose.check_pipeline(broken[name]).report())

# %% [markdown]
# One more way, without any file: a batch of estimates `(B, 1, T)` scored
# against references `(B, T)` by a hand-written SI-SDR, of the kind found in
# many training scripts. Broadcasting pairs every estimate with every
# reference; the mean over that `(B, B, T)` grid mixes right and wrong pairs.

# %%
# NBVAL_IGNORE_OUTPUT
# (scores of a trained model, or random noise drawn after training)
def handwritten_si_sdr(estimate, reference):
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference ** 2).sum(-1, keepdim=True)
    projection = scale * reference
    return 10 * torch.log10((projection ** 2).sum(-1) / ((estimate - projection) ** 2).sum(-1))


batch_mixture, batch_sources = next(iter(train_loader))            # (4, 1, samples), (4, 2, 1, samples)
speaker_1 = batch_sources[:, 0, 0]                                  # references (B, T)
noise = 0.1 * speaker_1.std(-1, keepdim=True) * torch.randn_like(speaker_1)
estimate_1 = (speaker_1 + noise)[:, None]                           # good estimates (20 dB), (B, 1, T)
print(f"(B, 1, T) against (B, T): {handwritten_si_sdr(estimate_1, speaker_1).mean().item():6.1f} dB, "
      f"over a grid of shape {tuple(handwritten_si_sdr(estimate_1, speaker_1).shape)}")
print(f"(B, T) against (B, T):    {handwritten_si_sdr(estimate_1[:, 0], speaker_1).mean().item():6.1f} dB")
try:
    metrics.si_sdr(estimate_1, speaker_1)  # tpsep's own metric refuses to broadcast
except ValueError as error:
    print("ValueError:", error)
print(diagnose.check_pipeline(mixture=batch_mixture[:, 0], references=speaker_1, estimates=estimate_1).report())

# %% [markdown]
# **Question 3.** A colleague shows you a validation input score of -36 dB on
# a speech enhancement set. Name three causes that produce it, and for each the
# evidence `check_pipeline` gives you to tell them apart. Why is retraining the
# model, or changing it, not a fix for any of them?
#
# ### BEGIN SOLUTION
# A reference shifted against its mixture (a padding, a hop or an STFT centre
# applied to one side): the lag finding, a clear non-zero lag and a score that
# becomes sane once aligned. A reference from another item (files paired by a
# wrong sort or index): the input score is broken with no lag found and a
# normal rolloff. A reference at another sample rate: the rolloff ratio near
# 1/2 or 2, and often lengths that differ by that factor. (A shape broadcast
# gives the broadcast finding before any score.) The input score does not
# involve the model at all, it is the mixture against its reference: no
# model, however trained, changes it.
# ### END SOLUTION
#
# ### The log: a loss of the wrong sign, and a learning rate that collapsed
#
# A run's log says as much as its scores. Two of the report's symptoms are in
# the log alone. A loss that is minus SI-SNR must be negative and fall; one
# logged with the wrong sign sits at +32 dB and "rises" as the model improves.
# And a learning rate cut by a plateau schedule at every stall, without a
# floor, ends 8,000 times smaller: the rest of the run changes nothing.

# %%
epochs = np.arange(1, 1497)
collapsing_lr = 5e-4 * 0.5 ** np.minimum(np.floor(np.maximum(epochs - 100, 0) / 100), 13)  # halved every 100 epochs
valid_si_snr = 32 + 2 * (1 - np.exp(-epochs / 60))  # the model improves: 32 -> 34 dB
bad_log = [{"step": 100 * int(e), "epoch": int(e), "lr": float(lr), "valid_loss": float(v)}  # +SI-SNR logged as loss
           for e, lr, v in zip(epochs, collapsing_lr, valid_si_snr)]
print(diagnose.check_pipeline(log=bad_log, loss_kind="si_snr").report())

# %% [markdown]
# The sign error explains the early "best" checkpoint too: when the logged loss
# is +SI-SNR, its lowest value is where the model was worst, and the trainer
# keeps that checkpoint.

# %%
cosine = TrainConfig(schedule="cosine", lr=5e-4, min_lr=5e-6, warmup_steps=5_000)
steps = np.arange(0, epochs[-1] * 100, 1000)
warm = np.minimum(1, steps / cosine.warmup_steps)
cosine_lr = cosine.min_lr + (cosine.lr - cosine.min_lr) * 0.5 * (1 + np.cos(np.pi * steps / steps[-1]))
fig, ax = plt.subplots(figsize=(8, 3))
ax.semilogy(epochs * 100, collapsing_lr, label="halved at every stall, no floor (the report)")
ax.semilogy(steps, warm * cosine_lr, label="warm-up + cosine to a floor (TrainConfig(schedule='cosine', min_lr=...))")
ax.set(xlabel="step", ylabel="learning rate")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# A sane schedule warms up, decays smoothly, and stops at a floor (here 1 % of
# the peak), so the last part of a long run still learns. The trainer's
# `plateau` schedule takes `min_lr` too.
#
# **Question 4.** In the report, the best checkpoint came from epoch 100 of
# 1,496. Give two explanations from this section, and for each the line of the
# log that would confirm it.
#
# ### BEGIN SOLUTION
# First, the sign: if the logged "loss" is +SI-SNR, the trainer keeps the
# checkpoint with the lowest value, that is the *worst* model, typically an
# early one; the log shows a positive validation loss that rises as training
# goes on (`check_pipeline` reports the sign finding). Second, the learning
# rate collapse: once the LR is thousands of times below its peak, later epochs
# hardly change the weights, so no later checkpoint can be better; the log's
# `lr` column shows the LR below 1/1000 of its peak from some step on, and the
# validation loss flat from there.
# ### END SOLUTION
#
# ## 8. Speech enhancement
#
# The same model, one output: a single LibriSpeech reader in noise (the
# `"enhance"` task of the speech set, LibriMix's `enh_single`), at an SNR drawn
# between -5 and 10 dB. The score is SI-SDRi against the noisy input, and the
# per-sample report breaks it down by SNR range. From the command line:
# `tpsep train gridnet --task enhance --option C=1`.

# %%
enhance_train = data.load_dataset(DATASET, split="train", task="enhance")
enhance_test = data.load_dataset(DATASET, split="test", task="enhance")[:N_TEST]
snrs = np.array([t.meta["snr_db"] for t in enhance_test])
print(f"sources {list(enhance_test[0].source_names)}; test SNRs from {snrs.min():.1f} to {snrs.max():.1f} dB")
player(enhance_test[0].mixture, RATE)


def enhancement_loss_fn(model, batch):
    noisy, sources = batch                       # (batch, 1, samples), (batch, 2: speech and noise, 1, samples)
    return pit_si_snr_loss(model(noisy), sources[:, :1])  # one output: minus its SI-SNR against the voice


tpsep.seed_everything(0)
enhance_loader = torch.utils.data.DataLoader(data.ChunkDataset(enhance_train, seconds=1.0), batch_size=4,
                                             shuffle=True, drop_last=True)

# %%
# NBVAL_IGNORE_OUTPUT
enhancer = TFGridNet(replace(gridnet.COURSE, C=1))
enhance_history = fit(enhancer, enhancement_loss_fn, enhance_loader, None,
                      TrainConfig(max_steps=ENHANCE_STEPS, lr=TRAIN_LR, grad_clip=5.0, log_every=10,
                                  progress=False))
enhance_table = per_sample_table(enhancement_method(enhancer), enhance_test, targets=["speech"],
                                 method="TF-GridNet, enhancement")
per_sample_summary(enhance_table, by="snr")

# %% [markdown]
# The input score of each mixture sits near its SNR (a voice 5 dB above the
# noise scores about 5 dB): a sane pipeline. The lower the SNR, the more there
# is to gain, and the harder it is.
#
# ## 9. What to remember
#
# - TF-GridNet models the STFT grid both ways (across frequency within a frame,
#   across time within a bin) and attends over frames through all their bins.
# - Its first plateau, "both outputs are the mixture", is not a bug: push
#   through it with the learning rate or more steps.
# - Read results per sample, by group, with the best and worst items; an
#   average hides the failures.
# - An input score far below 0 dB, or improvements spread over ±40 dB, means
#   a broken pipeline: `check_pipeline` says where (lag, pairing, rate, shape,
#   sign of the loss, learning rate).
