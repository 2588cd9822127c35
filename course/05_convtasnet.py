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
# **You will write:** `encode` and `decode` (the learned transform), the
# forward pass of one `TCNBlock` (the separator's building block),
# `receptive_field_frames` (how much of the signal the separator hears), and
# `pit_si_snr` (the permutation-invariant training objective): five exercises,
# each followed by a check cell. Five written **questions** ask you to explain
# what you see; answer them in the cells that say *Your answer here.*

# %%
import itertools

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn as nn
import torch.nn.functional as F

import tpsep
from tpsep import data, losses, masks
from tpsep.audio import player
from tpsep.checkpoints import load_separator, reference, reference_card
from tpsep.evaluation import evaluate
from tpsep.exercises import check
from tpsep.losses import pit_si_snr_loss, si_snr
from tpsep.models import convtasnet
from tpsep.models.convtasnet import ConvTasNet, ConvTasNetConfig, STFTMaskNet
from tpsep.separate import track_separator
from tpsep.train import TrainConfig, fit

DATASET = "speech"  # or the path of a LibriMix / wsj0-2mix folder
# Budgets sized for a 2-core laptop CPU (the notebook runs in under 4 minutes there).
# On a GPU, or with time to spare, multiply TRAIN_STEPS by 10 or more.
OVERFIT_EXAMPLES, OVERFIT_STEPS, OVERFIT_LR = 4, 300, 5e-3  # stops as soon as the examples pass 20 dB
TRAIN_STEPS, TRAIN_LR = 100, 3e-3
BASELINE_HIDDEN = 80  # about as many parameters as our Conv-TasNet
TEST_TRACKS = 30  # the test mixtures of the tables of sections 8 and 11
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
# The paper's best model sees about a second and a half of signal around each
# output sample: a whole word or two. Ours sees a quarter of a second, about
# one syllable (the last column above). Keep this number in mind for the
# discussion at the end.
#
# **Question 1.** What does the receptive field in milliseconds mean for
# speech? Compare ours and the paper's with the durations of a phoneme, a
# syllable and a pause between words, and say what a separator that sees only
# a quarter of a second can get wrong. Does the non-causal model see all of it
# in the past?
#
# ### BEGIN SOLUTION
# A phoneme lasts some 50-100 ms, a syllable 200-300 ms, a word with its pause
# half a second or more. Our separator decides each output sample from about
# one syllable of context; the paper's from a word or two. Within a syllable
# it can use local cues (pitch, harmonics, formants) to split the voices, but
# it cannot remember which voice went to which output across a pause or a
# stretch where one speaker is silent or both sound alike: the assignment can
# flip in the middle of an utterance (speaker swaps), which PIT at the
# utterance level then punishes, and the quieter voice leaks into the other
# output. A longer field lets the network track a speaker's identity over
# words. The non-causal model's field is centred: half of it (about 127 ms
# for ours) is future, so a real-time version would need that much latency,
# or a causal model that sees only the past.
# ### END SOLUTION
#
# ## 4. The training objective: SI-SNR with permutation-invariant training
#
# The model is trained on the waveform, with the **scale-invariant SNR**
# (SI-SNR, the same number as the SI-SDR of notebook 02): project the estimate
# on the reference, and compare the energy of that projection with the rest.
# Scaling the estimate does not change it, so the network need not guess the
# loudness. `si_snr(estimate, reference)` computes it over the last axis, for
# any leading axes. The loss is **minus** the SI-SNR; we always *report* the
# positive number.
#
# Which output is "speaker 1" is arbitrary: the two speakers play symmetric
# roles, and nothing tells the network which one to put first. Scoring output
# `c` against reference `c` would punish a perfect separation that happens to
# come out in the other order. **Permutation-invariant training** (PIT, Kolbæk
# et al. 2017) scores every assignment of the `C` outputs to the `C` references
# (`C!` of them: 2 for two speakers) and keeps the best one, **for each
# utterance on its own**:
#
# $$\text{PIT-SI-SNR}(\hat s, s) = \max_{\pi} \frac{1}{C} \sum_{c=1}^{C} \text{SI-SNR}(\hat s_{\pi(c)}, s_c)$$
#
# **Exercise.** Write `pit_si_snr(estimates, references)` for tensors of shape
# `(batch, C, samples)`: return the `(batch,)` best mean SI-SNR. For each
# permutation `p` of `range(C)` (`itertools.permutations`),
# `estimates[:, list(p)]` puts estimate `p[c]` in front of reference `c`.

