# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TP 02 · Masking, and measuring separation
#
# Before any network, let us see what a **mask** can do at best. A mask is a
# number between 0 and 1 for every time-frequency bin of the mixture's STFT: it
# says how much of that bin belongs to the source we want. If we cheat and build
# the mask from the true sources, we get an **oracle** (ideal) mask: a model
# trained to predict such a mask on this STFT can hardly do better. Every later model of the
# course (U-Net, Conv-TasNet, band-split, GridNet) is compared with the table this
# notebook produces.
#
# We also learn to **measure** separation as the field does: SI-SDR, and the
# BSS Eval SDR/SIR/SAR computed by `museval`, with the SiSEC aggregation.
#
# **You will write** four functions, each followed by a check cell that tests
# it on fresh random inputs: `ideal_binary_mask` (section 2),
# `ideal_ratio_mask` (section 3), `mask_to_audio` (section 4) and `si_sdr`
# (section 5). **You will answer** four written questions: why no real mask is
# perfect (section 1), what the mixture's own score means (section 5), the IBM
# against the IRM in the oracle table (section 7), and why SDR and SI-SDR
# disagree (section 8).

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import tpsep
from tpsep import data, evaluation, masks, metrics, spectral
from tpsep.audio import player
from tpsep.exercises import check

tpsep.setup_notebook(seed=0)
torch.set_num_threads(1)

# %% [markdown]
# ## 1. The data and the STFT we mask
#
# The default dataset renders Bach chorales into four stems (drums, bass, other,
# vocals) at 16 kHz. To work on real music, set `DATASET` to the path of a
# MUSDB18-HQ folder; nothing else changes. We separate the **vocals** from the
# **accompaniment** (the sum of the three other stems).
#
# The STFT: `n_fft = 1024` with a hop of 256 samples; the frame length, the
# overlap and the bin spacing this gives are printed below.

# %%
DATASET = "music"
tracks = data.load_dataset(DATASET, split="test")
track = tracks[0]
print(track)

N_FFT, HOP = 1024, 256
rate = track.rate
print(f"STFT: frames of {1000 * N_FFT / rate:.0f} ms overlapping by {100 * (1 - HOP / N_FFT):.0f} %, "
      f"{N_FFT // 2 + 1} bins {rate / N_FFT:.1f} Hz apart")
start, seconds = 4 * rate, 10  # a 10 s excerpt for the interactive parts
clip = slice(start, start + seconds * rate)
mixture = track.mixture[0, clip]
vocals = track.stem("vocals")[0, clip]
accompaniment = track.stem("accompaniment")[0, clip]

X = spectral.stft(mixture, n_fft=N_FFT, hop=HOP)  # complex (513, frames)
S = spectral.stft(vocals, n_fft=N_FFT, hop=HOP)
N = spectral.stft(accompaniment, n_fft=N_FFT, hop=HOP)
print("mixture STFT:", tuple(X.shape), X.dtype)
player(mixture[: 6 * rate], rate)  # the first 6 s (players are stored in the notebook)

# %%
def show_spectrograms(images, titles, rate, duration, cmap="magma", vmin=-80, vmax=0, label="dB"):
    """Draw spectrogram-like images ``(freq, frames)`` side by side."""
    figure, axes = plt.subplots(1, len(images), figsize=(4.2 * len(images), 3.2), sharey=True)
    for ax, image, title in zip(np.atleast_1d(axes), images, titles):
        shown = ax.imshow(np.asarray(image), origin="lower", aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax,
                          extent=(0, duration, 0, rate / 2))
        ax.set(title=title, xlabel="time (s)")
    np.atleast_1d(axes)[0].set_ylabel("frequency (Hz)")
    figure.colorbar(shown, ax=axes, label=label)
    plt.show()


top = float(X.abs().max())
show_spectrograms([spectral.to_db(Z.abs(), ref=top) for Z in (X, S, N)],
                  ["mixture", "vocals", "accompaniment"], rate, seconds)

