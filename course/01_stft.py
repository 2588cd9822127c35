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
# **You will write** five functions, each followed by a check cell that tests
# it on fresh random inputs: `alias_frequency` (section 1), `frame_signal`
# (section 2), `stft` (section 4), `istft` (section 5) and `amplitude_to_db`
# (section 6). **You will answer** five written questions: aliasing and
# resampling (section 1), leakage and the window (section 2), when the inverse
# STFT is exact (section 5), choosing `n_fft` (section 7), and why the U-Net can
# drop the 513th bin (section 8).

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
# 16 − 9 = 7 kHz: the two sines give the same samples (up to sign). A sine at
# `f + rate` gives exactly the samples of one at `f`, so every frequency folds
# into the range from 0 to the Nyquist frequency.
#
# **Exercise.** Write `alias_frequency(frequency, rate)`, the frequency a
# sampled sine is heard at. It should work on a number and on a numpy array of
# frequencies (use `np.mod` and `np.minimum`, not `if`).

# %%
def alias_frequency(frequency, rate):
    """The frequency at which a sine of ``frequency`` Hz, sampled at ``rate`` Hz, is heard.

    Args:
        frequency: frequency in Hz (>= 0), a number or a numpy array.
        rate: sampling rate in Hz.

    Returns:
        the alias in ``[0, rate / 2]``, same shape as ``frequency``.
    """
    ### BEGIN SOLUTION
    folded = np.mod(frequency, rate)  # f and f + k * rate give the same samples
    return np.minimum(folded, rate - folded)  # f and rate - f too, up to the sign
    ### END SOLUTION


# %%
alias_frequency = check("01.alias_frequency", alias_frequency)

# %% [markdown]
# Your prediction against what the FFT of the samples shows, for sines up to
# well above the sampling rate:

# %%
for frequency in (440, 7_000, 9_000, 17_000, 25_000):
    x = np.sin(2 * np.pi * frequency * t)
    measured = np.argmax(np.abs(np.fft.rfft(x))) * rate / len(x)
    predicted = float(alias_frequency(frequency, rate))
    print(f"{frequency:6d} Hz: predicted {predicted:6.0f} Hz, measured {measured:6.0f} Hz")

