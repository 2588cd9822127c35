# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TP 05 · Conv-TasNet: separation without a spectrogram
#
# Every system so far masked a **spectrogram**: a fixed transform (the STFT),
# a mask, the mixture's phase, an inverse STFT. Conv-TasNet (Luo & Mesgarani,
# *Conv-TasNet: Surpassing Ideal Time-Frequency Magnitude Masking for Speech
# Separation*, IEEE/ACM TASLP 2019) replaces the STFT by a **learned encoder**
# and the inverse STFT by a **learned decoder**, and estimates masks in between
# with a **temporal convolutional network** (TCN). It is trained end to end on the
# waveform with a scale-invariant SNR and **permutation-invariant training**
# (PIT). Its title makes a bold claim: it beats the *ideal* ratio mask, the
# ceiling of every STFT-masking method. We test that claim on our own data.
#
# We work on the embedded **speech** set: two LibriSpeech readers talking at
# once, at 8 kHz, mixed the way LibriMix mixes them (the test readers are never
# heard in training). Section 11 shows why real voices, and not synthetic ones.
#
# **You will write:** `encode` and `decode` (the learned transform),
# `receptive_field_frames`, and the forward pass of one `TCNBlock` (four
# exercises, each followed by a check cell).

# %%
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

import tpsep
from tpsep import data, masks
from tpsep.audio import player
from tpsep.evaluation import evaluate
from tpsep.exercises import check
from tpsep.losses import pit_si_snr, pit_si_snr_loss, si_snr
from tpsep.models import convtasnet
from tpsep.models.convtasnet import ConvTasNet, ConvTasNetConfig, STFTMaskNet
from tpsep.separate import track_separator
from tpsep.train import TrainConfig, fit

DATASET = "speech"  # or the path of a LibriMix / wsj0-2mix folder
# Step budgets sized for a 2-core laptop CPU (the notebook runs in about 3 minutes there).
# On a GPU, or with time to spare, multiply TRAIN_STEPS by 10 or more.
OVERFIT_STEPS, OVERFIT_LR = 300, 5e-3  # stops as soon as the 10 examples pass 20 dB
TRAIN_STEPS, TRAIN_LR = 250, 3e-3
BASELINE_HIDDEN = 80  # about as many parameters as our Conv-TasNet
tpsep.setup_notebook(seed=0)
torch.set_num_threads(1)  # one thread: the same printed numbers on every machine, and no fight for a busy CPU

# %%
train_tracks = data.load_dataset(DATASET, split="train")
valid_tracks = data.load_dataset(DATASET, split="valid")
test_tracks = data.load_dataset(DATASET, split="test")
RATE = train_tracks[0].rate
SOURCES = list(train_tracks[0].source_names)
for split, tracks in (("train", train_tracks), ("valid", valid_tracks), ("test", test_tracks)):
    print(f"{split:5s}: {len(tracks):3d} mixtures, {sum(t.duration for t in tracks) / 60:5.1f} minutes")
print("rate:", RATE, "Hz; sources:", SOURCES)
example = test_tracks[0]
player(example.mixture, RATE)

# %% [markdown]
# ## 1. A learned encoder and decoder
#
# The STFT cuts the signal into frames and projects each frame on fixed basis
# functions (windowed sines and cosines). Conv-TasNet keeps the framing and
# *learns* the basis: `N` filters of `L` samples, applied every `L/2` samples,
# followed by a ReLU, give a non-negative representation `w` of shape
# `(N, frames)`. This is exactly a 1-D convolution with stride `L/2`, but
# writing it as "frames times a matrix" shows its kinship with the STFT of
# notebook 01.
#
# With `L = 16` at 8 kHz a frame lasts 2 ms and frames start every 1 ms,
# against 32 ms and 8 ms for the STFT of notebook 02: eight times finer in time.
#
# **Exercise.** Write `encode(mixture, basis)`: cut frames of `L` samples every
# `L // 2` samples (`x.unfold(-1, L, L // 2)` does it), multiply them by the
# basis, apply a ReLU, and return `(batch, N, frames)`.