# %% [markdown]
# The vocals are a few harmonic lines; the accompaniment fills much of the
# picture. Where the two do not overlap, keeping or removing a bin is enough to
# separate them. Where they overlap, no real-valued mask can be perfect: the
# mask rescales the mixture bin, it cannot undo the mixing of two phases.
#
# **Question 1.** In a bin where both sources are present, `X = S + N` as
# complex numbers. Why can no real mask `M` give `M·X = S` there in general?
# Which real `M` brings `M·X` closest to `S`, and can it leave the range
# [0, 1]? What would a system need to do better?
#
# ### BEGIN SOLUTION
# `M·X` has the phase of `X` (or the opposite one if `M < 0`), while `S` has its
# own phase: `M·X = S` needs `S` and `X` to point the same way, which happens
# only if `N` is in phase with `S` or silent. Minimising `|M·X − S|²` over real
# `M` projects `S` on the direction of `X`:
# `M = Re(S·conj(X)) / |X|² = (|S| / |X|)·cos(θ_S − θ_X)`, the phase-sensitive
# mask (Erdogan et al., 2015). It is negative when the phases differ by more
# than 90°, and above 1 when `N` partly cancels `S` so that `|X| < |S|`; a
# mask in [0, 1] such as the IRM is therefore not even the best real mask. To
# do better a system must change the phase: a complex mask (notebook 06), a
# phase estimate, or work on the waveform directly (Conv-TasNet, notebook 05).
# ### END SOLUTION

# %% [markdown]
# ## 2. The ideal binary mask (IBM)
#
# Keep a bin if the target dominates there. With `|S|` the magnitude of the
# target and `|N|` that of everything else, the local signal-to-noise ratio is
# `20 log10(|S| / |N|)` dB; the IBM is 1 where it exceeds a threshold (0 dB:
# "the target is louder"), else 0.

# %%
def ideal_binary_mask(target_mag, other_mag, threshold_db=0.0):
    """The ideal binary mask.

    Args:
        target_mag: ``|S|``, magnitude of the target, numpy ``(freq, frames)``.
        other_mag: ``|N|``, magnitude of everything else, same shape.
        threshold_db: keep a bin where ``20 log10(|S| / |N|) > threshold_db``.

    Returns:
        float array of 0.0 and 1.0, ``(freq, frames)``.
    """
    ### BEGIN SOLUTION
    gain = 10.0 ** (threshold_db / 20.0)
    return (target_mag > gain * other_mag).astype(float)
    ### END SOLUTION


# %%
ideal_binary_mask = check("02.ideal_binary_mask", ideal_binary_mask)

# %% [markdown]
# ## 3. The ideal ratio mask (IRM)
#
# A softer choice: share each bin in proportion to the sources' magnitudes,
# `|S|^p / (|S|^p + |N|^p)`. With `p = 1` (magnitude IRM) the masks of the two
# sources add up to one; `p = 2` (power IRM, "IRM2") leans harder towards the
# louder source, between the magnitude IRM and the binary mask.

# %%
def ideal_ratio_mask(target_mag, other_mag, power=1.0):
    """The ideal ratio mask ``|S|^p / (|S|^p + |N|^p)``.

    Args:
        target_mag: ``|S|``, numpy ``(freq, frames)``.
        other_mag: ``|N|``, same shape.
        power: the exponent ``p`` (1: magnitude, 2: power).

    Returns:
        array of values in [0, 1], ``(freq, frames)``; 0 where both are silent.
    """
    ### BEGIN SOLUTION
    target_p, other_p = target_mag ** power, other_mag ** power
    return target_p / (target_p + other_p + 1e-10)
    ### END SOLUTION


# %%
ideal_ratio_mask = check("02.ideal_ratio_mask", ideal_ratio_mask)

# %% [markdown]
# The **Wiener-like mask** is the same ratio for power spectral densities. A
# Wiener filter needs the sources' *average* power in each bin, not the exact
# power of this frame, so `tpsep.masks.wiener_mask` averages `|S|^2` and `|N|^2`
# over a few neighbouring frames before taking the ratio (with one frame it is
# exactly the power IRM). Here are the four masks on the excerpt.