# %%
def pit_si_snr(estimates, references):
    """Utterance-level PIT SI-SNR in dB.

    Args:
        estimates, references: ``(batch, C, samples)`` torch tensors.

    Returns:
        ``(batch,)``: for each utterance, the mean SI-SNR over the C sources under the
        assignment of estimates to references that scores best.
    """
    ### BEGIN SOLUTION
    C = estimates.shape[1]
    per_permutation = [si_snr(estimates[:, list(p)], references).mean(dim=1)  # (batch,) each
                       for p in itertools.permutations(range(C))]
    return torch.stack(per_permutation, dim=1).max(dim=1).values
    ### END SOLUTION


# %%
pit_si_snr = check("05.pit_si_snr", pit_si_snr)

# %% [markdown]
# Try it on a test utterance: the mixture itself as the estimate of each
# speaker, then slightly noisy copies of the references, in their order and
# swapped. A swapped estimate costs nothing under PIT, and everything without
# it. (tpsep's `losses.pit_si_snr` also returns the best permutation, which we
# need later to match outputs and speakers.)

# %%
mixture = torch.from_numpy(example.mixture)  # (1, samples)
references = torch.from_numpy(np.stack([example.sources[s][0] for s in SOURCES]))[None]  # (1, C, samples)
print("the mixture as the estimate of each speaker:", np.round(si_snr(mixture.expand(2, -1), references[0]).numpy(), 2), "dB")
noisy = references + 0.1 * torch.randn_like(references) * references.std()
for name, estimates in (("noisy estimates", noisy), ("the same, swapped", noisy.flip(1))):
    without_pit = si_snr(estimates, references).mean(dim=1)
    permutation = losses.pit_si_snr(estimates, references)[1]
    print(f"{name:18s}: SI-SNR without PIT {without_pit.item():6.2f} dB, with PIT {pit_si_snr(estimates, references).item():5.2f} dB "
          f"(best permutation {permutation.tolist()[0]})")

# %% [markdown]
# **Question 2.** Why is PIT needed at all? Imagine training the same network
# with a fixed assignment, output 1 against `s1` and output 2 against `s2`,
# on mixtures where the order of `s1` and `s2` is arbitrary. What would the
# network learn to output, and why?
#
# ### BEGIN SOLUTION
# The labels `s1`/`s2` carry no information the network can read from the
# mixture: two mixtures that look alike may have the male voice as `s1` in one
# and as `s2` in the other. With a fixed assignment the targets contradict
# each other, and the loss is minimised on average by hedging: each output
# drifts towards a blend of both voices (something close to a scaled mixture),
# which is the "permutation problem" of speaker-independent separation. PIT
# makes the loss invariant to the order of the outputs: the network may put
# any voice on any output, as long as each output holds one voice; the best
# assignment is chosen per utterance, so it stays the same for the whole
# utterance. The cost is scoring `C!` assignments, negligible for 2 or 3
# speakers.
# ### END SOLUTION

# %% [markdown]
# The input SI-SNR of a mixture sits around 0 dB (two voices at 0 to 5 dB of
# each other), so **SI-SNR improvement** (SI-SNRi, or SI-SDRi) = output minus
# input is what papers report. A score far below that, say −30 dB, means the
# *pipeline* is broken (misaligned or wrongly ordered signals), not the model.
# An untrained model is there, as its masks blur everything:

# %%
with torch.no_grad():
    untrained = model(mixture)
print(f"untrained Conv-TasNet: {pit_si_snr(untrained, references).item():.1f} dB SI-SNR")
late = torch.roll(references, 40, dims=-1)  # the references 5 ms late
print(f"references 5 ms late, scored against themselves: {pit_si_snr(late, references).item():.1f} dB")

