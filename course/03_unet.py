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
# **You will write:** the U-Net's forward pass with its skip connections, and
# the L1 loss it is trained with (two exercises, each followed by a check cell).
# Then you train it, watch the loss fall, and, in a debugging lab, break it in
# the most common way, diagnose it, and fix it.

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import numpy as np
import torch
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
#   output of the same size. The bottleneck is 8 × 2 bins: the skips bring back
#   the fine time-frequency detail a mask needs.
# - The last decoder level outputs one channel; a **sigmoid** makes it a mask.
#
# Halving six times needs sizes divisible by 2⁶ = 64: 512 bins work, the 513 of
# a full STFT do not, and the model says so.

# %%
model = UNet(COURSE)
print("the paper's configuration:")
paper_model = UNet(PAPER)
try:
    model(torch.rand(1, 513, 128))
except ValueError as error:
    print("ValueError:", error)

# %%
x = mixture_mag[None]            # a batch of one: (1, 512, 128)
h = x.unsqueeze(1)               # a channel axis for Conv2d: (1, 1, 512, 128)
for level, block in enumerate(model.encoder, 1):
    h = block(h)
    print(f"encoder level {level}: {tuple(h.shape)}")

# %% [markdown]
# ### Exercise 1 · The forward pass with skip connections
#
# `model.encoder` and `model.decoder` are lists (`nn.ModuleList`) of the blocks
# above; each block is called like a function. Write the forward pass:
#
# 1. add the channel axis: `(batch, F, T)` → `(batch, 1, F, T)`;
# 2. run the encoder blocks, keeping every output (the skips);
# 3. the first decoder block takes the deepest encoder output alone;
# 4. every later decoder block takes `torch.cat([h, skip], dim=1)`, with the
#    skips taken from the deepest-but-one back to the first;
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
# ### Exercise 2 · The loss
#
# The paper trains on the **masked magnitude**, not on the mask:
# $\mathcal{L} = \operatorname{mean} | M \odot X - Y |$, with $X$ the
# mixture magnitude, $Y$ the vocals magnitude and $M$ the network's mask.
# A wrong mask in a silent bin costs nothing; a wrong mask in a loud bin costs a
# lot, as it does for the ear.

# %%
def l1_mask_loss(mask, mixture_mag, target_mag):
    """Mean absolute error between ``mask * mixture_mag`` and ``target_mag``.

    Args:
        mask, mixture_mag, target_mag: tensors of the same shape ``(batch, freq, frames)``.

    Returns:
        a scalar tensor (keep it a tensor: training differentiates it).
    """
    ### BEGIN SOLUTION
    return (mask * mixture_mag - target_mag).abs().mean()
    ### END SOLUTION


# %%
l1_mask_loss = check("03.l1_mask_loss", l1_mask_loss)

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
                                    (inputs[:2], targets[:2]), steps=50, factor=2, raise_on_failure=False)
print(result)

# %% [markdown]
# The findings point at the domains: `mask * input` lives in [0, 1] (the input
# is log-normalised) while the targets are raw magnitudes (their largest value is printed above). Where the
# target is above the input no mask in [0, 1] can reach it, and those loud bins
# dominate an L1 loss: the best possible loss is a large part of the loss at the
# start, so the curve barely moves whatever the network learns. The 513 bins
# and the -0.4 bias are smaller faults, but faults: zero-padding makes the
# network learn on 63 empty bins, and a mask that starts at 0.40 removes 60% of
# everything before it has learned anything.
#
# ### 4.3 Fix it
#
# The mask must multiply something in **the same domain as the target**. Keep
# raw magnitudes on both sides (the network's first BatchNorm takes care of the
# input's scale; a normalised *copy* could be fed to the network as long as the
# loss multiplies the raw mixture), crop to 512 bins, start the mask at 0.5.

# %%
def fixed_batch(mixture_513, vocals_513):
    """Raw magnitudes on both sides, 512 bins."""
    return spectral.crop_bins(mixture_513), spectral.crop_bins(vocals_513)


fixed_batches, fixed_probe = lab_batches(fixed_batch)
inputs, targets = fixed_batches[0]
print(diagnose.report(diagnose.check_domains(inputs, targets), "check_domains"))
tpsep.seed_everything(0)
print(diagnose.mask_statistics(UNet(LAB, verbose=False), inputs))
tpsep.seed_everything(0)
result = diagnose.overfit_one_batch(UNet(LAB, verbose=False), lab_loss_fn, (inputs[:2], targets[:2]),
                                    steps=50, factor=2, raise_on_failure=False)
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
        label="fixed: raw x mask vs raw target, 512 bins, bias 0")
ax.set_xlabel("training step")
ax.set_ylabel("probe loss / probe loss at step 0")
ax.set_ylim(0, 1.2)
ax.grid(alpha=0.3)
ax.legend(fontsize=8)
ax.set_title(f"the same patches, the same network, {LAB_STEPS} steps")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. What to remember
#
# - The U-Net maps a magnitude patch to a mask; skip connections carry the
#   detail the bottleneck loses.
# - Train on `mask * X` against `Y`, with `X` and `Y` in the same domain.
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