# %%
S_mag, N_mag = S.abs().numpy(), N.abs().numpy()
oracle_masks = {
    "IBM": np.asarray(ideal_binary_mask(S_mag, N_mag)),
    "IRM, p = 1": np.asarray(ideal_ratio_mask(S_mag, N_mag, power=1.0)),
    "IRM, p = 2": np.asarray(ideal_ratio_mask(S_mag, N_mag, power=2.0)),
    "Wiener-like (5 frames)": masks.wiener_mask(S_mag, N_mag, context_frames=5).numpy(),
}
show_spectrograms(list(oracle_masks.values()), list(oracle_masks), rate, seconds,
                  cmap="viridis", vmin=0, vmax=1, label="mask")

# %% [markdown]
# ## 4. Applying a mask, and the 512-bin convention
#
# A mask is applied to the **complex** mixture STFT: multiplying `X` by a real
# mask scales each bin's magnitude and keeps the **mixture phase**, the only
# phase we have. The inverse STFT gives the estimate. The networks of the next
# notebooks see 512 bins, not 513 (notebook 01), so a mask may come one bin
# short: the missing Nyquist bin is then put back as zeros (a silent top bin)
# before the inverse STFT.
#
# **Exercise.** Write `mask_to_audio(mask, mixture_stft, n_fft, hop, length)`.
# Use `spectral.istft(Y, n_fft=..., hop=..., length=...)` for the inverse (it
# accepts numpy arrays and returns a torch tensor: add `.numpy()`).

# %%
def mask_to_audio(mask, mixture_stft, n_fft, hop, length):
    """Mask the mixture STFT, keeping its phase, and return the estimated waveform.

    Args:
        mask: real numpy array ``(F, frames)``, with ``F`` the number of bins of the
            mixture STFT, or one fewer (the Nyquist bin dropped, as a network outputs it).
        mixture_stft: complex numpy array ``(n_fft // 2 + 1, frames)``.
        n_fft, hop: the STFT's settings.
        length: number of samples to return.

    Returns:
        numpy array ``(length,)``.
    """
    ### BEGIN SOLUTION
    if mask.shape[0] == mixture_stft.shape[0] - 1:  # 512-bin convention: a silent Nyquist bin
        mask = np.concatenate([mask, np.zeros((1, mask.shape[1]), dtype=mask.dtype)])
    masked = mask * mixture_stft  # real times complex: the magnitude changes, the phase stays
    return spectral.istft(masked, n_fft=n_fft, hop=hop, length=length).numpy()
    ### END SOLUTION


# %%
mask_to_audio = check("02.mask_to_audio", mask_to_audio)

# %% [markdown]
# `tpsep.masks.apply_mask` does the masking part the same way (and refuses a
# mask that fits neither size). Now the magnitude IRM, with all 513 bins and
# with the 512 a network would output:

# %%
irm = oracle_masks["IRM, p = 1"]
X_numpy = X.numpy()
estimate_513 = mask_to_audio(irm, X_numpy, N_FFT, HOP, len(mixture))
mask_512 = irm[:-1]  # what a network would output: the Nyquist bin dropped
estimate_512 = mask_to_audio(mask_512, X_numpy, N_FFT, HOP, len(mixture))
difference = np.sum((estimate_513 - estimate_512) ** 2) / np.sum(estimate_513 ** 2)
print(f"513-bin vs 512-bin mask: the estimates differ by {10 * np.log10(difference):.1f} dB")
player(estimate_513[: 6 * rate], rate)

# %% [markdown]
# Listen: the vocals come out clearly, with some accompaniment left where the
# two overlapped, and a slightly "watery" sound where the mask cut bins apart.

# %% [markdown]
# ## 5. SI-SDR: one number for "how close"
#
# The scale-invariant signal-to-distortion ratio (Le Roux et al., 2019) projects
# the estimate on the reference, so that the loudness of the estimate does not
# matter, and compares what is explained with what is not:
#
# `s_target = <ŝ, s> s / ||s||²`, `e = ŝ - s_target`,
# `SI-SDR = 10 log10(||s_target||² / ||e||²)` dB.

