# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TP 00 · Welcome: audio source separation, from the STFT to TF-GridNet
#
# Source separation takes a **mixture** — a song, a noisy conversation — and
# recovers the **sources** that were added together to make it: the singer, the
# bass, the drums; or each of two people talking at once.
#
# In this course you build separation systems yourself, one notebook at a time,
# and you listen to every result. This first notebook only checks that your
# setup works and introduces the data you will use throughout.
#
# **How the notebooks work.** Read, run every cell from top to bottom, and fill
# in the exercises: functions whose body says `# YOUR CODE HERE`. The cell
# after each exercise *checks* your function on fresh random inputs and tells
# you what is right or wrong. If you leave an exercise unfinished, the check
# says so and the notebook continues with the course's reference
# implementation, so later sections always run.

# %% [markdown]
# ## 1. Check the setup
#
# The course library is `tpsep`. It needs PyTorch; a GPU makes training faster
# but is never required. (The versions below are those of your machine.)

# %%
# NBVAL_IGNORE_OUTPUT
import platform

import librosa
import numpy as np
import torch

import tpsep

print(f"python {platform.python_version()} · torch {torch.__version__} · numpy {np.__version__} "
      f"· librosa {librosa.__version__} · tpsep {tpsep.__version__}")
if torch.cuda.is_available():
    device = f"CUDA ({torch.cuda.get_device_name(0)})"
elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
    device = "MPS (Apple GPU)"
else:
    device = f"CPU ({torch.get_num_threads()} threads)"
print("training will run on:", device)

# %%
import matplotlib.pyplot as plt

from tpsep import data
from tpsep.audio import player

tpsep.setup_notebook(seed=0)

# %% [markdown]
# ## 2. The data
#
# Real multitrack recordings (MUSDB18, for instance) are large, licensed, and
# need a download. So that every notebook runs offline on a laptop, tpsep
# **renders its own default datasets** the first time you ask for them (one to
# two minutes, then they are cached on disk):
#
# - **`music`** — Bach chorales from music21's corpus as four MUSDB-like stems:
#   `vocals` (the soprano line, sung on the lyrics by a singer drawn for each
#   track), `bass`, `other` (alto and tenor) and `drums`, played on sampled
#   instruments from a General MIDI SoundFont and recorded in simulated rooms.
#   The mixture is the exact sum of the stems.
# - **`speech`** — two people talking at once: real recordings of LibriSpeech
#   readers (shipped inside tpsep), mixed two by two at 8 kHz the way the
#   LibriMix benchmark mixes them.
#
# If you have real data, set `DATASET` to its folder (a MUSDB18 or MUSDB18-HQ
# root, any folder of `<track>/<stem>.wav`, or a LibriMix folder) and every
# notebook works the same.

# %%
DATASET = "music"  # or a path such as "~/data/musdb18hq"

tracks = data.load_dataset(DATASET, split="train")
data.describe(tracks).head()

# %%
for split in ("train", "valid", "test"):
    split_tracks = data.load_dataset(DATASET, split=split)
    minutes = sum(t.duration for t in split_tracks) / 60
    print(f"{split:5s}: {len(split_tracks):3d} tracks, {minutes:5.1f} minutes")

# %% [markdown]
# ## 3. Listen
#
# One track, stem by stem, then the mixture. The stems are played at their true
# level (no normalisation), so a quiet stem sounds quiet.

# %%
track = tracks[0]
print(f"{track.name}: {track.duration:.1f} s at {track.rate} Hz, "
      f"{track.mixture.shape[0]} channel(s), stems {list(track.source_names)}")

# %%
from IPython.display import display

clip = slice(0, 6 * track.rate)  # the first 6 seconds
for name in track.source_names:
    print(name)
    display(player(track.sources[name][:, clip], track.rate, normalize=False))
print("mixture")
display(player(track.mixture[:, clip], track.rate, normalize=False))

# %% [markdown]
# The mixture is exactly the sum of the stems, sample for sample:

# %%
stem_sum = sum(track.sources[name] for name in track.source_names)
print("largest |mixture - sum of stems| =", float(np.abs(track.mixture - stem_sum).max()))

# %% [markdown]
# ## 4. Look
#
# A waveform shows loudness over time; a **spectrogram** shows which frequencies
# sound when (notebook 01 builds it from scratch). Look for the horizontal lines
# of the voice's harmonics, the low bass notes, and the vertical strokes of the
# drums.

# %%
from tpsep.spectral import magnitude, stft, to_db

seconds = np.arange(track.mixture.shape[1])[clip] / track.rate
fig, axes = plt.subplots(len(track.source_names) + 1, 2, figsize=(12, 9), sharex="col",
                         gridspec_kw={"width_ratios": [1, 1.4]})
for row, name in enumerate((*track.source_names, "mixture")):
    signal = track.mixture[0, clip] if name == "mixture" else track.sources[name][0, clip]
    axes[row, 0].plot(seconds, signal, linewidth=0.3)
    axes[row, 0].set(ylabel=name, ylim=(-1, 1))
    spec = to_db(magnitude(stft(signal, n_fft=1024, hop=256)), top_db=80).numpy()
    axes[row, 1].imshow(spec, origin="lower", aspect="auto", cmap="magma",
                        extent=(0, seconds[-1], 0, track.rate / 2 / 1000))
    axes[row, 1].set(ylabel="kHz")
axes[-1, 0].set_xlabel("time (s)")
axes[-1, 1].set_xlabel("time (s)")
axes[0, 0].set_title("waveform")
axes[0, 1].set_title("spectrogram (dB)")
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 5. The course map
#
# | # | notebook | you build | you see and hear |
# |---|---|---|---|
# | 00 | welcome | — | the stems and the mixture |
# | 01 | STFT | framing, windows, the STFT and its inverse from scratch | the spectrogram explorer; why 513 bins and the 512-bin convention |
# | 02 | masking | ideal binary / ratio / Wiener-like masks, SI-SDR | the mask explorer; the oracle table every model is compared with |
# | 03 | U-Net | the singing-voice U-Net of Jansson et al. (2017), its L1 loss | a falling loss curve; a lab where the loss does not move, and its fix |
# | 04 | reconstruction | patch stitching and the inverse STFT | separated vocals you can hear and score |
# | 05 | Conv-TasNet | a learned filterbank and a dilated convolutional separator | two voices pulled apart, against the ideal mask |
# | 06 | band-split | a band-split RNN with complex masks | training that stays finite |
# | 07 | TF-GridNet | intra-frame, sub-band and full-band attention blocks | per-sample results, best and worst examples |
# | 08 | leaderboard | the Pareto front of score against cost; what each DDP process reads | every model and oracle on one test set; real recordings; GPU and torchrun commands |
#
# Next: **01 · STFT**.
