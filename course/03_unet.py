# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TP 03 · A U-Net that separates the singing voice
#
# In notebook 02 the ideal masks were computed from the true sources, which a
# real system never has. Here a network learns to *predict* the mask from the
# mixture alone: the U-Net of
#
# > A. Jansson, E. Humphrey, N. Montecchio, R. Bittner, A. Kumar, T. Weyde,
# > *Singing voice separation with deep U-Net convolutional networks*, ISMIR 2017.
#
# It reads a patch of the mixture's magnitude spectrogram (512 bins × 128
# frames at 8192 Hz, n_fft 1024, hop 768: about 12 s) and returns a mask in
# [0, 1] of the same shape; the vocals estimate is `mask * mixture`.
#
# **You will write** (five exercises, each followed by a check cell):
#
# 1. the encoder block (convolution, BatchNorm, LeakyReLU) and
# 2. the decoder block (transposed convolution, BatchNorm, ReLU, dropout);
# 3. the forward pass that joins them with the skip connections;
# 4. the L1 loss on masked magnitudes, with the guard that keeps PyTorch from
#    broadcasting a wrong shape into a wrong number;
# 5. in a debugging lab where the loss does not move, the fix itself: a batch
#    that compares like with like, accepted only when the pipeline can memorise
#    one batch.
#
# Then you train the U-Net, watch the loss fall, and answer four written
# questions (*Your answer here.* cells) on the skips, the 513 bins, the loss and
# the lab.

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

import tpsep
from tpsep import audio, data, diagnose, spectral
from tpsep.exercises import check
from tpsep.models.unet import COURSE, PAPER, UNet, UNetConfig
from tpsep.train import TrainConfig, fit

tpsep.setup_notebook(seed=0)
DATASET = "music"   # or a path to real data, e.g. a MUSDB18-HQ folder

# %% [markdown]
# ## 1. The training examples: spectrogram patches
#
# `SpectrogramPatchDataset` resamples every training track to 8192 Hz, takes
# its STFT, drops the Nyquist bin (the 512-bin convention of notebook 01) and
# serves random patches of 128 frames: `(mixture magnitude, vocals magnitude)`,
# both `(512, 128)`, raw magnitudes (no log, no normalisation).

# %%
train_tracks = data.load_dataset(DATASET, split="train")
valid_tracks = data.load_dataset(DATASET, split="valid")
train_set = data.SpectrogramPatchDataset(train_tracks, target="vocals", patches_per_epoch=400, seed=0)
valid_set = data.SpectrogramPatchDataset(valid_tracks, target="vocals", random=False)
mixture_mag, vocals_mag = train_set[0]
print(f"{len(train_tracks)} training tracks, {len(valid_tracks)} validation tracks")
print(f"one example: mixture {tuple(mixture_mag.shape)}, vocals {tuple(vocals_mag.shape)}, "
      f"{128 * COURSE.hop / COURSE.rate:.1f} s of audio")

# %%
def show_spectrograms(panels, title=None):
    """Plot ``{name: (512, frames) magnitude or mask}`` side by side, magnitudes in dB."""
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3), sharey=True)
    for ax, (name, values) in zip(np.atleast_1d(axes), panels.items()):
        values = torch.as_tensor(values)
        is_mask = name.endswith("mask")
        image = values if is_mask else spectral.to_db(values, ref=float(mixture_mag.max()))
        ax.imshow(image, origin="lower", aspect="auto", cmap="magma",
                  extent=[0, values.shape[-1] * COURSE.hop / COURSE.rate, 0, COURSE.rate / 2],
                  vmin=0 if is_mask else -80, vmax=1 if is_mask else 0)
        ax.set_title(name)
        ax.set_xlabel("time (s)")
    np.atleast_1d(axes)[0].set_ylabel("frequency (Hz)")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    plt.show()


show_spectrograms({"mixture": mixture_mag, "vocals": vocals_mag,
                   "ideal ratio mask": vocals_mag / (vocals_mag + (mixture_mag - vocals_mag).abs() + 1e-8)})