# %%
def si_sdr(estimate, reference):
    """Scale-invariant SDR in dB.

    Args:
        estimate: numpy ``(samples,)``.
        reference: numpy ``(samples,)``, the true source.

    Returns:
        a float: remove each signal's mean first, then apply the formula above.
    """
    ### BEGIN SOLUTION
    estimate = estimate - estimate.mean()
    reference = reference - reference.mean()
    target = (estimate @ reference) / (reference @ reference) * reference
    noise = estimate - target
    return 10 * np.log10((target @ target) / (noise @ noise))
    ### END SOLUTION


# %%
si_sdr = check("02.si_sdr", si_sdr)

# %% [markdown]
# The library version, `tpsep.metrics.si_sdr`, works on torch tensors
# `(..., samples)`, batched and differentiable (notebook 05 trains with it), and
# refuses an all-zero reference (its SI-SDR is undefined). The **improvement**
# SI-SDRi subtracts the score of doing nothing, the mixture itself.

# %%
settings = {"IBM": ("ibm", {}), "IRM, p = 1": ("irm", {}), "IRM, p = 2": ("irm2", {}),
            "Wiener-like": ("wiener", {}), "mixture (no mask)": ("mix", {})}
clip_estimates = {}
for name, (kind, options) in settings.items():
    mask = masks.compute_mask(kind, S.abs(), N.abs(), **options).numpy()
    clip_estimates[name] = mask_to_audio(mask, X_numpy, N_FFT, HOP, len(mixture))
baseline = float(si_sdr(mixture.astype(np.float64), vocals.astype(np.float64)))
for name, estimate in clip_estimates.items():
    score = float(si_sdr(estimate.astype(np.float64), vocals.astype(np.float64)))
    improvement = round(score - baseline, 2) + 0.0  # + 0.0: print -0.00 as 0.00
    print(f"{name:<18} SI-SDR {score:6.2f} dB   SI-SDRi {improvement:6.2f} dB")

# %% [markdown]
# **Question 2.** The mixture itself, used as the estimate of the vocals, gets
# the SI-SDR printed in the last line above. What does that number tell you
# about this excerpt? Why do papers report the improvement SI-SDRi, and what
# would SI-SDR alone hide when comparing results on two different songs?
#
# ### BEGIN SOLUTION
# The mixture is `vocals + accompaniment`. When the two are nearly
# uncorrelated, the projection on the vocals has a gain close to 1 and the
# residual is the accompaniment, so the mixture's SI-SDR is about the energy
# ratio of vocals to accompaniment in the excerpt: the input SNR, how loud the
# singer is in this mix (the "do nothing" score). It depends on the song, not
# on any method: the same separator scores higher on a song with a loud singer
# than on one with a quiet singer. SI-SDRi subtracts that starting point and
# measures what the method adds, so results on different songs or datasets can
# be compared; SI-SDR alone would mix the method's merit with the difficulty
# of the input. (Report both: an improvement on an easy input is not the same
# as one on a hard input.)
# ### END SOLUTION

# %% [markdown]
# ## 6. BSS Eval: SDR, SIR, SAR with museval
#
# Music separation is scored with **BSS Eval** (Vincent et al., 2006), version 4
# as used by SiSEC 2018 (Stöter et al., 2018) and implemented in `museval`. The
# reference may be filtered by a 512-tap filter before comparison, and the error
# is split into three parts:
#
# - **SIR** (interference): how much of the *other* sources leaks in;
# - **SAR** (artifacts): what is neither the target nor another source (musical noise, holes);
# - **SDR**: everything together, the headline figure. ISR measures spatial/filtering distortion.
#
# Scores are computed on 1 s windows. museval counts windows in *samples* with a
# default of 44100, which is 1 s only at 44.1 kHz: `tpsep.metrics.bss_eval` takes
# seconds and converts them with the track's rate. A window where a reference or
# estimate is silent gets NaN and is skipped. A track's score is the **median over
# its windows**, a method's score the **median over tracks**.