# %% [markdown]
# **Question 1.** Using the samples `x[n] = sin(2π f n / rate)`, show that a
# 9 kHz sine and a 7 kHz sine sampled at 16 kHz give the same samples up to
# sign. Notebook 03 resamples the music to 8192 Hz. What would a 5 kHz cymbal
# partial become if the audio were not low-pass filtered before resampling, and
# why is that worse than losing it?
#
# ### BEGIN SOLUTION
# `sin(2π·9000·n/16000) = sin(2πn − 2π·7000·n/16000) = −sin(2π·7000·n/16000)`:
# `2πn` is a whole number of turns, so it changes nothing, and the sine is odd.
# At 8192 Hz the Nyquist frequency is 4096 Hz, and a 5000 Hz partial would fold
# to 8192 − 5000 = 3192 Hz (`alias_frequency(5000, 8192)`). It would be heard
# as a new tone in the middle of the band the model separates, unrelated to the
# harmonics of the music, and nothing after the sampling can tell it from a
# real 3192 Hz sound. Losing the partial only makes the sound duller; aliasing
# adds wrong content. So resamplers low-pass filter below the new Nyquist
# frequency first.
# ### END SOLUTION

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
# **Question 2.** Set the tone above to exactly 1000 Hz and run the cell
# again: the rectangular window now shows one clean line, the Hann window a
# line three bins wide. Why? Why is that no argument for the rectangular window
# on music?
#
# ### BEGIN SOLUTION
# The bins of a 512-point FFT at 16 kHz are 16000 / 512 = 31.25 Hz apart, and
# 1000 Hz is bin 32 exactly: the frame holds a whole number of periods (32).
# The DFT treats the frame as one period of a periodic signal; with whole
# periods that repetition is a pure sine without a jump, so all the energy
# lands in one bin. Hann multiplies the sine by a raised cosine, which moves
# energy to the two neighbouring bins (a wider main lobe), but it tapers the
# frame's ends to zero. Music almost never holds a whole number of periods:
# its frequencies are anything and change over time, so a rectangular frame
# cuts the wave mid-cycle, the jump at the edges spreads energy over the whole
# spectrum (far sidelobes), and a quiet source next to a loud one disappears
# under that leakage. A slightly wider peak is the smaller price.
# ### END SOLUTION

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
# and **overlap-add** the frames. Each sample has now been multiplied by the
# window twice in every frame that covers it, so divide by the overlap-added
# *squared* window. This works whenever that sum never vanishes. When the sum
# is even a constant (the **COLA**, constant overlap-add, condition), the
# division is one global scale and every sample is treated alike. The Hann
# window itself sums to a constant at hop `n_fft/2`, but its square, the sum
# that matters here, needs hop `n_fft/4`; the ripple printed below shows it:

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
# **Question 3.** (3 points) Your `istft` rebuilt the signal at hop 256. At hop
# 512 the overlap-added squared window is not constant, and at hop 768 (the
# U-Net's hop, notebook 03) it dips close to zero between frames (plot above).
# Is the reconstruction still exact at those hops? What changes when the
# spectrogram has been *modified* (multiplied by a mask) before the inverse,
# and why would you then prefer a hop where the sum is constant?
#
# ### BEGIN SOLUTION
# Yes: for an unmodified STFT every frame is `window · x`, and dividing the
# overlap-added `window² · x` by the overlap-added `window²` gives `x` back
# wherever the sum is not zero, constant or not (try it: `istft(stft(x, 1024,
# 512), 1024, 512, len(x))`). Hann at these hops never gives a zero sum; a hop
# longer than the frame would leave samples that no frame saw.
#
# A masked spectrogram is in general not the STFT of any signal: the frames
# disagree where they overlap, and each inverse-FFT frame carries an error
# spread over its whole length, not tapered like `window · x`. The output is
# `x` plus the errors weighted by `window / Σ window²`. Where the sum is small
# (hop 768, between frames) that weight is large, so the mask's errors are
# amplified in those samples, periodically; with a constant sum (hop 256)
# every sample gets the same small weight and the errors of overlapping frames
# average out. That is one reason to prefer a large overlap when a spectrogram
# will be masked; the U-Net's hop of 768 follows Jansson et al. (2017) and
# trades this for three times fewer frames than the constant-sum hop of 256.
# ### END SOLUTION

# %% [markdown]
# ## 6. Magnitude, phase and decibels
#
# Each STFT value is a complex number: its **magnitude** says how much of that
# frequency is present, its **phase** where the wave is in its cycle. Magnitudes
# span several orders of magnitude, so we look at them in **decibels**,
# `20·log10(|X| / max|X|)`: the factor is 20, not 10, because a magnitude is
# an amplitude and power goes as its square. The loudest bin is 0 dB; a silent
# bin would be −∞, so the scale is floored `top_db` below the maximum
# (`top_db = 80` is the usual choice). Most separation models in this course
# estimate magnitudes and borrow the phase of the mixture.
#
# **Exercise.** Write `amplitude_to_db(mag, top_db=80.0)`.

# %%
def amplitude_to_db(mag, top_db=80.0):
    """Magnitudes in decibels relative to the loudest bin, floored ``top_db`` below it.

    Args:
        mag: magnitudes ``|X|`` (>= 0), numpy array of any shape; may contain zeros.
        top_db: the floor, in dB below the maximum.

    Returns:
        ``20 log10(mag / mag.max())`` with ``mag`` clipped below at ``1e-10`` (so a zero
        gives a number), then every value below ``-top_db`` raised to ``-top_db``.
    """
    ### BEGIN SOLUTION
    db = 20 * np.log10(np.maximum(mag, 1e-10) / mag.max())
    return np.maximum(db, -top_db)
    ### END SOLUTION


# %%
amplitude_to_db = check("01.amplitude_to_db", amplitude_to_db)

# %% [markdown]
# Let's take a real track from the default data.

# %%
DATASET = "music"
track = data.load_dataset(DATASET, split="test")[0]
clip = track.mixture[0, : 8 * track.rate]
X = spectral.stft(clip, n_fft=1024, hop=256)
magnitudes = spectral.magnitude(X).numpy()
fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
extent = (0, len(clip) / track.rate, 0, track.rate / 2 / 1000)
panels = [(magnitudes, "magnitude (linear)"),
          (amplitude_to_db(magnitudes), "magnitude (dB)"),
          (spectral.phase(X).numpy(), "phase (radians)")]
