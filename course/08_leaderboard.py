# ---
# jupyter:
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # TP 08 · The leaderboard: every model and oracle on one test set, real recordings, and scaling up
#
# You have trained five models for a few minutes each. Where does that leave
# them? This notebook puts them in **one table per task**, scored on the same
# test split with the same metric, beside:
#
# - the **references** shipped with tpsep: the same models trained for longer
#   (their cards say how long, and on what);
# - the **oracles**: masks computed from the true sources (ceilings, not methods);
# - the **mixture** itself (the floor);
# - the **published figures** of the papers, kept apart: they were measured on
#   other data, after days of training on GPUs.
#
# Then it asks what the table is worth on **real recordings**, and how to go
# from a laptop to a GPU, and to several.
#
# **You will write:** `pareto_front` (which models are worth their cost) and
# `shard_indices` (what each process of a multi-GPU run reads): two exercises,
# each followed by a check. Four written **questions** ask you to read the tables.

# %%
import os
import shlex
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

import tpsep
from tpsep import data, masks
from tpsep.audio import player
from tpsep.checkpoints import load_checkpoint, load_separator, reference, reference_card, reference_names
from tpsep.data import memory_track
from tpsep.devices import choose_device
from tpsep.evaluation import checkpoint_task, leaderboard
from tpsep.exercises import check
from tpsep.models import bandsplit, convtasnet, gridnet, unet
from tpsep.separate import track_separator

MUSIC_DATASET = "music"    # or the path of a MUSDB18 / MUSDB18-HQ folder: the one switch to real music
SPEECH_DATASET = "speech"  # or the path of a LibriMix folder (Libri2Mix, wav8k/min)
# Budgets sized for a 2-core laptop CPU (the notebook runs in about 4 minutes there):
MUSIC_TRACKS = 4       # of the 8 test tracks; `tpsep leaderboard music` scores them all
SPEECH_MIXTURES = 30   # of the 90 test mixtures; `tpsep leaderboard speech` scores them all
RUNS = Path(".runs")   # where notebooks 03-07 saved your checkpoints
REALDATA = Path(os.environ.get("TPSEP_REALDATA", "../../shared/realdata"))  # the course's real recordings
tpsep.setup_notebook(seed=0)
torch.set_num_threads(1)  # one thread: the same printed numbers on every machine

# %% [markdown]
# ## 1. What there is to compare
#
# Notebooks 03, 05, 06 and 07 saved their training runs under `.runs/`: your
# U-Net, Conv-TasNet, band-split model and TF-GridNet. Each checkpoint says
# which model it holds and which data it learned from, so it can be put on the
# right board. If you skipped a notebook, its row is simply missing.

# %%
# NBVAL_IGNORE_OUTPUT
# (which runs exist depends on the notebooks you ran before this one)
your_runs = {"music": [], "speech": []}
for path in sorted(RUNS.glob("*/best.pt")):
    task = checkpoint_task(path)
    if task in your_runs:
        your_runs[task].append(path)
    state = load_checkpoint(path)["state"]
    print(f"{str(path):32} {task:8} {state['step']:5d} steps, {state['history']['time'][-1] / 60:.1f} min")
if not any(your_runs.values()):
    print("no run of yours under .runs/ yet: the boards show the shipped references only")

# %% [markdown]
# The shipped references, from their cards: what trained them, for how long,
# on what machine, and their score on the **whole** test split. A test of the
# library re-scores each of them, so these figures cannot drift.

# %%
cards = pd.DataFrame([
    {"reference": name, "model": card["model"], "data": card["dataset"], "steps": card["steps"],
     "minutes": card["training_minutes"], "parameters (M)": round(card["parameters"] / 1e6, 2),
     "machine": card["machine"].split(" (")[0], "score": card["test"]["value"],
     "on": f"{card['test']['tracks']} test tracks", "metric": card["test"]["metric"].split(" (")[0]}
    for name in reference_names() for card in [reference_card(name)]])
print(cards.to_string(index=False))

# %% [markdown]
# ## 2. The music board
#
# One metric for every row: museval's SDR of the vocals and of the
# accompaniment, the median over 1-second frames within a track, then the
# median over tracks (the SiSEC 2018 convention). Each row is scored on the
# same tracks: we score the first `MUSIC_TRACKS` here, to stay within a few
# minutes; `tpsep leaderboard music` scores all of them.