# %%
references = np.stack([vocals, accompaniment])[:, None]  # (sources, channels, samples)
irm_estimates = masks.separate_with_oracle(mixture[None], {"vocals": vocals[None], "accompaniment": accompaniment[None]},
                                           kind="irm", n_fft=N_FFT, hop=HOP)
estimated = np.stack([irm_estimates["vocals"], irm_estimates["accompaniment"]])
framed = metrics.bss_eval(references, estimated, rate=rate, window_seconds=1.0, hop_seconds=1.0)
print("vocals SDR per 1 s window:", np.round(framed["SDR"][0], 1))
print("median over windows:", {k: round(float(np.nanmedian(v[0])), 2) for k, v in framed.items()})

# %%
figure, ax = plt.subplots(figsize=(9, 2.8))
frames_t = np.arange(framed["SDR"].shape[1]) + 0.5
for metric in ("SDR", "SIR", "SAR"):
    ax.plot(frames_t, framed[metric][0], marker="o", label=metric)
ax.set(xlabel="time in the excerpt (s)", ylabel="dB", title="IRM vocals, BSS Eval v4 on 1 s windows")
ax.legend(ncols=3)
ax.grid(alpha=0.3);

# %% [markdown]
# The scores move from window to window with the music: a median is robust to
# the few windows where the vocals are nearly silent and the ratios explode.

# %% [markdown]
# ## 7. The oracle table
#
# Now the yardstick. A *separator* is any function `separator(track) -> {source:
# estimate}`; `masks.oracle_separator(kind)` builds one from the ideal masks,
# and `evaluation.evaluate` runs a separator on tracks and scores it with
# museval. Trained models later plug into the same function.
#
# museval is slow (seconds per track), so the notebook scores the first
# `N_TABLE_TRACKS` test tracks; the command line scores the whole split:
# `tpsep evaluate --oracle ibm irm irm2 wiener mix --dataset music --split test`.

# %%
N_TABLE_TRACKS = 3
table_tracks = tracks[:N_TABLE_TRACKS]
oracles = {"IBM": "ibm", "IRM (magnitude)": "irm", "IRM (power)": "irm2", "Wiener-like": "wiener",
           "mixture as estimate": "mix"}
frames = pd.concat([evaluation.evaluate(masks.oracle_separator(kind, n_fft=N_FFT, hop=HOP), table_tracks,
                                        targets=["vocals", "accompaniment"], method=name)
                    for name, kind in oracles.items()], ignore_index=True)
oracle_table = metrics.summary_table(frames)
print(f"{len(table_tracks)} test tracks, {rate} Hz; {oracle_table.attrs['aggregation']}")
oracle_table.round(2)

# %%
vocals_sdr = oracle_table.xs("vocals", level="target")["SDR"]
print("vocals SDR (dB):", ", ".join(f"{name} {value:.2f}" for name, value in vocals_sdr.items()))

