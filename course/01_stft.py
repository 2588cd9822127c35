# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TP 01 · The short-time Fourier transform
#
# Every separation system in this course either works on a **spectrogram** or
# learns something that plays its role. In this notebook you build the
# short-time Fourier transform (STFT) from scratch, invert it perfectly, and
# meet the convention that the U-Net of notebook 03 depends on: 512 frequency
# bins, not 513.
#
# **You will write:** `frame_signal`, `stft` and `istft` (three exercises, each
# followed by a check cell).

# %%
import librosa
import matplotlib.pyplot as plt
import numpy as np
import torch

import tpsep
from tpsep import data, spectral
from tpsep.audio import player
from tpsep.exercises import check

tpsep.setup_notebook(seed=0)

# %% [markdown]
# ## 1. Sampling
#
# A digital signal is a list of numbers taken every `1 / rate` seconds. A
# sampled sine keeps its frequency only if that frequency is below half the
# sampling rate, the **Nyquist frequency**. Above it, the samples are exactly
# those of a lower frequency: *aliasing*.

# %%
rate = 16_000
t = np.arange(rate) / rate  # one second
for frequency in (440, 7_000, 9_000):
    x = np.sin(2 * np.pi * frequency * t)
    heard = np.argmax(np.abs(np.fft.rfft(x))) * rate / len(x)
    print(f"a {frequency:5d} Hz sine sampled at {rate} Hz is heard at {heard:6.0f} Hz")

# %% [markdown]
# 9 kHz is above the 8 kHz Nyquist frequency, so it folds back to
# 16 − 9 = 7 kHz: the two sines give the same samples (up to sign). This is why
# audio is low-pass filtered before it is resampled.

# %% [markdown]
# ## 2. Framing and windows
#
# Music changes over time, so we look at short **frames**: `n_fft` samples
# starting every `hop` samples. A frame cut abruptly (a *rectangular* window)
# smears a pure tone across many frequencies, **spectral leakage**; a tapered
# window such as Hann trades a wider peak for far less leakage.

# %%
def frame_signal(x, n_fft, hop):
    """Cut a 1-D signal into overlapping frames.

    Args:
        x: signal, numpy array ``(samples,)``.
        n_fft: frame length.
        hop: distance between the starts of consecutive frames.

    Returns:
        ``(frames, n_fft)`` array whose row ``m`` is ``x[m * hop : m * hop + n_fft]``;
        only whole frames are kept, so ``frames = 1 + (samples - n_fft) // hop``.
    """
    ### BEGIN SOLUTION
    frames = 1 + (len(x) - n_fft) // hop
    starts = hop * np.arange(frames)[:, None]
    return x[starts + np.arange(n_fft)[None, :]]
    ### END SOLUTION


# %%
frame_signal = check("01.frame_signal", frame_signal)