# %%
def encode(mixture, basis):
    """Learned encoder.

    Args:
        mixture: ``(batch, samples)`` torch tensor.
        basis: ``(N, L)``: one filter per row.

    Returns:
        ``(batch, N, frames)`` non-negative weights, ``frames = 1 + (samples - L) // (L // 2)``.
    """
    ### BEGIN SOLUTION
    L = basis.shape[1]
    frames = mixture.unfold(-1, L, L // 2)  # (batch, frames, L)
    return torch.relu(frames @ basis.T).transpose(1, 2)
    ### END SOLUTION


# %%
encode = check("05.encode", encode)

# %% [markdown]
# The decoder goes back: each frame of weights `w[:, k]` becomes a signal of
# `L` samples, `w[:, k] @ basis`, and those signals are **overlap-added** at
# `k * L/2` (a transposed convolution). The decoder has its own basis, learned
# too; nothing forces it to invert the encoder.
#
# **Exercise.** Write `decode(weights, basis)`.

# %%
def decode(weights, basis):
    """Learned decoder: overlap-add of the basis signals.

    Args:
        weights: ``(batch, N, frames)``.
        basis: ``(N, L)``.

    Returns:
        ``(batch, (frames - 1) * (L // 2) + L)`` waveform.
    """
    ### BEGIN SOLUTION
    L = basis.shape[1]
    hop = L // 2
    pieces = weights.transpose(1, 2) @ basis  # (batch, frames, L)
    out = torch.zeros(weights.shape[0], (pieces.shape[1] - 1) * hop + L, dtype=pieces.dtype)
    for k in range(pieces.shape[1]):
        out[:, k * hop : k * hop + L] += pieces[:, k]
    return out
    ### END SOLUTION


# %%
decode = check("05.decode", decode)

# %% [markdown]
# Your two functions are the model's `encoder` (`nn.Conv1d(1, N, L, stride=L//2,
# bias=False)` then ReLU) and `decoder` (`nn.ConvTranspose1d(N, 1, L,
# stride=L//2, bias=False)`). Run them with the weights of a Conv-TasNet and
# compare with the model's own layers:

# %%
torch.manual_seed(0)
model = ConvTasNet(convtasnet.COURSE)
x = torch.from_numpy(example.mixture[:, :4000])  # (1, samples): half a second
w = encode(x, model.encoder.weight[:, 0])
print("encoder output (batch, N, frames):", tuple(w.shape))
print("same as the model's encoder:", torch.allclose(w, F.relu(model.encoder(x[:, None])), atol=1e-5))
y = decode(w, model.decoder.weight[:, 0])
print("same as the model's decoder:", torch.allclose(y, model.decoder(w)[:, 0], atol=1e-5))

# %% [markdown]
# ## 2. The separator: a temporal convolutional network
#
# Between encoder and decoder, the separator turns `w` into `C` masks (one per
# speaker) with values in [0, 1]; source `c` is decoded from `mask_c * w`. The
# separator is a stack of 1-D convolutional blocks. In the paper's notation:
#
# | symbol | meaning | paper (best) | ours |
# |---|---|---|---|
# | N | encoder filters | 512 | 64 |
# | L | filter length (samples) | 16 | 16 |
# | B | bottleneck channels | 128 | 64 |
# | H | channels inside a block | 512 | 128 |
# | Sc | skip-connection channels | 128 | 64 |
# | P | depthwise kernel size | 3 | 3 |
# | X | blocks per repeat | 8 | 6 |
# | R | repeats | 3 | 2 |
#
# One block (drawn in the paper's Fig. 1): a 1x1 convolution `B -> H`, PReLU, a
# normalisation; a **depthwise** convolution (each channel alone, kernel `P`,
# dilation `d`); PReLU, normalisation; then two 1x1 convolutions, `H -> B`
# added to the block's input (the residual path, which feeds the next block)
# and `H -> Sc` (the skip path, summed over all blocks to make the masks). The
# dilation doubles from block to block, `1, 2, 4, ..., 2^(X-1)`, and the pattern
# repeats `R` times.
#
# The normalisation is gLN (global layer norm: statistics over channels *and*
# time of the whole utterance) in the non-causal model, and cLN (cumulative: at
# frame `k`, statistics of frames `0..k` only) in the causal one, which also pads
# the depthwise convolution on the left only, so that no frame sees the future.
#
# **Exercise.** The layers are built for you in `__init__`; write `forward`.
# Pad `(P - 1) * dilation` frames with `F.pad(y, (left, right))`: all on the
# left when `self.causal`, else `left = padding // 2` and the rest on the right.

# %%
class TCNBlock(nn.Module):
    def __init__(self, B, H, Sc, P, dilation, norm="gLN", causal=False):
        super().__init__()
        self.conv_in = nn.Conv1d(B, H, 1)
        self.prelu_in = nn.PReLU()
        self.norm_in = convtasnet.make_norm(norm, H)
        self.depthwise = nn.Conv1d(H, H, P, dilation=dilation, groups=H)
        self.prelu_out = nn.PReLU()
        self.norm_out = convtasnet.make_norm(norm, H)
        self.residual = nn.Conv1d(H, B, 1)
        self.skip = nn.Conv1d(H, Sc, 1)
        self.padding = (P - 1) * dilation
        self.causal = causal

    def forward(self, x):
        """x: ``(batch, B, frames)`` -> ``(x + residual, skip)``: ``(batch, B, frames)``, ``(batch, Sc, frames)``."""
        ### BEGIN SOLUTION
        y = self.norm_in(self.prelu_in(self.conv_in(x)))
        left = self.padding if self.causal else self.padding // 2
        y = F.pad(y, (left, self.padding - left))
        y = self.norm_out(self.prelu_out(self.depthwise(y)))
        return x + self.residual(y), self.skip(y)
        ### END SOLUTION


# %%
TCNBlock = check("05.tcn_block", TCNBlock)

# %% [markdown]
# ## 3. Receptive field
#
# How far back and ahead can the separator look? A convolution of kernel `P` and
# dilation `d` widens the view by `(P - 1) * d` frames. Summed over the `X`
# dilations of a repeat and the `R` repeats, one output frame sees
#
# `1 + R * sum_{i=0}^{X-1} (P - 1) * 2^i` encoder frames,
#
# which span `(frames - 1) * L/2 + L` samples.
#
# **Exercise.** Write `receptive_field_frames(P, X, R)`.

# %%
def receptive_field_frames(P, X, R):
    """Number of encoder frames that one output frame of the TCN depends on (an int)."""
    ### BEGIN SOLUTION
    return 1 + R * sum((P - 1) * 2**i for i in range(X))
    ### END SOLUTION


# %%
receptive_field_frames = check("05.receptive_field_frames", receptive_field_frames)

# %% [markdown]
# The paper's two configurations whose sizes it reports, and ours. Building a
# model prints its parameter count.

# %%
rows = []
for name, config in (("paper, best", convtasnet.PAPER_BEST), ("paper, small", convtasnet.PAPER_SMALL),
                     ("this notebook", convtasnet.COURSE)):
    frames = receptive_field_frames(config.P, config.X, config.R)
    samples = (frames - 1) * config.L // 2 + config.L
    parameters = ConvTasNet(config, verbose=False).num_parameters()
    rows.append({"configuration": name, "N, L, B, H, Sc, P, X, R": ", ".join(
                     str(getattr(config, k)) for k in ("N", "L", "B", "H", "Sc", "P", "X", "R")),
                 "parameters (M)": round(parameters / 1e6, 2), "receptive field (frames)": frames,
                 "samples": samples, "ms at 8 kHz": 1000 * samples / RATE})
pd.DataFrame(rows).set_index("configuration")

# %% [markdown]
# The paper's best model sees 1.53 s of signal around each output sample: a
# whole word or two. Ours sees a quarter of a second, about one syllable. Keep
# this number in mind for the discussion at the end.
#
# ## 4. The training objective: SI-SNR with permutation-invariant training
#
# The model is trained on the waveform, with the **scale-invariant SNR**
# (SI-SNR, the same number as the SI-SDR of notebook 02): project the estimate
# on the reference, and compare the energy of that projection with the rest.
# Scaling the estimate does not change it, so the network need not guess the
# loudness. The loss is **minus** the SI-SNR; we always *report* the positive
# number.
#
# Which output is "speaker 1" is arbitrary: the two speakers play symmetric
# roles. **PIT** scores every assignment of outputs to references and keeps the
# best one per utterance (here 2! = 2 assignments). A swapped estimate costs
# nothing:

# %%
mixture = torch.from_numpy(example.mixture)  # (1, samples)
references = torch.from_numpy(np.stack([example.sources[s][0] for s in SOURCES]))[None]  # (1, C, samples)
print("the mixture as the estimate of each speaker:", np.round(si_snr(mixture.expand(2, -1), references[0]).numpy(), 2), "dB")
noisy = references + 0.1 * torch.randn_like(references) * references.std()
for name, estimates in (("noisy estimates", noisy), ("the same, swapped", noisy.flip(1))):
    score, permutation = pit_si_snr(estimates, references)
    print(f"{name:18s}: PIT SI-SNR {score.item():5.2f} dB, permutation {permutation.tolist()[0]}, "
          f"loss {pit_si_snr_loss(estimates, references).item():6.2f}")

# %% [markdown]
# The input SI-SNR of a mixture sits around 0 dB (two voices at 0 to 5 dB of
# each other), so **SI-SNR improvement** (SI-SNRi, or SI-SDRi) = output minus
# input is what papers report. A score far below that, say −30 dB, means the
# *pipeline* is broken (misaligned or wrongly ordered signals), not the model.
# An untrained model is there, as its masks blur everything:

# %%
with torch.no_grad():
    untrained = model(mixture)
print(f"untrained Conv-TasNet: {pit_si_snr(untrained, references)[0].item():.1f} dB SI-SNR")
late = torch.roll(references, 40, dims=-1)  # the references 5 ms late
print(f"references 5 ms late, scored against themselves: {pit_si_snr(late, references)[0].item():.1f} dB")

# %% [markdown]
# ## 5. The correctness test: overfit 10 examples
#
# Before spending minutes on training, check that the whole pipeline (data,
# model, loss, optimiser) can at least **memorise** a handful of examples. A
# correct pipeline drives 10 quarter-second examples above 20 dB SI-SNR; a
# bug (a detached graph, wrongly ordered sources, a loss of the wrong sign)
# stalls it.

# %%
tpsep.seed_everything(0)
few = torch.utils.data.DataLoader(data.ChunkDataset(train_tracks, seconds=0.25), batch_size=10)
few_mixtures, few_sources = next(iter(few))  # (10, 1, 2000), (10, C, 1, 2000)
overfit_model = ConvTasNet(convtasnet.COURSE)
optimizer = torch.optim.Adam(overfit_model.parameters(), lr=OVERFIT_LR)
for step in range(1, OVERFIT_STEPS + 1):
    loss = pit_si_snr_loss(overfit_model(few_mixtures), few_sources)
    if -loss.item() > 20:
        break
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 50 == 0:
        print(f"step {step:4d}: SI-SNR on the 10 examples {-loss.item():6.2f} dB")
print(f"after {step} steps: {-loss.item():.2f} dB;",
      "overfit test passed (> 20 dB)" if -loss.item() > 20 else "FAILED: look for a bug before training")

# %% [markdown]
# ## 6. Training
#
# Now the real thing, with the course's trainer (`tpsep.train.fit`, notebook 03):
# random 1-second chunks of the training mixtures (longer than the quarter
# second the model sees), batches of 4, AdamW, gradient clipping. On a laptop CPU this takes a few minutes; a GPU (or the
# benchmark script, longer) does much better.

# %%
def pit_loss_fn(model, batch):
    mixture, sources = batch  # (batch, 1, samples), (batch, C, 1, samples): the model returns the latter's shape
    return pit_si_snr_loss(model(mixture), sources)


tpsep.seed_everything(0)
train_loader = torch.utils.data.DataLoader(data.ChunkDataset(train_tracks, seconds=1.0), batch_size=4,
                                           shuffle=True, drop_last=True)
valid_loader = torch.utils.data.DataLoader(data.ChunkDataset(valid_tracks, seconds=1.0, chunks_per_epoch=64),
                                           batch_size=16)
model = ConvTasNet(convtasnet.COURSE)
initial_basis = model.encoder.weight[:, 0].detach().clone()  # (N, L), to see what training changed
history = fit(model, pit_loss_fn, train_loader, valid_loader,
              TrainConfig(max_steps=TRAIN_STEPS, lr=TRAIN_LR, grad_clip=5.0, log_every=25))
print(f"validation SI-SNR after {history.steps} steps: {-history.valid_loss[-1]:.2f} dB")
history.plot(smooth=20).set(ylabel="loss = -SI-SNR (dB)", title="Conv-TasNet")
plt.show()

# %% [markdown]
# ## 7. A spectrogram baseline, trained the same way
#
# Is it the time-domain encoder that helps, or just end-to-end training with
# SI-SNR and PIT? A fair comparison changes only the front end: an STFT (32 ms
# window, 8 ms hop), log magnitudes, a 2-layer bidirectional LSTM that outputs
# two sigmoid masks, the mixture phase, an inverse STFT, and **the same loss,
# trainer, data and step budget**.

# %%
tpsep.seed_everything(0)
baseline = STFTMaskNet(n_fft=256, hop=64, hidden=BASELINE_HIDDEN)
baseline_history = fit(baseline, pit_loss_fn, train_loader, valid_loader,
                       TrainConfig(max_steps=TRAIN_STEPS, lr=TRAIN_LR, grad_clip=5.0, log_every=25))
print(f"validation SI-SNR after {baseline_history.steps} steps: {-baseline_history.valid_loss[-1]:.2f} dB")

# %% [markdown]
# ## 8. Evaluation on the test split: SI-SDRi
#
# The test speakers were never heard in training. Every method is a
# *separator* `separator(track) -> {source: estimate}` scored by
# `tpsep.evaluation.evaluate` with the SI-SDR of whole utterances; the outputs
# of the two trained models are matched to the speakers by the best permutation,
# as in every speech-separation benchmark. The **ideal ratio mask** (IRM) on the
# same 32 ms STFT uses the true sources: no mask on that STFT can do better on
# average, which makes it the reference the paper's title is about.

# %%
def si_sdri_table(separators: dict, tracks) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-track SI-SDRi (dB) of each separator, and a summary: mean, worst 10 %, and the mean
    by pair of voices (FF, FM, MM: the sexes of the two readers, in each track's meta)."""
    scores = pd.concat([evaluate(separate, tracks, SOURCES, method=name, mode="si_sdr")
                        for name, separate in separators.items()])
    per_track = scores.groupby(["method", "track"], sort=False)["value"].mean().unstack("method")
    improvement = per_track.sub(per_track["mixture (input)"], axis=0)
    summary = pd.DataFrame({"SI-SDRi (dB)": improvement.mean(), "worst 10% (dB)": improvement.quantile(0.1)})
    pairs = pd.Series({t.name: t.meta["pair"] for t in tracks}).reindex(improvement.index)
    for pair, group in improvement.groupby(pairs):
        summary[f"{pair} ({len(group)})"] = group.mean()
    return improvement, summary.round(2)


separators = {
    "mixture (input)": masks.oracle_separator("mix", n_fft=256, hop=64),
    "IRM oracle (STFT 32 ms)": masks.oracle_separator("irm", n_fft=256, hop=64),
    "STFT mask + BLSTM (trained)": track_separator(baseline),
    "Conv-TasNet (trained)": track_separator(model),
}
improvement, table = si_sdri_table(separators, test_tracks)
table

# %%
best = improvement["Conv-TasNet (trained)"].idxmax()
track = next(t for t in test_tracks if t.name == best)
estimates = separators["Conv-TasNet (trained)"](track)
print(f"{best}: SI-SDRi {improvement.loc[best, 'Conv-TasNet (trained)']:.1f} dB")
player(track.mixture, RATE)

# %%
player(estimates[SOURCES[0]], RATE)

# %%
player(estimates[SOURCES[1]], RATE)

# %% [markdown]
# ## 9. What did the encoder learn?
#
# Fully trained, Conv-TasNet's encoder filters become band-pass filters that
# tile the frequency axis, more densely at low frequencies where voices have
# their harmonics, as the paper shows. Sorting filters by the frequency where
# their response peaks always draws a diagonal, even for random filters, so
# compare with the filters the model started from. How *peaked* is each
# response (peak over mean, in dB), and how far did the filters move?

# %%
def sorted_responses(basis):
    """Magnitude responses (N, 129) of the filters (N, L), sorted by peak frequency."""
    spectra = torch.fft.rfft(basis, n=256).abs()
    return spectra[spectra.argmax(dim=1).argsort()]


trained_basis = model.encoder.weight[:, 0].detach()
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
for ax, (name, basis) in zip(axes, (("at initialisation", initial_basis), (f"after {history.steps} steps", trained_basis))):
    spectra = sorted_responses(basis)
    peakiness = 20 * torch.log10(spectra.max(dim=1).values / spectra.mean(dim=1)).mean()
    print(f"{name:18s}: mean peak-to-mean ratio of the responses {peakiness:.2f} dB")
    ax.imshow(20 * torch.log10(spectra / spectra.max() + 1e-4).numpy(), aspect="auto", origin="lower",
              cmap="magma", vmin=-40, extent=(0, RATE / 2, 0, len(spectra)))
    ax.set(xlabel="frequency (Hz)", title=f"encoder responses (dB), {name}")
axes[0].set_ylabel("filter (sorted by peak)")
change = (trained_basis - initial_basis).norm() / initial_basis.norm()
print(f"the filters moved by {100 * change:.0f}% of their norm")

# %% [markdown]
# The filters moved by a large part of their norm (printed above), yet their
# responses became only slightly more peaked (the two peak-to-mean figures
# above): the encoder has started to specialise, nothing more.
# Band-pass filters need far more training than this notebook can afford.

# %% [markdown]
# ## 10. Why not 15.3 dB?
#
# The paper reports 15.3 dB SI-SNRi on wsj0-2mix for its best non-causal model,
# against 12.2 dB for the IRM (Luo & Mesgarani 2019). Our numbers are
# far from both, and every factor can be measured:

# %%
paper = {"training audio (hours)": 30.0, "speakers in training": 101, "parameters (M)": 5.05,
         "receptive field (s)": 1.53, "audio seen in training (hours)": 100 * 30.0}
audio_seen = history.steps * 4 * 1.0 / 3600
ours = {"training audio (hours)": sum(t.duration for t in train_tracks) / 3600,
        "speakers in training": len({reader for t in train_tracks for reader in t.meta["speakers"]}),
        "parameters (M)": model.num_parameters() / 1e6,
        "receptive field (s)": convtasnet.receptive_field(model.config, RATE).ms / 1000,
        "audio seen in training (hours)": audio_seen}
comparison = pd.DataFrame({"paper (wsj0-2mix)": paper, "this notebook": ours})
comparison["ratio"] = comparison["paper (wsj0-2mix)"] / comparison["this notebook"]
comparison.round(3)

# %% [markdown]
# Read the SI-SDRi table of section 8 against this one. A few minutes of CPU
# leave both trained models far below the ideal ratio mask, and each row
# above is a reason:
#
# - **Data.** The training mixtures reuse under an hour of distinct speech;
#   wsj0-2mix has 30 hours. Our readers are more numerous than wsj0's, but each
#   reads a single utterance.
# - **Training time.** The model has heard minutes of audio (the last row),
#   the paper's some three thousand hours, and our loss curve is still
#   falling when we stop.
# - **Model size.** 16 times fewer parameters: `N`, `B`, `H` halved or
#   quartered, 12 blocks instead of 24.
# - **Receptive field.** Our separator hears about one syllable at a time, so it
#   cannot follow a voice through a pause or a word; the paper's best model
#   hears a word or two.
#
# None of these is a bug: the overfit test passed, so the pipeline can learn.
# Scores are not comparable across datasets either (LibriSpeech's test-other
# readers are not wsj0's read newspaper sentences): what can be compared is
# the distance to the ideal mask on the same mixtures.

# %% [markdown]
# ## 11. Real voices, and what the data does
#
# The speech set of this course used to be made of synthetic voices: 16
# espeak-ng voices reading sentences from a small grammar (it is still there:
# `data.load_dataset("espeak")`). Models trained on it scored well on its own
# test split and did nothing on real speech. The report that seeded this
# notebook named the dataset as a main cause of its gap; here we measure it.
#
# tpsep ships three Conv-TasNets with this notebook's configuration, each
# trained for a few minutes on a GPU (`tpsep.checkpoints.reference_card` tells
# how):
#
# - `convtasnet-espeak`: on the espeak voices;
# - `convtasnet-speech-b4x1s`: on the real voices, with the same recipe and budget;
# - `convtasnet-speech`: on the real voices with the paper's 4-second chunks and
#   batches of 16, 16 times more audio per step.
#
# Each card also holds the score on the test split of the model's *own*
# training data:

# %%
from tpsep.checkpoints import load_separator, reference, reference_card

REFERENCES = ("convtasnet-espeak", "convtasnet-speech-b4x1s", "convtasnet-speech")
for name in REFERENCES:
    card = reference_card(name)
    print(f"{name:24s} trained on {card['dataset']!r:9s} for {card['steps']:5d} steps "
          f"({card['training_minutes']:.1f} min on a GPU); on the test split of {card['dataset']!r}: "
          f"{card['test']['value']:5.2f} dB SI-SDRi")

# %% [markdown]
# Now all of them on the same real test mixtures, next to your own model
# (the first 30 of the test split, to stay within the notebook's time):

# %%
gap_tracks = test_tracks[:30]
gap_separators = {name: separators[name] for name in ("mixture (input)", "IRM oracle (STFT 32 ms)",
                                                      "Conv-TasNet (trained)")}
gap_separators.update({name: track_separator(load_separator(reference(name))) for name in REFERENCES})
_, gap_table = si_sdri_table(gap_separators, gap_tracks)
gap_table

# %% [markdown]
# The espeak model is the lesson: excellent on the voices it was trained on (its
# card), worse than doing nothing on real ones, although it took far more steps
# than your own model. The same recipe on real voices, with the same budget,
# at least does better than the mixture, and not by much: one-second chunks in
# batches of four teach slowly. Four-second chunks in batches of 16, 16 times
# more audio per step, go much further in about the same time. The data is the
# first bottleneck; how much of it the model hears is the second.
# `python benchmarks/transfer.py convtasnet --checkpoint PATH` measures any
# checkpoint on real LibriSpeech mixtures built from the original recordings,
# next to the ideal mask.
#
# **To go further.** Double `TRAIN_STEPS` and watch SI-SDRi move; set
# `causal=True, norm="cLN"` in a `ConvTasNetConfig` and measure what a
# real-time model loses; try `mask_activation="relu"`; on a GPU, train
# `convtasnet.PAPER_SMALL` with `tpsep train convtasnet --option N=128 --option L=40 ...`.