# %%
# NBVAL_IGNORE_OUTPUT
# (your own runs' rows depend on your training; the next cell prints the rest)
music_board = leaderboard("music", dataset=MUSIC_DATASET, max_tracks=MUSIC_TRACKS, checkpoints=your_runs["music"],
                          progress=False)
print(music_board)


# %%
def fixed_rows(board):
    """The rows that do not depend on your training: oracles, mixture, shipped references."""
    rows = board.measured[board.measured["kind"] != "checkpoint"]
    return rows.drop(columns=["steps"]).to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-")


print(fixed_rows(music_board))

# %%
fig, ax = plt.subplots(figsize=(7, 4))
music_board.plot(ax=ax)
plt.show()

# %% [markdown]
# Read it from the bottom. The mixture scores what "doing nothing" scores. The
# oracles read the true sources: no trained mask of the same kind can beat
# them on average, and they tell you how much room is left. The references are
# where the course's models land after a quarter of an hour (U-Net) or nearly
# two hours (band-split) of CPU time; your three-minute runs sit below them.
#
# ## 3. The speech board
#
# For two voices, the metric is the **SI-SDR improvement** over the mixture
# (SI-SDRi), with the outputs matched to the speakers by the best permutation,
# as in every speech-separation paper; its mean and median, and its mean by
# pair of voices (FF, FM, MM: female and male readers), because two voices of
# the same sex are the hard case.

# %%
# NBVAL_IGNORE_OUTPUT
speech_board = leaderboard("speech", dataset=SPEECH_DATASET, max_tracks=SPEECH_MIXTURES,
                           checkpoints=your_runs["speech"], progress=False)
print(speech_board)

# %%
print(fixed_rows(speech_board))

# %%
fig, ax = plt.subplots(figsize=(7, 4))
speech_board.plot(ax=ax)
plt.show()

# %% [markdown]
# ### The headline that does not hold here
#
# The title of the Conv-TasNet paper (Luo & Mesgarani 2019) claims that it
# *surpasses ideal time-frequency magnitude masking*: 15.3 dB SI-SDRi on
# wsj0-2mix against 12.2 dB for the IRM. Compare the two rows on our test
# mixtures, by pair of voices:

# %%
rows = speech_board.measured.set_index("method")
pairs = ["SI-SDRi mean", "SI-SDRi FF", "SI-SDRi FM", "SI-SDRi MM"]
headline = rows.loc[["oracle IRM", "convtasnet-speech"], pairs]
print(headline.round(2).to_string())
gap = headline.loc["oracle IRM", "SI-SDRi mean"] - headline.loc["convtasnet-speech", "SI-SDRi mean"]
card = reference_card("convtasnet-speech")
print(f"the IRM is {gap:.1f} dB ahead of the shipped Conv-TasNet, trained {card['training_minutes']:.1f} min "
      f"({card['steps']} steps) with {card['parameters'] / 1e6:.2f}M parameters")
paper_size = sum(p.numel() for p in convtasnet.ConvTasNet(convtasnet.PAPER_BEST, verbose=False).parameters())
print(f"the paper's best Conv-TasNet: {paper_size / 1e6:.2f}M parameters, "
      f"{paper_size / card['parameters']:.0f} times the course's")

# %% [markdown]
# The claim is not wrong; our budget is. The paper trains a model that many
# times larger for 100 epochs over 30 hours of wsj0-2mix (Luo & Mesgarani
# 2019); the shipped reference had a few GPU minutes on our hour of speech. Section 6 gives
# the command that trains the paper's configuration. The headline is a claim
# you can test yourself, given a GPU and a night.
#
# **Question 1.** The IRM is an *oracle*: it is computed from the true
# sources. How can a trained model that never sees the true sources at test
# time score above it? Name the two things the IRM cannot do that
# Conv-TasNet can. (3 points)
#
# ### BEGIN SOLUTION
# The IRM is a *magnitude* mask on *one fixed STFT*: it keeps the mixture's
# phase, and its values lie in [0, 1] on a fixed time-frequency tiling. Conv-TasNet (1) learns its own basis (encoder and
# decoder), short (2 ms) and adapted to speech, where the STFT's 32-64 ms
# windows smear fast changes; and (2) its output is not bound to the mixture's
# phase: the learned decoder can produce the waveform that best matches the
# source, so the phase errors that cap every magnitude mask are not a ceiling
# for it. The oracle is a ceiling only for the family of methods it belongs to.
# ### END SOLUTION
#
# ## 4. Score against cost
#
# A model that scores 1 dB more after ten times the training is not always the
# better choice. Here is every trained row of the two boards against its
# training time and its size.