# %% [markdown]
# ## 5. The correctness test: overfit a handful of examples
#
# Before spending minutes on training, check that the whole pipeline (data,
# model, loss, optimiser) can at least **memorise** a handful of examples. A
# correct pipeline drives `OVERFIT_EXAMPLES` quarter-second examples above
# 20 dB SI-SNR within a few hundred steps; a bug (a detached graph, wrongly
# ordered sources, a loss of the wrong sign) stalls it. Four examples are
# enough for the test, and cost far less than a real batch.

# %%
tpsep.seed_everything(0)
few = torch.utils.data.DataLoader(data.ChunkDataset(train_tracks, seconds=0.25), batch_size=OVERFIT_EXAMPLES)
few_mixtures, few_sources = next(iter(few))  # (examples, 1, 2000), (examples, C, 1, 2000)
overfit_model = ConvTasNet(convtasnet.COURSE)
optimizer = torch.optim.Adam(overfit_model.parameters(), lr=OVERFIT_LR)
for step in range(1, OVERFIT_STEPS + 1):
    loss = pit_si_snr_loss(overfit_model(few_mixtures), few_sources)
    if -loss.item() > 20:
        break
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 25 == 0:
        print(f"step {step:4d}: SI-SNR on the {OVERFIT_EXAMPLES} examples {-loss.item():6.2f} dB")
print(f"after {step} steps: {-loss.item():.2f} dB;",
      "overfit test passed (> 20 dB)" if -loss.item() > 20 else "FAILED: look for a bug before training")

# %% [markdown]
# ## 6. Training
#
# Now the real thing, with the course's trainer (`tpsep.train.fit`, notebook 03):
# random 1-second chunks of the training mixtures (longer than the quarter
# second the model sees), batches of 4, AdamW, gradient clipping. Each step
# takes a good fraction of a second on a laptop CPU, so we stop after
# `TRAIN_STEPS` steps: long enough to watch the loss fall from the untrained
# model's level (section 4) towards the mixture's, not long enough for much
# more. The loss is `tpsep.losses.pit_si_snr_loss`: minus your `pit_si_snr`,
# averaged over the batch.

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
# the checkpoints go to .runs/convtasnet05/, where notebook 08 finds them for its leaderboard
history = fit(model, pit_loss_fn, train_loader, valid_loader,
              TrainConfig(max_steps=TRAIN_STEPS, lr=TRAIN_LR, grad_clip=5.0, log_every=20,
                          out_dir=".runs/convtasnet05", tensorboard=False),
              extra={"model_name": "convtasnet", "model_config": vars(convtasnet.COURSE), "dataset": DATASET})
print(f"validation SI-SNR after {history.steps} steps: {-history.valid_loss[-1]:.2f} dB")
history.plot(smooth=10).set(ylabel="loss = -SI-SNR (dB)", title="Conv-TasNet")
plt.show()

# %% [markdown]
# Training on, with the same recipe, is a matter of time, not of code. tpsep
# ships this very model (same configuration, same batches of four 1-second
# chunks, learning rate and clipping) trained for a few minutes on a GPU,
# thousands of steps. Its card (`tpsep.checkpoints.reference_card`) says how it
# was made; we evaluate it next to yours below.

# %%
LONGER = "convtasnet-speech-b4x1s"
longer_card = reference_card(LONGER)
longer_model = load_separator(reference(LONGER))  # a ConvTasNet, in eval mode
print(f"{LONGER}: {longer_card['steps']} steps of 4 x 1 s ({longer_card['training_minutes']:.1f} min on a GPU), "
      f"{longer_card['steps'] / history.steps:.0f} times the steps of your model")

# %% [markdown]
# ## 7. A spectrogram baseline, trained the same way
#
# Is it the time-domain encoder that helps, or just end-to-end training with
# SI-SNR and PIT? A fair comparison changes only the front end: an STFT (32 ms
# window, 8 ms hop), log magnitudes, a 2-layer bidirectional LSTM that outputs
# two sigmoid masks, the mixture phase, an inverse STFT, and **the same loss,
# trainer, data and step budget**. (With a budget this small, the comparison
# says little; it is the experiment to rerun with 10 times the steps.)