# %% [markdown]
# ## 2. The architecture
#
# ```
#  mixture |X|  (1, 512, 128)                                            mask (1, 512, 128) -> sigmoid
#     │ conv 5x5 /2                                                         ▲ deconv 5x5 x2
#   e1 (16, 256, 64) ─────────────────── skip (concatenate) ─────────────▶ [d5, e1] (32, 256, 64)
#     │                                                                     ▲
#   e2 (32, 128, 32) ───────────────────────── skip ─────────────────────▶ [d4, e2]
#     │          ...                                    ...                 ▲
#   e6 (bottleneck) ──────────────── deconv 5x5 x2 ─────────────────────▶ d1
# ```
#
# - **Encoder**, level by level: `Conv2d(5x5, stride 2)` → `BatchNorm` →
#   `LeakyReLU(0.2)`. Each level halves the frequency and time axes and
#   (usually) doubles the channels.
# - **Decoder**: `ConvTranspose2d(5x5, stride 2)` → `BatchNorm` → `ReLU`, with
#   dropout 0.5 on the first three levels. Each level doubles the axes back.
# - **Skip connections**: from the second decoder level on, the input is the
#   previous decoder output *concatenated* (along channels) with the encoder
#   output of the same size.
# - The last decoder level outputs one channel, without BatchNorm or ReLU; a
#   **sigmoid** makes it a mask.
#
# ### Exercise 1 · The encoder block
#
# Write `encoder_block(c_in, c_out)`: a module (an `nn.Sequential` is enough)
# that maps `(batch, c_in, F, T)` to `(batch, c_out, F/2, T/2)` for any even `F`
# and `T`, as the paper's encoder level does. The stride halves the axes only if
# the padding is right: with a 5x5 kernel, which padding turns `F` into exactly
# `F/2`? The LeakyReLU slope is the paper's.
#
# The check copies the weights of tpsep's block into yours and compares the two
# outputs, in evaluation mode and in training mode.

# %%
def encoder_block(c_in, c_out):
    """One encoder level: (batch, c_in, F, T) -> (batch, c_out, F/2, T/2)."""
    ### BEGIN SOLUTION
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel_size=5, stride=2, padding=2),  # padding 2: F -> F/2 exactly
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2),  # the paper's slope; PyTorch's default is 0.01
    )
    ### END SOLUTION


# %%
encoder_block = check("03.encoder_block", encoder_block)

# %% [markdown]
# Six of your blocks, with the course's channel widths, make the encoder. A
# mixture patch goes down to the bottleneck (fresh random weights: only the
# shapes matter here):

# %%
widths = COURSE.level_channels()            # [16, 32, 64, 128, 128, 128]
x = mixture_mag[None]                       # a batch of one: (1, 512, 128)
h = x.unsqueeze(1)                          # a channel axis for Conv2d: (1, 1, 512, 128)
encoder_outputs = []
with torch.no_grad():
    for level, (c_in, c_out) in enumerate(zip([1] + widths[:-1], widths), 1):
        h = encoder_block(c_in, c_out).eval()(h)
        encoder_outputs.append(h)
        print(f"encoder level {level}: {tuple(h.shape)}")

# %% [markdown]
# ### Exercise 2 · The decoder block
#
# Write `decoder_block(c_in, c_out, dropout)`: `(batch, c_in, F, T)` to
# `(batch, c_out, 2F, 2T)`, a transposed convolution (5x5, stride 2), BatchNorm,
# ReLU, then dropout with probability `dropout` (none when it is 0). A
# transposed convolution with stride 2 gives `2F - 1`, `2F` or `2F + 1` depending
# on its `padding` and `output_padding`: the formula for its output size is in
# the documentation of `torch.nn.ConvTranspose2d`. Find the pair that gives
# exactly `2F`.