# %%
trained = pd.concat([board.measured.assign(task=board.task, score=board.measured[board.main_score])
                     for board in (music_board, speech_board)])
trained = trained[trained["kind"].isin(["reference", "checkpoint"])].reset_index(drop=True)

fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, cost in zip(axes, ["minutes", "parameters (M)"]):
    for (task, kind), group in trained.groupby(["task", "kind"]):
        ax.scatter(group[cost], group["score"], marker="o" if task == "music" else "s",
                   color="tab:blue" if kind == "reference" else "tab:green", label=f"{task}, {kind}")
        for method, x, y in zip(group["method"], group[cost], group["score"]):
            ax.annotate(method, (x, y), fontsize="x-small", xytext=(4, 2), textcoords="offset points")
    ax.set(xscale="log", xlabel=f"training {cost}" if cost == "minutes" else cost)
axes[0].set_ylabel("vocals SDR (music) / SI-SDRi (speech), dB")
axes[0].legend(fontsize="small")
plt.show()


# %% [markdown]
# A model is **dominated** when another one costs no more and scores no less,
# and is strictly better on one of the two. The models that are not dominated
# form the **Pareto front**: the only ones worth considering, whatever your
# budget. Write `pareto_front(costs, scores)`, which returns a boolean array,
# True for the models on the front.

# %%
def pareto_front(costs, scores):
    """Which methods no other method beats at no greater cost.

    Args:
        costs, scores: ``(methods,)`` arrays.

    Returns:
        ``(methods,)`` boolean array: True where no other method has cost <= and score >=,
        with at least one of the two strict.
    """
    ### BEGIN SOLUTION
    costs, scores = np.asarray(costs, dtype=float), np.asarray(scores, dtype=float)
    no_worse = (costs[None, :] <= costs[:, None]) & (scores[None, :] >= scores[:, None])
    better = (costs[None, :] < costs[:, None]) | (scores[None, :] > scores[:, None])
    return ~(no_worse & better).any(axis=1)
    ### END SOLUTION


# %%
pareto_front = check("08.pareto_front", pareto_front)

# %%
# NBVAL_IGNORE_OUTPUT
# (your runs take part)
for task, group in trained.groupby("task"):
    front = group[pareto_front(group["minutes"], group["score"])]
    print(f"{task}: worth their training time:", ", ".join(front.sort_values("minutes")["method"]))

# %% [markdown]
# **Question 2.** The published figures are printed in a separate block, and
# never as rows of the table. Give two reasons why a published 23 dB and one of
# our measured rows cannot be compared line by line, even for the same model.
# (2 points)
#
# ### BEGIN SOLUTION
# Different data: wsj0-2mix (or MUSDB18) against our own test split, with other
# voices, other levels, other lengths; SI-SDRi depends strongly on the data
# (same-sex pairs are harder, noisier data lower). Different training: the
# papers' models are larger, trained for days on GPUs on tens of hours, where
# ours had minutes on an hour. (Also: different evaluation details, e.g. the
# museval version or the frame size, and their numbers cannot be re-checked by
# our tests.)
# ### END SOLUTION
#
# ## 5. Listening
#
# Numbers summarise; ears judge. The same excerpt through every model of each
# board (and the IRM, for the ceiling). Listen for the leaks of one source into
# the other, and for the "musical noise" of masks.


# %%
def excerpt(track, start_s, seconds):
    """A short :class:`Track` cut from ``track``: every model hears the same few seconds."""
    start, frames = int(start_s * track.rate), int(seconds * track.rate)
    mixture, sources = track.read(start, frames)
    return memory_track(f"{track.name} ({start_s:g}-{start_s + seconds:g} s)", track.rate, mixture, sources)


def listen(track, separators, target):
    """One player per separator, each playing its estimate of ``target``."""
    from IPython.display import display

    print(f"{track.name}: the mixture, then {target} as each method hears it")
    display(player(track.mixture, track.rate))
    for name, separate in separators.items():
        print(name)
        display(player(separate(track)[target], track.rate))


music_excerpt = excerpt(data.load_dataset(MUSIC_DATASET, split="test")[0], 10.0, 6.0)
speech_excerpt = excerpt(data.load_dataset(SPEECH_DATASET, split="test")[0], 0.0, 4.0)
music_separators = {name: track_separator(load_separator(reference(name)))
                    for name in ("unet-music", "bandsplit-music")}