# %%
tpsep.seed_everything(0)
baseline = STFTMaskNet(n_fft=256, hop=64, hidden=BASELINE_HIDDEN)
baseline_history = fit(baseline, pit_loss_fn, train_loader, valid_loader,
                       TrainConfig(max_steps=TRAIN_STEPS, lr=TRAIN_LR, grad_clip=5.0, log_every=20))
print(f"validation SI-SNR after {baseline_history.steps} steps: {-baseline_history.valid_loss[-1]:.2f} dB")

# %% [markdown]
# ## 8. Evaluation on the test split: SI-SDRi
#
# The test speakers were never heard in training. Every method is a
# *separator* `separator(track) -> {source: estimate}` scored by
# `tpsep.evaluation.evaluate` with the SI-SDR of whole utterances; the outputs
# of the trained models are matched to the speakers by the best permutation,
# as in every speech-separation benchmark. The **ideal ratio mask** (IRM) on the
# same 32 ms STFT uses the true sources: no mask on that STFT can do better on
# average, which makes it the reference the paper's title is about.
#
# To stay within the notebook's time, the tables use the first `TEST_TRACKS`
# mixtures of the test split, and each separator runs on them once (the
# scores are kept for section 11).

# %%
test_subset = test_tracks[:TEST_TRACKS]
scores = {}  # separator name -> its SI-SDR on test_subset, computed once