# %% [markdown]
# How to read it:
#
# - **The mixture as estimate** is the floor: its SDR is roughly the vocals'
#   level relative to the accompaniment. A model must beat it to be useful at all.
#   (Its SAR is huge: the mixture is exactly a sum of the references, so nothing
#   in it is an artifact; all its error is interference.)
# - **The ratio masks** are the practical ceiling for models that predict a
#   mask between 0 and 1 on this STFT (the U-Net of notebook 03; Question 1
#   shows why it is not a strict one). Compare the binary mask with them
#   column by column: they do not fail in the same way (Question 3).
# - The **Wiener-like** mask, built from smoothed powers, pays for not knowing
#   the exact power of each frame; that is closer to what a real system knows.
#
# **Published figures, for context.** SiSEC 2018 (Stöter, Liutkus & Ito, "The 2018
# Signal Separation Evaluation Campaign", LVA/ICA 2018) scored the same family of
# oracles (IBM, IRM with p = 1 and 2, and a multichannel Wiener filter) on the 50
# MUSDB18 test songs with museval and this very aggregation. Their vocals oracle
# SDRs are lower than ours: 9.43 dB median over songs for the power IRM (IRM2).
# The reasons, honestly:
#
# - **The data.** Real productions have breathy vocals, heavy effects and
#   dense accompaniment that overlaps the voice in every bin; our rendered
#   chorales have rooms and sampled instruments, but one voice singing a clean
#   harmonic line over four parts, so a mask separates it more easily.
# - **The setting.** SiSEC used stereo 44.1 kHz audio and a 4096-point STFT
#   (93 ms); we use mono 16 kHz and 1024 points (64 ms). Finer frequency
#   resolution helps masks on real music; a different rate changes what "1 s
#   window" and "512-tap filter" mean.
# - **What "other" means.** SiSEC's IRM divides by the sum over the four stems,
#   `|S_j|^p / Σ_k |S_k|^p`; ours divides by the target and the *sum* of the rest,
#   `|S|^p / (|S|^p + |X - S|^p)`. For vocals versus accompaniment they answer
#   slightly different questions.
#
# So compare a model with *this* table, never with a number from a paper
# computed on other data.
#
# **Question 3.** (3 points) In the table above the IBM has a higher SIR but a
# lower SAR than the magnitude IRM, for both targets. Explain both through what
# each mask does in a bin where the vocals and the accompaniment are about
# equally loud. For a karaoke app that plays the accompaniment, which would you
# choose, and on which column of the table do you base the choice?
#
# ### BEGIN SOLUTION
# In a bin where the two are about equal, the IBM gives the whole bin to one
# source and nothing to the other (all or nothing); the IRM shares it, about
# half each. Over the spectrogram the IBM keeps the target only where it
# dominates and removes the other bins completely, so little of the other
# source leaks in: higher SIR. But its on/off pattern cuts holes and sharp
# edges into the spectrogram, and the halves of the target it throws away and
# the interference it keeps come back as "musical noise", which is neither
# source: artifacts, lower SAR. The IRM lets a share of the interference
# through in every mixed bin (lower SIR) but changes smoothly, so fewer
# artifacts (higher SAR). For karaoke the remaining voice and the artifacts
# are both audible; a good answer picks one and justifies it by the column
# (SIR if leftover singing is the worse fault, SAR if gurgling accompaniment
# is), and may note that the power IRM sits between the two.
# ### END SOLUTION

# %% [markdown]
# ## 8. When SDR and SI-SDR disagree
#
# Both are "signal-to-distortion" ratios, but they forgive different things.
# SI-SDR forgives only a change of **gain**. BSS Eval lets the reference pass through
# a 512-tap filter first: the v3 `bss_eval_sources` SDR (also computed by
# `metrics.fast_sdr`) forgives any **filtering** (an equaliser, a short delay), while
# the v4 SDR of SiSEC counts the filtering and even the gain as distortion (that is
# what its ISR measures). Three damaged copies of the vocals:

# %%
rng = np.random.default_rng(0)
reference = vocals[: 6 * rate].astype(np.float64)
damaged = {
    "half as loud": 0.5 * reference,
    "delayed by 2 ms": np.roll(reference, int(0.002 * rate)),
    "low-passed at 1 kHz": spectral.istft(
        spectral.stft(reference, n_fft=N_FFT, hop=HOP) * (torch.arange(N_FFT // 2 + 1) * rate / N_FFT < 1000).double()[:, None],
        n_fft=N_FFT, hop=HOP, length=len(reference)).numpy(),
}
rows = []
for name, estimate in damaged.items():
    estimate = estimate + 1e-3 * reference.std() * rng.standard_normal(len(reference))  # keep ratios finite
    rows.append({"estimate": name,
                 "SI-SDR": float(metrics.si_sdr(torch.from_numpy(estimate), torch.from_numpy(reference))),
                 "SDR v3 (bss_eval_sources)": float(metrics.fast_sdr(reference[None, None], estimate[None, None])[0]),
                 "SDR v4 (museval, SiSEC)": float(metrics.bss_eval_global(reference[None, None], estimate[None, None])["SDR"][0])})
pd.DataFrame(rows).set_index("estimate").round(1)

# %% [markdown]
# - Half as loud: SI-SDR and the v3 SDR see a perfect copy; the v4 SDR counts the
#   missing half as error.
# - A 2 ms delay: SI-SDR collapses (it compares sample by sample), the v3 SDR absorbs
#   the delay into its filter; v4 again calls it distortion.
# - Low-passed: nothing *foreign* was added, so the v3 SDR stays high although the
#   voice lost its brightness; SI-SDR and v4 report the loss.
#
# So state which SDR you report. This course uses the **v4 SDR** (museval, framed)
# for music tables, as SiSEC does, and **SI-SDR** for speech and as a training loss.
#
# **Question 4.** (3 points) Why do SI-SDR and the v3 SDR disagree so much on
# the copy delayed by 2 ms (see the table above)? A separation model that
# outputs its estimate a few samples late would be judged very differently by
# the two: which judgement is right for a listener, which for a system that
# adds the estimate back to other signals (e.g. remixing), and what would you
# do before scoring such a model with SI-SDR?
#
# ### BEGIN SOLUTION
# SI-SDR may only rescale the reference: it compares the estimate sample by
# sample with `α·s`. A 2 ms delay is 32 samples at 16 kHz, half a period of a
# 250 Hz component and several periods higher up, so the delayed voice is
# poorly correlated with the reference (some harmonics even come out inverted)
# and almost all of it counts as error.
# The v3 SDR first lets the reference through a 512-tap filter, and a 32-sample
# delay is such a filter: the delayed copy is explained completely and only
# the added noise remains. (v4 fits the filter too, but counts its effect as
# distortion, which is why it is low as well.) A listener does not hear a few
# milliseconds of delay, so the v3 verdict is closer to perception; a remix
# that adds the estimate to other tracks, or subtracts it from the mixture,
# needs it aligned to the sample, so SI-SDR's verdict is the relevant one. To
# score a model with a known latency fairly with SI-SDR, shift its output back
# by that latency (or find the lag that maximises the cross-correlation)
# first, and say so.
# ### END SOLUTION

# %% [markdown]
# ## 9. Explore the masks
#
# Pick a mask, move its exponent (IRM), threshold (IBM) or PSD averaging (Wiener),
# and watch the mask, the masked spectrogram and the scores change; listen to the
# result. The SDR shown is the quick v3 SDR of `metrics.fast_sdr`.

# %%
from tpsep.widgets import MaskExplorer

explorer = MaskExplorer(mixture, vocals, rate, n_fft=N_FFT, hop=HOP, kind="irm", title=track.name)
explorer

# %% [markdown]
# Things to try: raise the IBM threshold to `+10` dB (fewer bins kept: higher
# SIR, more holes); lower it to `-10` dB; push the IRM exponent from 1 to 4 (it
# approaches the binary mask); average the Wiener PSDs over 31 frames.

# %% [markdown]
# ## 10. A fast SDR for quick iteration
#
# museval solves large linear systems for every track. `metrics.fast_sdr`
# computes the v3 `bss_eval_sources` SDR from FFT correlations and one
# Toeplitz solve per source: the same numbers in a fraction of the time (the
# line below compares the two here; `benchmarks/fast_sdr.py` compares them on
# the whole test split). Use it while you experiment; report museval's framed
# v4 scores.

# %%
fast = metrics.fast_sdr(references, estimated)
slow = metrics.bss_eval_sources(references, estimated)["SDR"]
print(f"vocals, accompaniment SDR: fast {np.round(fast, 3)}, museval {np.round(slow, 3)}; "
      f"same within 0.001 dB: {bool(np.max(np.abs(fast - slow)) < 1e-3)}")

# %% [markdown]
# ## Summary
#
# - An oracle mask, built from the true sources, is the ceiling of mask-based
#   separation on a given STFT; the mixture itself is the floor.
# - SI-SDR is a simple, differentiable score; BSS Eval (museval) splits the error
#   into interference and artifacts and is what music papers report, as a median
#   over 1 s windows, then over tracks.
# - Always say which metric, which data and which aggregation: numbers computed
#   otherwise are not comparable.
#
# Next, notebook 03 trains a U-Net to *predict* the mask from the mixture alone.