music_separators |= {f"yours: {path.parent.name}": track_separator(load_separator(path))
                     for path in your_runs["music"]}
music_separators["oracle IRM"] = masks.oracle_separator("irm")
speech_separators = {name: track_separator(load_separator(reference(name)))
                     for name in ("convtasnet-speech", "gridnet-speech-b4x1s")}
speech_separators |= {f"yours: {path.parent.name}": track_separator(load_separator(path))
                      for path in your_runs["speech"]}
speech_separators["oracle IRM"] = masks.oracle_separator("irm")

# %%
# NBVAL_IGNORE_OUTPUT
listen(music_excerpt, music_separators, "vocals")

# %%
# NBVAL_IGNORE_OUTPUT
listen(speech_excerpt, speech_separators, "s1")

# %% [markdown]
# ## 6. Real recordings
#
# Every model above learned from the course's own data: Bach chorales rendered
# with sampled instruments and a synthetic singer, and LibriSpeech readers
# mixed by us. What does that buy on a **real** song? When the course's real
# recordings are on this machine (`REALDATA`, a one-track sample of MUSDB18:
# 7 seconds of *Music Delta - 80s Rock*, 44.1 kHz stereo), the next cell puts
# the same models on it. The references were trained elsewhere: the board
# says so in its notes. Elsewhere it says the folder is missing, and moves on.

# %%
# NBVAL_IGNORE_OUTPUT
# (the sample is on the course's machines only)
musdb_sample = REALDATA / "musdb18hq-sample"
if musdb_sample.is_dir():
    real_board = leaderboard("music", dataset=str(musdb_sample), split="train", oracles=False,
                             checkpoints=your_runs["music"], progress=False)
    print(real_board)
else:
    print(f"no MUSDB18 sample at {musdb_sample}: skipped (set TPSEP_REALDATA to the folder that holds it)")

# %% [markdown]
# **With the full MUSDB18 on your own machine** (150 tracks, free for research
# from its Zenodo page), one variable switches every cell of this notebook to
# it: set `MUSIC_DATASET = "/path/to/musdb18hq"` in the first cell (the WAV
# layout of MUSDB18-HQ, or the `.stem.mp4` files of MUSDB18 with ffmpeg
# installed). `tpsep leaderboard music --dataset /path/to/musdb18hq` does the
# same from a terminal. For speech, point `SPEECH_DATASET` at a Libri2Mix
# folder (`wav8k/min`, as the LibriMix scripts write it). To *train* on them,
# pass the same path to `tpsep train ... --dataset`.
#
# **Question 3.** The references were trained on rendered chorales. Name two
# differences between those and a real pop or rock recording that can cost
# them decibels on MUSDB18, and for each, a way to check that it is the cause.
# (2 points)
#
# ### BEGIN SOLUTION
# For example: (1) real vocals carry lyrics, consonants, breath, vibrato and
# effects (reverb, compression) that a synthetic singer lacks: check on real
# vocals over the course's accompaniment, or compare the vocals' SIR (leaks)
# with their SAR (artefacts); (2) the accompaniment of a rock song has drums
# and distorted guitars with broadband energy where the chorales have sampled
# orchestral instruments: check the errors by source (drums and other) and by
# frequency band; (3) stereo and 44.1 kHz against mono 16 kHz or 8192 Hz: the
# models discard the band above 4 or 8 kHz, so check the vocals' energy there;
# (4) mastering loudness: check the mixture's level against the training data.
# Fine-tuning on a few real tracks (`tpsep train ... --dataset`) then tells how
# much is domain and how much capacity.
# ### END SOLUTION
#
# ## 7. Scaling up: one GPU
#
# Nothing in the library is CPU-specific. `tpsep train` takes the GPU when
# there is one (`--device auto`, the default), and three flags change the
# scale: `--precision bf16` (autocast: matrix products in bfloat16, STFTs and
# losses kept in float32, as notebook 06 showed), a larger `--batch-size`, and
# the paper's configuration through `--option`. The commands below train each
# model at the size its paper used.

# %%
print("this machine trains on:", choose_device("auto"))


def paper_options(paper, course):
    """The ``--option KEY=VALUE`` flags that turn the course configuration into the paper's."""
    paper, course = asdict(paper), asdict(course)
    return " ".join(f"--option {shlex.quote(f'{key}={value}')}" for key, value in paper.items()
                    if value != course[key])