for ax, (image, title) in zip(axes, panels):
    ax.imshow(np.asarray(image), origin="lower", aspect="auto", extent=extent, cmap="magma")
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
# **Question 4.** This notebook's music STFT uses `n_fft = 1024` at 16 kHz; the
# U-Net of notebook 03 uses `n_fft = 1024` at 8192 Hz. Give the bin spacing and
# the frame duration of each (with the formula). Which suits a bass line
# better, and which keeps drum hits sharper? Why not simply take a very long
# frame for everything?
#
# ### BEGIN SOLUTION
# Bin spacing `rate / n_fft`, frame duration `n_fft / rate`: at 16 kHz,
# 15.6 Hz and 64 ms; at 8192 Hz, 8 Hz and 125 ms. The same number of samples
# covers twice the time at the lower rate, so it resolves frequency twice as
# finely and time half as finely. A bass line's harmonics are a few tens of
# Hz apart (a low E is near 41 Hz), so it needs the finer spacing of the
# 8192 Hz front end; a drum hit lasts a few milliseconds and is smeared over
# the whole frame, so the 64 ms frame keeps it sharper. A very long frame
# mixes everything that happens during it (several notes, an onset and the
# silence before it): a mask can no longer follow a source that changes, and
# the errors of a mask spread over the whole frame, for instance as a
# "pre-echo" before an attack. One frame length is a compromise, which is what
# the explorer shows.
# ### END SOLUTION

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
# Compare the two reconstruction SNRs printed above: dropping the bin costs
# almost nothing audible, and restoring the mixture's own Nyquist bin makes the
# round trip exact to numerical precision. `tpsep.spectral.crop_bins`
# insists on exactly 513 bins, and `tpsep.spectral.istft` on exactly 513, so a
# forgotten crop or restore is a clear error instead of a silent
# misalignment:

# %%
try:
    spectral.istft(X512, hop=HOP)
except ValueError as error:
    print("ValueError:", error)

# %% [markdown]
# **Question 5.** (3 points) Why does `n_fft = 1024` give 513 bins, and why
# does the U-Net want 512? Using the Nyquist bin's share of the energy and the
# two SNRs printed above, explain why dropping the 513th bin is nearly free:
# where did its content go when the audio was resampled to 8192 Hz? What must
# the code do with that bin before the inverse STFT?
#
# ### BEGIN SOLUTION
# A real frame of `N` samples has a conjugate-symmetric DFT, `X[N−k] = conj X[k]`,
# so bins 0 … N/2 hold everything: `N/2 + 1 = 513`, from DC to the Nyquist
# frequency (4096 Hz here). The U-Net halves the frequency axis six times, so
# it needs a multiple of 2⁶ = 64: 512 is one, 513 is not.
# The Nyquist bin sits exactly at half the sampling rate, where the resampler's
# anti-aliasing low-pass filter (Question 1) has already removed almost
# everything, so its share of the energy is tiny (printed above) and zeroing
# it leaves a reconstruction SNR far above audibility; what is lost is a narrow
# band at the very top of the spectrum. The network never estimates that bin:
# before `istft` the code must put a 513th row back (`restore_bins`), zeros or
# the mixture's own bin, which makes the round trip exact; `istft` refuses
# 512 bins so that forgetting this is an error, not a silently shifted
# spectrum.
# ### END SOLUTION

# %% [markdown]
# ## Summary
#
# - Sampling folds every frequency into 0 … rate/2: filter before you resample.
# - A real frame of `N` samples has `N/2 + 1` frequency bins, from DC to Nyquist.
# - The STFT is the FFT of windowed, overlapping frames; weighted overlap-add inverts it
#   exactly wherever the overlap-added squared window does not vanish (COLA: it is constant).
# - Longer frames resolve frequency better and time worse.
# - Magnitudes are viewed in dB; the phase is needed to rebuild audio.
# - The U-Net sees 512 bins: the Nyquist bin is dropped, and restored before the inverse STFT.
#
# Next: **02 · masking**, where a spectrogram is multiplied by a mask to pull one source out.