# %%
def decoder_block(c_in, c_out, dropout=0.0):
    """One decoder level (not the last): (batch, c_in, F, T) -> (batch, c_out, 2F, 2T)."""
    ### BEGIN SOLUTION
    return nn.Sequential(
        # output size: (F - 1) * 2 - 2 * padding + 5 + output_padding = 2F for padding 2, output_padding 1
        nn.ConvTranspose2d(c_in, c_out, kernel_size=5, stride=2, padding=2, output_padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
        nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
    )
    ### END SOLUTION


# %%
decoder_block = check("03.decoder_block", decoder_block)

# %% [markdown]
# The first decoder level takes the bottleneck alone; its output has the size of
# the encoder's fifth level, so the two can be concatenated for the second
# decoder level:

# %%
with torch.no_grad():
    bottleneck, skip = encoder_outputs[-1], encoder_outputs[-2]
    up = decoder_block(widths[-1], widths[-2], dropout=0.5).eval()(bottleneck)
    print(f"decoder level 1: {tuple(bottleneck.shape)} -> {tuple(up.shape)}")
    print(f"concatenated with encoder level 5 {tuple(skip.shape)}: {tuple(torch.cat([up, skip], dim=1).shape)}")

# %% [markdown]
# `tpsep.models.unet.UNet` assembles the same blocks (tpsep's own copies of
# them). Halving six times needs sizes divisible by 2⁶ = 64: 512 bins work, the
# 513 of a full STFT do not, and the model says so.

# %%
model = UNet(COURSE)
print("the paper's configuration:")
paper_model = UNet(PAPER)
try:
    model(torch.rand(1, 513, 128))
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# ### Exercise 3 · The forward pass with skip connections
#
# `model.encoder` and `model.decoder` are lists (`nn.ModuleList`) of the blocks
# above; each block is called like a function. Write the forward pass:
#
# 1. add the channel axis: `(batch, F, T)` → `(batch, 1, F, T)`;
# 2. run the encoder blocks, keeping every output (the skips);
# 3. the first decoder block takes the deepest encoder output alone;
# 4. every later decoder block takes the previous decoder output concatenated
#    along the channels (`torch.cat(..., dim=1)`) with the encoder output *of the
#    same size*: which one is that, for the second decoder block? for the last?
# 5. remove the channel axis and apply the sigmoid.

# %%
def unet_forward(model, mixture_mag):
    """The mask of a U-Net for a batch of mixture magnitudes.

    Args:
        model: a ``tpsep.models.unet.UNet`` (use ``model.encoder`` and ``model.decoder``).
        mixture_mag: ``(batch, freq, frames)``.

    Returns:
        the mask, ``(batch, freq, frames)``, in [0, 1].
    """
    ### BEGIN SOLUTION
    h = mixture_mag.unsqueeze(1)
    skips = []
    for block in model.encoder:
        h = block(h)
        skips.append(h)
    h = model.decoder[0](skips[-1])
    for block, skip in zip(model.decoder[1:], reversed(skips[:-1])):
        h = block(torch.cat([h, skip], dim=1))
    return torch.sigmoid(h.squeeze(1))
    ### END SOLUTION


# %%
unet_forward = check("03.unet_forward", unet_forward)

# %%
model.eval()
with torch.no_grad():
    same = torch.allclose(unet_forward(model, x), model(x), atol=1e-6)
print(f"unet_forward(model, x) == model(x): {same}")

# %% [markdown]
# **Question 1.** For a patch of 512 bins × 128 frames, the bottleneck is
# 8 × 2 (the shapes printed above). What does one bottleneck value "see" of the
# spectrogram, in Hz and in seconds? Why, then, would a decoder *without* the
# skip connections give a poor mask, even with many channels? What exactly do the
# skips bring back?
#
# ### BEGIN SOLUTION
# Each axis is halved six times, so one bottleneck value summarises a block of
# 64 bins × 64 frames (plus the borders of the 5x5 kernels): 64 × 8 Hz = 512 Hz
# by 64 × 768 / 8192 ≈ 6 s. The bottleneck knows *what* is in the patch (a
# voice, roughly where, how loud) but not *where exactly*: a mask must keep or
# remove individual harmonics, which are 100-300 Hz apart for a voice, and
# follow note onsets to the frame (about 0.1 s). Without skips, the decoder would
# have to invent that detail from a coarse code: the mask would be blurred in
# frequency and time, leaking accompaniment between the harmonics. The skips
# hand each decoder level the encoder features at the same resolution
# (256 × 64, 128 × 32, ...), so the fine positions (which bin, which frame) come
# from the encoder, and the bottleneck's context only decides which of them to
# keep.
# ### END SOLUTION
#
# **Question 2.** The STFT of notebook 01 (n_fft 1024) has 513 bins, and the
# model above refuses them. Why can a depth-6 U-Net not take 513 bins? The course
# drops the Nyquist bin instead of zero-padding to 576 bins: why is that loss
# harmless for a voice at 8192 Hz, and what must be done with that bin before the
# inverse STFT?
#
# ### BEGIN SOLUTION
# Every encoder level halves the axis (stride 2) and every decoder level doubles
# it, so the sizes must be divisible by 2⁶ = 64 for the decoder's outputs to
# match the encoder's (the concatenation needs equal sizes) and the mask to come
# back at the input's size. 513 is odd: on the way down it becomes 257, 129, 65,
# 33, 17, 9, and on the way up 9 becomes 18, which cannot be concatenated with
# the encoder's 17. The dropped bin is the Nyquist
# frequency, 4096 Hz: a single bin at the edge, where the resampling filter has
# already removed nearly everything and where a voice has little energy; its
# loss is inaudible. Zero-padding to 576 would instead make the network learn on
# 63 empty bins (about a ninth of its input, and BatchNorm statistics skewed by
# zeros) for nothing. Before the inverse STFT the bin must be put back so that
# the spectrum has n_fft/2 + 1 bins again: tpsep gives it the mask of its
# neighbour (`restore_bins`, notebook 04), or zero.
# ### END SOLUTION
#
# ### Exercise 4 · The loss
#
# The paper does not compare the mask with an ideal mask: it compares the
# **masked mixture** with the vocals. With $X$ the mixture magnitude, $Y$ the
# vocals magnitude and $M$ the network's mask, all of shape (batch, F, T), the
# loss is the L1 distance between $M \odot X$ and $Y$, averaged over every bin of
# the batch (not summed: the value should not depend on the batch size or the
# patch length).
#
# One more requirement, the one that matters in practice: PyTorch broadcasts
# tensors of different shapes without a word. A target of shape (batch, 1, F, T)
# against a mask of shape (batch, F, T) gives a (batch, batch, F, T) difference
# and a number, the wrong one, and training goes on. Make your loss raise a
# `ValueError` that names the three shapes when they are not all equal.

# %%
def l1_mask_loss(mask, mixture_mag, target_mag):
    """L1 distance between the masked mixture and the target, averaged over every bin.

    Args:
        mask, mixture_mag, target_mag: tensors of the same shape ``(batch, freq, frames)``.

    Returns:
        a scalar tensor (keep it a tensor: training differentiates it).

    Raises:
        ValueError: if the three shapes are not the same.
    """
    ### BEGIN SOLUTION
    if not mask.shape == mixture_mag.shape == target_mag.shape:
        raise ValueError(f"l1_mask_loss needs three tensors of the same shape, got mask {tuple(mask.shape)}, "
                         f"mixture {tuple(mixture_mag.shape)}, target {tuple(target_mag.shape)}")
    return (mask * mixture_mag - target_mag).abs().mean()
    ### END SOLUTION


# %%
l1_mask_loss = check("03.l1_mask_loss", l1_mask_loss)

# %% [markdown]
# **Question 3.** One could instead train the network to output the ideal ratio
# mask of notebook 02, with the loss $\operatorname{mean}|M - \mathrm{IRM}|$.
# Compare the two losses: which time-frequency bins does each one care about,
# and which of the two errors does a listener hear? Why is the masked-magnitude
# loss also the safer one in the silent parts of a song?
#
# ### BEGIN SOLUTION
# A mask loss weighs every bin alike: an error of 0.5 on the mask costs the same
# in a nearly silent bin as in the loudest harmonic of the voice, so most of the
# training signal goes to the many quiet bins, which are inaudible. In
# $|M X - Y| = X \cdot |M - Y/X|$ the mask error is weighted by the mixture
# magnitude: errors count in proportion to the energy they let through or
# remove, which is what the ear hears (leaked accompaniment, missing voice) and
# what the SDR measures. In silent or near-silent bins the ideal mask is
# undefined or erratic (0/0, noise over noise: the IRM jumps between 0 and 1),
# and a mask loss would make the network chase that noise; the masked-magnitude
# loss gives those bins a weight near zero, so any mask there is fine.
# ### END SOLUTION


# %% [markdown]
# ## 3. Training
#
# `tpsep.train.fit` runs the loop you can read in `tpsep/train.py`: for each
# batch, `loss_fn(model, batch)`, backward, gradient clipping, an AdamW step;
# after each epoch, the validation loss. The budget here is a fixed number of
# steps (about two minutes on a laptop CPU), so the run is the same every time.
# The checkpoints go to `.runs/unet03/`, a hidden folder beside the notebook (it
# stays out of the file browser); notebooks 04 and 06 reuse them.

# %%
def loss_fn(model, batch):
    mixture_mag, target_mag = batch          # (batch, 512, 128) each
    return l1_mask_loss(model(mixture_mag), mixture_mag, target_mag)


tpsep.seed_everything(0)
model = UNet(COURSE)
train_loader = DataLoader(train_set, batch_size=8, shuffle=True, drop_last=True)
valid_loader = DataLoader(valid_set, batch_size=8)
extra = {"model_name": "unet", "model_config": vars(COURSE), "target": "vocals", "dataset": str(DATASET)}
history = fit(model, loss_fn, train_loader, valid_loader,
              TrainConfig(max_steps=200, lr=1e-3, device="cpu", out_dir=".runs/unet03", progress=False,
                          tensorboard=False),
              extra=extra)

# %%
# NBVAL_IGNORE_OUTPUT
# (the last digits of a training run depend on the CPU's floating-point kernels)
first, last = np.mean(history.train_loss[:10]), np.mean(history.train_loss[-10:])
print(f"{history.steps} steps: training loss {first:.3f} (first 10 steps) -> {last:.3f} (last 10 steps)")
print("validation loss after each epoch:", ", ".join(f"{v:.3f}" for v in history.valid_loss))

# %%
history.plot()
plt.show()

# %% [markdown]
# The loss falls fast at first (the mask learns "keep the loud harmonic
# bins in the singer's range"), then slowly. A validation patch shows what was
# learned:

# %%
model.eval()
mixture_mag, vocals_mag = valid_set[3]
with torch.no_grad():
    mask = model(mixture_mag[None])[0]
show_spectrograms({"mixture": mixture_mag, "true vocals": vocals_mag, "predicted mask": mask,
                   "mask * mixture": mask * mixture_mag}, title="a validation patch")

# %% [markdown]
# ## 4. Debugging lab: "the loss does not move"
#
# A classic report: *my U-Net trains, but the loss stays flat.* The pipeline
# below has four mistakes that often come together:
#
# 1. the network input is **log-normalised to [0, 1]** (`log1p(X) / log1p(max X)`),
#    a sensible input for a network, and the mask multiplies *that* in the loss;
# 2. the target is the ideal-ratio-mask estimate of the vocals **in the raw
#    domain**, `IRM * |X|`, whose loud bins reach several tens;
# 3. it keeps all **513 bins**, and silences the U-Net's shape error by
#    zero-padding to 576 bins;
# 4. the bias before the sigmoid is initialised at **-0.4** (a mask of 0.40).
#
# ### 4.1 Reproduce it

# %%
def full_stft_patches(tracks, count, seed=0):
    """``count`` random 128-frame patches of the full 513-bin magnitudes: (mixture, vocals), each (count, 513, 128)."""
    rng = np.random.default_rng(seed)
    mixtures, vocals = [], []
    for track in tracks[:6]:
        pair = audio.resample(np.stack([track.mixture.mean(0), track.stem("vocals").mean(0)]),
                                    track.rate, COURSE.rate)
        mags = spectral.magnitude(spectral.stft(pair, n_fft=1024, hop=768))
        for _ in range(count // 6 + 1):
            start = int(rng.integers(0, mags.shape[-1] - 128))
            mixtures.append(mags[0, :, start:start + 128])
            vocals.append(mags[1, :, start:start + 128])
    return torch.stack(mixtures[:count]), torch.stack(vocals[:count])


def broken_batch(mixture_513, vocals_513):
    """The broken pipeline: log-normalised input, raw-domain target, 513 bins."""
    inputs = torch.log1p(mixture_513) / torch.log1p(mixture_513.amax(dim=(-2, -1), keepdim=True))
    irm = vocals_513 / (vocals_513 + (mixture_513 - vocals_513).abs() + 1e-8)
    targets = irm * mixture_513                      # raw magnitudes
    return inputs, targets


class PadTo576(torch.nn.Module):
    """The "quick fix" for the shape error: zero-pad 513 bins to 576, crop the mask back to 513."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x):
        padded = torch.nn.functional.pad(x, (0, 0, 0, 576 - x.shape[-2]))
        return self.unet(padded)[:, : x.shape[-2]]


def lab_loss_fn(model, batch):
    inputs, targets = batch
    return l1_mask_loss(model(inputs), inputs, targets)


def train_and_probe(model, batches, probe, lr=1e-3, every=2):
    """Adam over ``batches``; every ``every`` steps, the loss on one fixed ``probe`` batch.

    The loss of a training batch jumps from batch to batch (a quiet patch has a small loss);
    the loss on the same probe batch shows whether the network is learning. Returns the probe's losses.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    probe_losses = []
    for step, batch in enumerate(batches):
        if step % every == 0:
            with torch.no_grad():
                probe_losses.append(lab_loss_fn(model, probe).item())
        loss = lab_loss_fn(model, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        probe_losses.append(lab_loss_fn(model, probe).item())
    return probe_losses


# a lighter U-Net (8 to 64 channels, no dropout) for the lab: the mistakes are in the pipeline, not the size
LAB = UNetConfig(channels=8, max_channels=64, dropout=0.0)
LAB_STEPS, LAB_BATCH = 20, 4
lab_mixture, lab_vocals = full_stft_patches(train_tracks, LAB_BATCH * (LAB_STEPS + 1))
print(f"lab patches: mixture {tuple(lab_mixture.shape)} (513 bins, the full STFT)")


def lab_batches(make_batch):
    """(training batches, probe batch) from the lab patches through a pipeline ``make_batch``."""
    batches = [make_batch(lab_mixture[i:i + LAB_BATCH], lab_vocals[i:i + LAB_BATCH])
               for i in range(0, len(lab_mixture), LAB_BATCH)]
    return batches[:-1], batches[-1]


broken_batches, broken_probe = lab_batches(broken_batch)
tpsep.seed_everything(0)
broken_losses = train_and_probe(PadTo576(UNet(replace(LAB, mask_bias=-0.4), verbose=False)),
                                broken_batches, broken_probe)
print(f"broken pipeline, loss on the probe batch: {broken_losses[0]:.3g} at the start, "
      f"{broken_losses[-1]:.3g} after {LAB_STEPS} steps ({broken_losses[-1] / broken_losses[0]:.0%})")

# %% [markdown]
# ### 4.2 Diagnose it with `tpsep.diagnose`
#
# Three checks, cheap enough to run before every long training:
# `check_domains` looks at the batch, `mask_statistics` at the fresh model's
# mask, `overfit_one_batch` asks the whole pipeline to memorise one batch.

# %%
inputs, targets = broken_batches[0]
print(diagnose.report(diagnose.check_domains(inputs, targets), "check_domains"))

# %%
tpsep.seed_everything(0)
print(diagnose.mask_statistics(PadTo576(UNet(replace(LAB, mask_bias=-0.4), verbose=False)), inputs))

# %%
tpsep.seed_everything(0)
result = diagnose.overfit_one_batch(PadTo576(UNet(replace(LAB, mask_bias=-0.4), verbose=False)), lab_loss_fn,
                                    (inputs[:2], targets[:2]), steps=30, factor=2, raise_on_failure=False)
print(result)

# %% [markdown]
# Read the findings before changing anything: each one names a symptom and
# where it comes from. `check_domains` compares what the mask multiplies with
# what the loss wants, `mask_statistics` describes the mask before any training,
# and `overfit_one_batch` says whether the pipeline as a whole can learn at all.
# The four mistakes are of three kinds: the domains (1 and 2), the bins (3), the
# bias (4). Which of them stopped the loss is Question 4, below.
#
# ### 4.3 Fix it
#
# ### Exercise 5 · A batch that compares like with like
#
# Write `fixed_batch(mixture_513, vocals_513)`, the replacement of
# `broken_batch`. It receives the lab's raw magnitudes of the mixture and of the
# vocals, `(batch, 513, frames)` each, and returns `(inputs, targets)` for the
# lab's loss `lab_loss_fn`, which stays as it is: it computes
# `l1_mask_loss(model(inputs), inputs, targets)`, so the mask multiplies the
# inputs. Your batch must work with the plain U-Net (no `PadTo576`), and a
# mask in [0, 1] must be able to reach its targets. The bias is the model's
# business: the cells after the check build the U-Net with its default bias, 0.
#
# The check gives your function fresh random magnitudes, runs `check_domains`
# on what it returns, checks that the targets are the vocals in the same domain
# and at the same scale as the inputs, and passes only if `overfit_one_batch`
# then makes a small fresh U-Net memorise your batch.

# %%
def fixed_batch(mixture_513, vocals_513):
    """(inputs, targets) for lab_loss_fn: the same domain on both sides of the loss, 512 bins."""
    ### BEGIN SOLUTION
    # raw magnitudes on both sides: mask * |X| can reach |Y| wherever the vocals are below the mixture,
    # and the network's first BatchNorm takes care of the input's scale
    return spectral.crop_bins(mixture_513), spectral.crop_bins(vocals_513)
    ### END SOLUTION


# %%
fixed_batch = check("03.fixed_batch", fixed_batch)

# %% [markdown]
# The same three diagnostics on the fixed pipeline, with the U-Net's default
# bias:

# %%
fixed_batches, fixed_probe = lab_batches(fixed_batch)
inputs, targets = fixed_batches[0]
print(diagnose.report(diagnose.check_domains(inputs, targets), "check_domains"))
tpsep.seed_everything(0)
print(diagnose.mask_statistics(UNet(LAB, verbose=False), inputs))
tpsep.seed_everything(0)
result = diagnose.overfit_one_batch(UNet(LAB, verbose=False), lab_loss_fn, (inputs[:2], targets[:2]),
                                    steps=30, factor=2, raise_on_failure=False)
print(result)

# %%
tpsep.seed_everything(0)
fixed_losses = train_and_probe(UNet(LAB, verbose=False), fixed_batches, fixed_probe)
print(f"fixed pipeline, loss on the probe batch: {fixed_losses[0]:.3g} at the start, "
      f"{fixed_losses[-1]:.3g} after {LAB_STEPS} steps ({fixed_losses[-1] / fixed_losses[0]:.0%})")

fig, ax = plt.subplots(figsize=(7, 3.5))
probe_steps = np.arange(len(fixed_losses)) * 2
ax.plot(probe_steps, np.array(broken_losses) / broken_losses[0], "o-",
        label="broken: log input x mask vs raw target, 513 bins, bias -0.4")
ax.plot(probe_steps, np.array(fixed_losses) / fixed_losses[0], "o-",
        label="fixed: fixed_batch (like with like), 512 bins, bias 0")
ax.set_xlabel("training step")
ax.set_ylabel("probe loss / probe loss at step 0")
ax.set_ylim(0, 1.2)
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
ax.set_title(f"the same patches, the same network, {LAB_STEPS} steps")
fig.tight_layout()
plt.show()

# %% [markdown]
# ### 4.4 One fix at a time
#
# Which mistake stopped the loss? Keep the broken pipeline and fix one kind of
# mistake at a time, then ask `overfit_one_batch` the same question as in 4.2
# (the same two patches, the same budget):

# %%
def cropped_broken_batch(mixture_513, vocals_513):
    """The broken domains (log-normalised input, raw target), but 512 bins."""
    inputs, targets = broken_batch(mixture_513, vocals_513)
    return spectral.crop_bins(inputs), spectral.crop_bins(targets)


def raw_513_batch(mixture_513, vocals_513):
    """Raw magnitudes on both sides, but all 513 bins (so the U-Net needs PadTo576)."""
    return mixture_513, vocals_513


one_fix = {
    "domains only (raw on both sides, 513 bins padded, bias -0.4)": (raw_513_batch, -0.4),
    "bins only    (log input vs raw target, 512 bins, bias -0.4)": (cropped_broken_batch, -0.4),
    "bias only    (log input vs raw target, 513 bins padded, bias 0)": (broken_batch, 0.0),
}
for name, (make_batch, bias) in one_fix.items():
    inputs, targets = make_batch(lab_mixture[:2], lab_vocals[:2])
    tpsep.seed_everything(0)
    network = UNet(replace(LAB, mask_bias=bias), verbose=False)
    if inputs.shape[-2] != 512:
        network = PadTo576(network)
    result = diagnose.overfit_one_batch(network, lab_loss_fn, (inputs, targets), steps=30, factor=2,
                                        raise_on_failure=False)
    print(f"{name}\n    {str(result).splitlines()[0]}")

# %% [markdown]
# **Question 4.** (3 points) Of the lab's mistakes (the domains, the 513 bins
# padded to 576, the bias of -0.4), which one kept the loss from moving, and how
# do you know? Support your answer with the outputs of 4.2 and 4.4, not with a
# general rule. The loss falls once that one is fixed: why are the other two
# still worth fixing?
#
# ### BEGIN SOLUTION
# The domain mismatch. Three pieces of evidence agree: (1) before any training,
# `check_domains` on the broken batch computes the lowest loss any mask in
# [0, 1] can reach, and it is most of the loss at the start (the percentage
# printed in 4.2): with a log-normalised input below 1 and raw targets up to
# several tens, `mask * input` cannot reach the loud target bins, and those bins
# dominate an L1 loss; no network, learning rate or number of epochs can go
# below that floor. (2) `overfit_one_batch` on the broken pipeline stalls far
# from the asked factor of 2 although two patches are trivial to memorise, so
# the fault is in the pipeline, not in the amount of data. (3) In 4.4, fixing
# the domains alone is enough for the overfit test to pass, with the padding and
# the bias still wrong, while fixing the bins alone or the bias alone leaves the
# loss where it was. The other two are real faults that the curve does not show:
# the zero-padding makes the network spend capacity and BatchNorm statistics on
# 63 empty bins and gives a model that will not fit the 512-bin pipeline of
# notebook 04; the bias of -0.4 starts every mask at 0.40 (`mask_statistics`
# flags it), so the first steps are spent undoing an arbitrary attenuation of
# everything, and a stronger bias would saturate the sigmoid and kill its
# gradient.
# ### END SOLUTION

# %% [markdown]
# ## 5. What to remember
#
# - The U-Net maps a magnitude patch to a mask: strided 5x5 convolutions down,
#   transposed ones up (padding and output padding chosen so that sizes halve
#   and double exactly), and skip connections that carry the detail the
#   bottleneck loses.
# - A loss should refuse tensors of different shapes: broadcasting turns a shape
#   bug into a wrong number, silently.
# - Train on `mask * X` against `Y`, with `X` and `Y` in the same domain and at
#   the same scale.
# - Before a long run: `check_domains` on a batch, `mask_statistics` on the
#   fresh model, `overfit_one_batch`. A pipeline that cannot memorise one batch
#   has a bug; more data or more epochs will not fix it.
# - 513 bins is a full STFT; the network wants 512: crop, and restore the bin
#   before the inverse STFT (notebook 04).
#
# From the command line, the same training (longer, or on a GPU):
#
# ```
# tpsep train unet --minutes 10 --batch-size 8 --lr 1e-3 --out runs/unet
# ```