gpu = "--device cuda --precision bf16 --minutes 600"
musdb = "--dataset /path/to/musdb18hq"  # the papers' music models learn from MUSDB18, at 44.1 kHz
print(f"tpsep train unet {gpu} {musdb} --batch-size 32 {paper_options(unet.PAPER, unet.COURSE)}")
print(f"tpsep train bandsplit {gpu} {musdb} --batch-size 8 --seconds 3 "
      f"{paper_options(bandsplit.PAPER, bandsplit.COURSE)}")
print(f"tpsep train convtasnet {gpu} --batch-size 16 --seconds 4 --remix "
      f"{paper_options(convtasnet.PAPER_BEST, convtasnet.COURSE)}")
print(f"tpsep train gridnet {gpu} --batch-size 4 --seconds 4 {paper_options(gridnet.PAPER, gridnet.COURSE)}")

# %% [markdown]
# ## 8. Several GPUs: `torchrun` and DDP
#
# With `N` GPUs, `torchrun` starts `N` copies of the same command. tpsep's
# trainer sees the environment `torchrun` sets (`RANK`, `WORLD_SIZE`), wraps
# the model in `DistributedDataParallel` (which averages the gradients of all
# copies at each step), gives each process its own share of every epoch, and
# lets only process 0 write checkpoints and logs:
#
# ```
# torchrun --standalone --nproc_per_node 4 -m tpsep train convtasnet --device cuda --precision bf16 ...
# ```
#
# Each step then sees `4 × batch-size` examples. Which ones? Like
# `DistributedSampler`, the trainer deals the (shuffled) examples out like
# cards. Without shuffling, and with a dataset whose length does not divide
# evenly, write `shard_indices(n_examples, rank, world_size)`: pad the list
# `0 … n_examples − 1` by repeating its start until every process gets as
# many, then give process `rank` the positions `rank, rank + world_size, …`.

# %%
def shard_indices(n_examples, rank, world_size):
    """The example indices process ``rank`` of ``world_size`` reads in one epoch (no shuffling)."""
    ### BEGIN SOLUTION
    per_process = -(-n_examples // world_size)
    indices = list(range(n_examples))
    indices += indices[:per_process * world_size - n_examples]
    return indices[rank::world_size]
    ### END SOLUTION


# %%
shard_indices = check("08.shard_indices", shard_indices)

# %% [markdown]
# The same command runs on a CPU, with the `gloo` backend instead of NCCL, and
# the library's tests run it with two processes. Here it is for real, for a
# few steps of a tiny Conv-TasNet: two processes, one checkpoint.

# %%
# NBVAL_IGNORE_OUTPUT
# (two processes start: about half a minute; the timings vary)
tiny = {"N": 16, "B": 16, "H": 16, "Sc": 16, "X": 2, "R": 1}
command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "tpsep", "train", "convtasnet", "--dataset", SPEECH_DATASET, "--max-steps", "4",
           "--batch-size", "2", "--seconds", "1", "--no-progress", "--out", tempfile.mkdtemp(),
           *sum((["--option", f"{k}={v}"] for k, v in tiny.items()), [])]
print("torchrun", " ".join(command[3:]))
result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
print(result.stdout[-600:] or result.stderr[-2000:])

# %% [markdown]
# **Question 4.** You move a run from one GPU with `--batch-size 16` to four
# GPUs with the same flags. How many examples does one optimiser step see now,
# and how many steps does an epoch take? What would you do with the learning
# rate, and why? (2 points)
#
# ### BEGIN SOLUTION
# Each process reads batches of 16, and DDP averages the four gradients: one
# step sees 64 examples, and an epoch takes a quarter of the steps. The
# gradient is an average over 4 times more examples (less noisy), so the same
# learning rate makes 4 times fewer updates per epoch: scale the learning rate
# up (linearly, 4×, or by the square root, 2×, as a start), with a warm-up,
# and check the validation curve; or keep the effective batch of one GPU with
# `--batch-size 4`.
# ### END SOLUTION
#
# ## 9. What to remember
#
# - Compare on one test split with one metric, and keep the published figures
#   apart: they come from other data and other budgets.
# - Oracles are ceilings for their own family of methods only; a learned
#   transform can pass them, given data, size and time.
# - Score is not the only axis: training time and size decide what is worth
#   using (the Pareto front).
# - A model that shines on its own data must be checked on real recordings.
# - A GPU changes `--device`, `--precision bf16`, `--batch-size` and the
#   configuration; several GPUs add `torchrun --nproc_per_node N` in front of
#   the same command.