def si_sdri_table(separators: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-track SI-SDRi (dB) of each separator on ``test_subset``, and a summary: mean, worst 10 %,
    and the mean by pair of voices (FF, FM, MM: the sexes of the two readers, in each track's meta)."""
    for name, separate in separators.items():
        if name not in scores:
            scores[name] = evaluate(separate, test_subset, SOURCES, method=name, mode="si_sdr")
    table = pd.concat([scores[name] for name in separators])
    per_track = table.groupby(["method", "track"], sort=False)["value"].mean().unstack("method")
    improvement = per_track.sub(per_track["mixture (input)"], axis=0)
    summary = pd.DataFrame({"SI-SDRi (dB)": improvement.mean(), "worst 10% (dB)": improvement.quantile(0.1)})
    pairs = pd.Series({t.name: t.meta["pair"] for t in test_subset}).reindex(improvement.index)
    for pair, group in improvement.groupby(pairs):
        summary[f"{pair} ({len(group)})"] = group.mean()
    return improvement, summary.round(2)


separators = {
    "mixture (input)": masks.oracle_separator("mix", n_fft=256, hop=64),
    "IRM oracle (STFT 32 ms)": masks.oracle_separator("irm", n_fft=256, hop=64),
    "STFT mask + BLSTM (yours)": track_separator(baseline),
    "Conv-TasNet (yours)": track_separator(model),
    LONGER: track_separator(longer_model),
}
improvement, table = si_sdri_table(separators)
table

# %% [markdown]
# Listen to the reference model on the test mixture where it does best:

# %%
best = improvement[LONGER].idxmax()
track = next(t for t in test_subset if t.name == best)
estimates = separators[LONGER](track)
print(f"{best}: SI-SDRi {improvement.loc[best, LONGER]:.1f} dB")
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
# compare with the filters your model started from. How *peaked* is each
# response (peak over mean, in dB), and how far did the filters move, in
# your model and in the reference trained on?

# %%
def sorted_responses(basis):
    """Magnitude responses (N, 129) of the filters (N, L), sorted by peak frequency."""
    spectra = torch.fft.rfft(basis, n=256).abs()
    return spectra[spectra.argmax(dim=1).argsort()]


trained_basis = model.encoder.weight[:, 0].detach()
longer_basis = longer_model.encoder.weight[:, 0].detach()
bases = {"at initialisation": initial_basis, f"yours, {history.steps} steps": trained_basis,
         f"{LONGER}, {longer_card['steps']} steps": longer_basis}
fig, axes = plt.subplots(1, 3, figsize=(14, 3.5), sharey=True)
for ax, (name, basis) in zip(axes, bases.items()):
    spectra = sorted_responses(basis)
    peakiness = 20 * torch.log10(spectra.max(dim=1).values / spectra.mean(dim=1)).mean()
    print(f"{name:34s}: mean peak-to-mean ratio of the responses {peakiness:.2f} dB")
    ax.imshow(20 * torch.log10(spectra / spectra.max() + 1e-4).numpy(), aspect="auto", origin="lower",
              cmap="magma", vmin=-40, extent=(0, RATE / 2, 0, len(spectra)))
    ax.set(xlabel="frequency (Hz)", title=name)
axes[0].set_ylabel("filter (sorted by peak)")
change = (trained_basis - initial_basis).norm() / initial_basis.norm()
print(f"your filters moved by {100 * change:.0f}% of their norm")
plt.show()

# %% [markdown]
# Compare the three peak-to-mean figures printed above, and the three images.
# Your `TRAIN_STEPS` steps move the filters (by the share printed above)
# without making their responses much more peaked; the reference, trained
# for thousands of steps, has clearly more peaked responses: the
# specialisation has begun. Band-pass filters like the paper's need far more
# training still.

# %% [markdown]
# ## 10. Why not 15.3 dB?
#
# The paper reports 15.3 dB SI-SNRi on wsj0-2mix for its best non-causal model,
# against 12.2 dB for the IRM (Luo & Mesgarani 2019). Our numbers are
# far from both, and every factor can be measured:

# %%
paper = {"training audio (hours)": 30.0, "speakers in training": 101, "parameters (M)": 5.05,
         "receptive field (s)": 1.53, "audio seen in training (hours)": 100 * 30.0}
ours = {"training audio (hours)": sum(t.duration for t in train_tracks) / 3600,
        "speakers in training": len({reader for t in train_tracks for reader in t.meta["speakers"]}),
        "parameters (M)": model.num_parameters() / 1e6,
        "receptive field (s)": convtasnet.receptive_field(model.config, RATE).ms / 1000,
        "audio seen in training (hours)": history.steps * 4 * 1.0 / 3600}
comparison = pd.DataFrame({"paper (wsj0-2mix)": paper, "your model": ours,
                           LONGER: {**ours, "audio seen in training (hours)": longer_card["steps"] * 4 * 1.0 / 3600}})
comparison["paper / yours"] = comparison["paper (wsj0-2mix)"] / comparison["your model"]
print("distinct utterances in our training mixtures:",
      len({utterance for t in train_tracks for utterance in t.meta["utterances"]}))
comparison.round(3)

# %% [markdown]
# Read the SI-SDRi table of section 8 against this one. Your model and even
# the reference trained for thousands of steps stay far below the ideal ratio
# mask, and each row above is a reason:
#
# - **Data.** Our training mixtures total under two hours (first row), made
#   of a few hundred utterances (printed above) reused in many pairs;
#   wsj0-2mix has 30 hours. Our readers are more numerous than wsj0's, but
#   each reads a single utterance.
# - **Training time.** Your model has heard minutes of audio, the reference
#   hours, the paper's some three thousand hours (the last row), and your
#   loss curve was still falling when it stopped.
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
#
# **Question 3.** (3 points) The paper's title says Conv-TasNet *surpasses*
# the ideal ratio mask. How can any trained model beat an "ideal" mask that
# knows the true sources? Name what limits the IRM of section 8 that does not
# limit Conv-TasNet.
#
# ### BEGIN SOLUTION
# The IRM is ideal only within its class: a real mask in [0, 1] on the
# magnitudes of one fixed STFT, resynthesised with the mixture's phase.
# (1) Phase: every bin keeps the mixture's phase, wrong wherever the two
# voices overlap, so even a perfect magnitude gives an imperfect waveform.
# (2) Resolution: with 32 ms windows and 8 ms hops, a bin where both voices
# have energy can only be shared by the mask, not split. (3) The IRM is a
# heuristic, not the SI-SNR optimum even among masks. Conv-TasNet has none of
# these limits: its encoder is learned, with 2 ms frames and no separate phase
# (a real, non-negative representation where the voices may overlap less),
# its decoder is learned too, and the whole chain is trained end to end on the
# SI-SNR of the waveform. So the IRM is not a ceiling for it; it beats the IRM
# only with enough data, model and training, which we do not have here.
# ### END SOLUTION

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
# - `convtasnet-speech-b4x1s`: on the real voices, with the same recipe and
#   budget (the reference of sections 6 to 10);
# - `convtasnet-speech`: on the real voices with the paper's 4-second chunks and
#   batches of 16, 16 times more audio per step.
#
# Each card also holds the score on the whole test split of the model's *own*
# training data, and the mean by pair of voices where the data has them:

# %%
REFERENCES = ("convtasnet-espeak", "convtasnet-speech-b4x1s", "convtasnet-speech")
for name in REFERENCES:
    card = reference_card(name)
    by_pair = ", ".join(f"{pair} {value:.2f}" for pair, value in card["test"].get("by pair", {}).items())
    print(f"{name:24s} trained on {card['dataset']!r:9s} for {card['steps']:5d} steps "
          f"({card['training_minutes']:.1f} min on a GPU); on the {card['test']['tracks']} test mixtures of "
          f"{card['dataset']!r}: {card['test']['value']:5.2f} dB SI-SDRi" + (f" ({by_pair})" if by_pair else ""))

# %% [markdown]
# Now all of them on the same real test mixtures as section 8, next to your
# own model:

# %%
gap_separators = {name: separators[name] for name in ("mixture (input)", "IRM oracle (STFT 32 ms)",
                                                      "Conv-TasNet (yours)", LONGER)}
gap_separators.update({name: track_separator(load_separator(reference(name)))
                       for name in REFERENCES if name not in gap_separators})
_, gap_table = si_sdri_table(gap_separators)
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
# **Question 4.** (3 points) Papers on wsj0-2mix report lower scores for
# mixtures of two speakers of the same sex than for mixed pairs (e.g. Kolbæk
# et al. 2017). Why would same-sex pairs be harder to separate? Look at the
# columns FF, FM and MM of the tables above and of the cards: do our models
# show it, and does the IRM? How far would you trust a difference between
# those columns?
#
# ### BEGIN SOLUTION
# Two voices of the same sex have similar pitch ranges and similar spectral
# envelopes (formants, timbre): their harmonics fall in the same frequency
# regions and often in the same bins, and the cues a separator uses to tell
# the voices apart, and to keep each voice on the same output through the
# utterance, are weaker. Expect more leakage and more speaker swaps. A male and
# a female voice differ by nearly an octave in pitch, so their harmonics
# interleave and the voices are easier to tell apart. The IRM knows the true
# sources: it never has to tell the voices apart, only to share the bins where
# they overlap, so it depends much less on the pair. Our columns are means over
# a handful of mixtures (the counts in the headers), for models a few dB above
# the mixture at best, whose scores vary by several dB from one mixture to the
# next (compare the mean and the worst 10 %): a difference of a fraction of a
# dB between columns is within noise, and even the cards, on the whole test
# split, only hint at a pattern. Trusting it would need many more mixtures per group (and a
# confidence interval), and a better-trained model.
# ### END SOLUTION

# %% [markdown]
# **Question 5.** The espeak model scores well on its own test split and below
# the mixture on real voices. Explain why, and say what it implies for choosing
# the training data of a separator.
#
# ### BEGIN SOLUTION
# The espeak set has 16 synthetic voices with perfectly regular pitch, timbre
# and timing, and no room, noise or microphone: the model learns cues that
# hold for those voices (their exact spectra, their rhythm) and meets none of
# them on real speech, whose variety (hundreds of readers, natural prosody,
# recording conditions) it never saw. Its score on its own test split measures
# only how well it separates *those* voices, which is why it looks good. A
# separator generalises to the conditions its training data covers: the data
# must resemble the target (real speakers, many of them, the same kind of
# recordings), and a test split drawn from the same synthetic source can't
# reveal the gap; only a test on real data does.
# ### END SOLUTION

# %% [markdown]
# **To go further.** Double `TRAIN_STEPS` and watch SI-SDRi move; set
# `causal=True, norm="cLN"` in a `ConvTasNetConfig` and measure what a
# real-time model loses; try `mask_activation="relu"`; on a GPU, train
# `convtasnet.PAPER_SMALL` with `tpsep train convtasnet --option N=128 --option L=40 ...`.