# %%
n_fft = 512
tone = np.sin(2 * np.pi * 1_000.3 * t)  # 1000.3 Hz falls between two FFT bins
frame = frame_signal(tone, n_fft, n_fft // 2)[10]
frequencies = np.fft.rfftfreq(n_fft, 1 / rate)
fig, ax = plt.subplots(figsize=(9, 3.5))
for name in ("rectangular", "hann"):
    window = spectral.make_window(name, n_fft, dtype=torch.float64).numpy()
    spectrum = np.abs(np.fft.rfft(frame * window))
    ax.plot(frequencies, 20 * np.log10(spectrum / spectrum.max() + 1e-12), label=name)
ax.set(xlim=(0, 3_000), ylim=(-100, 5), xlabel="frequency (Hz)", ylabel="dB",
       title="one frame of a 1000.3 Hz sine: leakage depends on the window")
ax.legend()
plt.show()

# %% [markdown]
# ## 3. The DFT
#
# The discrete Fourier transform of a frame `x[n]`, `n = 0 … N−1`, is
# `X[k] = Σₙ x[n] e^{−2iπkn/N}`. For a real signal, `X[N−k]` is the complex
# conjugate of `X[k]`, so only bins `k = 0 … N/2` carry information:
# **`N/2 + 1` bins**, from 0 Hz (DC) to the Nyquist frequency. `np.fft.rfft`
# returns exactly those. Here is the DFT as a matrix product, against the FFT:

# %%
N = 16
n = np.arange(N)
dft_matrix = np.exp(-2j * np.pi * np.outer(n, n) / N)
x = np.random.default_rng(0).standard_normal(N)
print("DFT == FFT:", np.allclose(dft_matrix @ x, np.fft.fft(x)))
print("rfft keeps", len(np.fft.rfft(x)), "bins out of", N)

# %% [markdown]
# ## 4. The STFT from scratch
#
# The STFT is the DFT of every windowed frame. Like `torch.stft(center=True)`
# and `librosa.stft`, we first pad `n_fft // 2` samples on both sides
# (reflecting the signal) so that frame `m` is *centred* on sample `m * hop`.
#
# **Exercise.** Write `stft(x, n_fft, hop)`: pad with `np.pad(..., mode="reflect")`,
# frame with your `frame_signal`, multiply by the periodic Hann window
# `spectral.make_window("hann", n_fft, dtype=torch.float64).numpy()`, apply
# `np.fft.rfft` to each frame, and return `(bins, frames)` (frequency first, as
# every spectrogram in this course).

# %%
def stft(x, n_fft, hop):
    """Short-time Fourier transform with a Hann window and centred frames.

    Args:
        x: signal ``(samples,)``.
        n_fft: frame and FFT length.
        hop: hop size.

    Returns:
        complex array ``(n_fft // 2 + 1, frames)`` with ``frames = 1 + samples // hop``.
    """
    ### BEGIN SOLUTION
    padded = np.pad(x, n_fft // 2, mode="reflect")
    window = spectral.make_window("hann", n_fft, dtype=torch.float64).numpy()
    frames = frame_signal(padded, n_fft, hop) * window
    return np.fft.rfft(frames, axis=1).T
    ### END SOLUTION


# %%
stft = check("01.stft", stft)

# %% [markdown]
# Your function, `torch.stft` (through `tpsep.spectral.stft`) and `librosa.stft`
# should agree to numerical precision:

# %%
x = np.random.default_rng(1).standard_normal(rate)
ours = stft(x, 1024, 256)
with_torch = spectral.stft(x, n_fft=1024, hop=256).numpy()
with_librosa = librosa.stft(x, n_fft=1024, hop_length=256, window="hann", center=True, pad_mode="reflect")
print("shape:", ours.shape)
print(f"max |ours - torch|   = {np.abs(ours - with_torch).max():.1e}")
print(f"max |ours - librosa| = {np.abs(ours - with_librosa).max():.1e}")

# %% [markdown]
# ## 5. Inverting the STFT: perfect reconstruction
#
# To go back, take the inverse FFT of each frame, multiply by the window again,
# and **overlap-add** the frames. Where frames overlap, the window has been
# applied twice, so divide by the overlap-added *squared* window. This works
# whenever that sum never vanishes; when the sum is even a constant (the
# **COLA**, constant overlap-add, condition), nothing needs correcting in the
# middle of the signal. Hann with hop `n_fft/2` or `n_fft/4` satisfies it:

# %%
n_fft = 1024
window = spectral.make_window("hann", n_fft, dtype=torch.float64).numpy()
fig, ax = plt.subplots(figsize=(9, 3))
for divisor in (2, 4, 4 / 3):
    hop = int(n_fft / divisor)
    total = np.zeros(12 * n_fft)
    for start in range(0, len(total) - n_fft + 1, hop):
        total[start:start + n_fft] += window**2
    middle = total[2 * n_fft:-2 * n_fft]
    ripple = (middle.max() - middle.min()) / middle.mean()
    ax.plot(total, label=f"hop = {hop}")
    print(f"hop {hop:4d}: overlap-added squared window varies by {100 * ripple:5.1f} % in the middle")
ax.set(xlabel="sample", title="overlap-added squared Hann windows")
ax.legend()
plt.show()

# %% [markdown]
# **Exercise.** Write `istft(X, n_fft, hop, length)`, the inverse of your `stft`.

# %%
def istft(X, n_fft, hop, length):
    """Inverse of :func:`stft` by weighted overlap-add.

    Args:
        X: complex spectrogram ``(n_fft // 2 + 1, frames)``.
        n_fft, hop: as given to ``stft``.
        length: number of samples of the original signal.

    Returns:
        real signal ``(length,)``.
    """
    ### BEGIN SOLUTION
    window = spectral.make_window("hann", n_fft, dtype=torch.float64).numpy()
    frames = np.fft.irfft(X.T, n=n_fft, axis=1) * window
    total = n_fft + hop * (len(frames) - 1)
    signal, weight = np.zeros(total), np.zeros(total)
    for m, frame in enumerate(frames):
        signal[m * hop:m * hop + n_fft] += frame
        weight[m * hop:m * hop + n_fft] += window**2
    signal = signal / np.where(weight > 1e-11, weight, 1.0)
    return signal[n_fft // 2:n_fft // 2 + length]
    ### END SOLUTION


# %%
istft = check("01.istft", istft)

# %%
y = istft(stft(x, 1024, 256), 1024, 256, len(x))
print(f"reconstruction error: max |x - istft(stft(x))| = {np.abs(x - y).max():.1e}")

# %% [markdown]
# ## 6. Magnitude, phase and decibels
#
# Each STFT value is a complex number: its **magnitude** says how much of that
# frequency is present, its **phase** where the wave is in its cycle. Magnitudes
# span several orders of magnitude, so we look at them in **decibels**,
# `20·log10(|X| / max|X|)`. Most separation models in this course estimate
# magnitudes and borrow the phase of the mixture.
#
# Let's take a real track from the default data.

# %%
DATASET = "music"
track = data.load_dataset(DATASET, split="test")[0]
clip = track.mixture[0, : 8 * track.rate]
X = spectral.stft(clip, n_fft=1024, hop=256)
fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
extent = (0, len(clip) / track.rate, 0, track.rate / 2 / 1000)
panels = [(spectral.magnitude(X), "magnitude (linear)"),
          (spectral.to_db(spectral.magnitude(X)), "magnitude (dB)"),
          (spectral.phase(X), "phase (radians)")]
for ax, (image, title) in zip(axes, panels):
    ax.imshow(image.numpy(), origin="lower", aspect="auto", extent=extent, cmap="magma")
    ax.set(title=title, xlabel="time (s)", ylabel="kHz")
fig.tight_layout()
plt.show()

# %% [markdown]
# On a linear scale only the loudest partials show; in dB the whole structure
# appears. The phase looks like noise, yet without it the audio cannot be
# rebuilt correctly.

# %% [markdown]
# ## 7. The time/frequency trade-off
#
# A frame of `n_fft` samples at rate `r` resolves frequencies `r / n_fft` Hz
# apart, but smears time over `n_fft / r` seconds. Two close tones and a click:

# %%
signal = np.sin(2 * np.pi * 1_000 * t) + np.sin(2 * np.pi * 1_060 * t)
signal[rate // 2] += 40.0  # a click in the middle
fig, axes = plt.subplots(1, 2, figsize=(12, 3.5))
for ax, size in zip(axes, (128, 4096)):
    image = spectral.to_db(spectral.magnitude(spectral.stft(signal, n_fft=size, hop=size // 8)))
    ax.imshow(image.numpy(), origin="lower", aspect="auto", cmap="magma", extent=(0, 1, 0, rate / 2))
    ax.set(ylim=(500, 1_600), title=f"n_fft = {size}: {rate / size:.0f} Hz × {1000 * size / rate:.0f} ms",
           xlabel="time (s)", ylabel="Hz")
fig.tight_layout()
plt.show()

# %% [markdown]
# With 128 samples the click is sharp but the two tones merge; with 4096 the
# tones are separate lines but the click is smeared over a quarter of a second.
# Explore this yourself:

# %%
from tpsep.widgets import SpectrogramExplorer

SpectrogramExplorer(clip, track.rate, title=track.name)

# %% [markdown]
# ## 8. 513 bins, and the 512-bin convention
#
# With `n_fft = 1024` the STFT has `1024 / 2 + 1 = 513` bins: DC, 511 bins in
# between, and the Nyquist bin. The U-Net of Jansson et al. (2017) halves the
# frequency axis six times, which needs a multiple of 64: 513 can't be halved
# cleanly, 512 can. So the network sees **512 bins**: we drop the top one, the
# Nyquist bin, and put it back before inverting.
#
# The paper works at 8192 Hz with `n_fft = 1024` and `hop = 768`, so the
# Nyquist bin sits at 4096 Hz. What does dropping it cost on real audio?

# %%
from tpsep.audio import resample

RATE, N_FFT, HOP = 8192, 1024, 768   # the U-Net's front end (notebook 03)
audio = resample(track.mixture[0], track.rate, RATE)
# whole hops: with hop > n_fft / 2 the last centred frame can end before the signal does,
# and the samples after it would be lost (tpsep's istft refuses to invent them)
audio = np.pad(audio, (0, -len(audio) % HOP))
X = spectral.stft(audio, n_fft=N_FFT, hop=HOP)
X512 = spectral.crop_bins(X)
energy = spectral.magnitude(X) ** 2
print(f"STFT: {tuple(X.shape)} -> network input: {tuple(X512.shape)}")
print(f"share of the energy in the Nyquist bin: {float(energy[-1].sum() / energy.sum()):.2e}")

zeroed = spectral.istft(spectral.restore_bins(X512), hop=HOP, length=len(audio)).numpy()
restored = spectral.istft(spectral.restore_bins(X512, full=X), hop=HOP, length=len(audio)).numpy()
for name, estimate in (("Nyquist bin set to zero", zeroed), ("Nyquist bin restored from the mixture", restored)):
    error = audio - estimate
    snr = 10 * np.log10(np.sum(audio**2) / max(np.sum(error**2), 1e-20))
    print(f"{name:38s}: reconstruction SNR {snr:6.1f} dB")

# %% [markdown]
# Dropping the bin costs almost nothing audible, and restoring the mixture's
# own Nyquist bin makes the round trip exact. `tpsep.spectral.crop_bins`
# insists on exactly 513 bins, and `tpsep.spectral.istft` on exactly 513, so a
# forgotten crop or restore is a clear error instead of a silent
# misalignment:

# %%
try:
    spectral.istft(X512, hop=HOP)
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# ## Summary
#
# - A real frame of `N` samples has `N/2 + 1` frequency bins, from DC to Nyquist.
# - The STFT is the FFT of windowed, overlapping frames; weighted overlap-add inverts it exactly.
# - Longer frames resolve frequency better and time worse.
# - Magnitudes are viewed in dB; the phase is needed to rebuild audio.
# - The U-Net sees 512 bins: the Nyquist bin is dropped, and restored before the inverse STFT.
#
# Next: **02 · masking**, where a spectrogram is multiplied by a mask to pull one source out.
