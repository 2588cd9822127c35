"""Evaluate a separator on a dataset, and the ``tpsep evaluate`` command.

What :func:`evaluate` scores is a callable

    separator(track) -> {source name: estimate, float32 (channels, samples)}

or a trained separator module (any model of :mod:`tpsep.models`), which it wraps
with :func:`tpsep.separate.track_separator`. An oracle mask
(:func:`tpsep.masks.oracle_separator`), a trained U-Net or a Conv-TasNet all fit,
so one :func:`evaluate` scores them all the same way, and the notebooks' tables
can be compared line by line.

:func:`evaluate` returns the long table of per-frame scores
(:func:`tpsep.metrics.scores_table`); :func:`tpsep.metrics.summary_table` turns
it into the SiSEC summary (median over frames, then median over tracks).

``tpsep evaluate CHECKPOINT`` rebuilds any model with
:func:`tpsep.checkpoints.load_separator`, and scores it on the data it was trained on
(the dataset its checkpoint records) unless ``--dataset`` says otherwise.

Speech enhancement (``load_dataset("speech", task="enhance")``: one voice in noise) is
scored like separation, on its one target, the voice ``"speech"``: a model with one
output gives it (:func:`enhancement_method`), the noise being what it leaves of the
mixture. The noise is not scored unless asked for (``targets=["speech", "noise"]``).

:func:`leaderboard` (``tpsep leaderboard music|speech``) scores every available separator on
one split with one metric: the oracle masks, the mixture, the shipped references trained on
that data and any checkpoints given; the published figures of the papers (:data:`PUBLISHED`)
are kept apart, since they were measured on other data.
"""

from __future__ import annotations

from functools import partial

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch

from tpsep import masks, metrics
from tpsep.checkpoints import load_checkpoint, separator_from
from tpsep.separate import separate, track_separator

MODES = ("museval", "global", "fast", "si_sdr")
SNR_RANGE_DB = 5  # width of the SNR ranges of per_sample_summary(table, by="snr")
MODE_HELP = {
    "museval": "BSS Eval v4 (museval) on 1 s frames: SDR, ISR, SIR, SAR, as in SiSEC 2018",
    "global": "BSS Eval v4 (museval) on the whole signal: one SDR/ISR/SIR/SAR per track",
    "fast": "tpsep.metrics.fast_sdr: whole-signal bss_eval_sources SDR, much faster",
    "si_sdr": "scale-invariant SDR (whole signal, mean over channels)",
}


def _group_targets(targets) -> list[tuple[list[str], list[str]]]:
    """Which targets are scored together: (references to use, targets to report).

    BSS Eval's SIR depends on which references are given, so, as museval does for
    MUSDB18, the stems are scored together and "accompaniment" is scored in a pair
    with "vocals" (it overlaps every other stem).
    """
    targets = list(dict.fromkeys(targets))
    stems = [t for t in targets if t != "accompaniment"]
    groups = []
    if "accompaniment" in targets:
        pair = ["vocals", "accompaniment"]
        report = [t for t in pair if t in targets and not (t == "vocals" and len(stems) > 1)]
        groups.append((pair, report))
        stems = [] if stems == ["vocals"] else stems
    if stems:
        groups.append((stems, stems))
    return groups


def _estimates_for(estimates: dict, names, track) -> np.ndarray:
    out = []
    for name in names:
        if name not in estimates:
            raise ValueError(f"the separator returned no estimate for {name!r} on track {track.name!r}; "
                             f"it returned {sorted(estimates)}")
        estimate = np.asarray(estimates[name], dtype=np.float32)
        if estimate.shape != track.mixture.shape:
            raise ValueError(f"estimate {name!r} of track {track.name!r} has shape {estimate.shape}, the "
                             f"mixture {track.mixture.shape}: return (channels, samples) like the mixture")
        if not np.isfinite(estimate).all():
            raise ValueError(f"estimate {name!r} of track {track.name!r} contains NaN or inf")
        out.append(estimate)
    return np.stack(out)


def score_track(estimates: dict, track, targets=("vocals", "accompaniment"), mode: str = "museval",
                method: str = "method", window_seconds: float = 1.0, hop_seconds: float = 1.0) -> pd.DataFrame:
    """Score one track's estimates.

    Args:
        estimates: dict name -> ``(channels, samples)``, as a separator returns.
        track: a :class:`tpsep.data.Track` (its true stems are the references).
        targets: which sources to score.
        mode: one of ``MODES`` (see ``MODE_HELP``).

    Returns:
        the long table of :func:`tpsep.metrics.scores_table` for this track.
    """
    if mode not in MODES:
        raise ValueError(f"unknown evaluation mode {mode!r}; expected one of {MODES}")
    tables = []
    for references_names, report in _group_targets(targets):
        references = np.stack([track.stem(name) for name in references_names])
        estimated = _estimates_for(estimates, references_names, track)
        if mode == "museval":
            scores = metrics.bss_eval(references, estimated, rate=track.rate,
                                      window_seconds=window_seconds, hop_seconds=hop_seconds)
        elif mode == "global":
            scores = {k: v[:, None] for k, v in metrics.bss_eval_global(references, estimated).items()}
        elif mode == "fast":
            scores = {"SDR": metrics.fast_sdr(references, estimated)[:, None]}
        else:
            values = metrics.si_sdr(estimated, references).mean(dim=-1)  # mean over channels
            scores = {"SI-SDR": values.numpy()[:, None]}
        keep = [references_names.index(name) for name in report]
        scores = {k: np.asarray(v)[keep] for k, v in scores.items()}
        tables.append(metrics.scores_table(scores, report, track=track.name, method=method))
    return pd.concat(tables, ignore_index=True)


def evaluate(separator: Callable, tracks, targets=("vocals", "accompaniment"), *, method: str | None = None,
             mode: str = "museval", window_seconds: float = 1.0, hop_seconds: float = 1.0,
             progress: bool = False) -> pd.DataFrame:
    """Run ``separator`` on every track and score it.

    Args:
        separator: ``separator(track) -> {name: (channels, samples)}``, or a separator module.
        tracks: list of :class:`tpsep.data.Track`.
        targets: sources to score; "accompaniment" = everything but the vocals.
        method: the name in the table (default: the separator's ``__name__``).
        mode: "museval" (framed BSS Eval v4), "global", "fast" or "si_sdr".
        window_seconds, hop_seconds: framing of the "museval" mode, in seconds
            (converted to samples with each track's rate).
        progress: show a tqdm bar on stderr.

    Returns:
        long DataFrame (method, track, target, metric, frame, value); summarise it with
        :func:`tpsep.metrics.summary_table`.
    """
    tracks = list(tracks)
    if not tracks:
        raise ValueError("evaluate got no tracks; check the dataset name and split")
    if isinstance(separator, torch.nn.Module):
        separator = track_method(separator)
    method = method or getattr(separator, "__name__", "method")
    if progress:
        from tqdm.auto import tqdm
        tracks = tqdm(tracks, desc=f"evaluating {method}", leave=False)
    tables = []
    for track in tracks:
        estimates = separator(track)
        tables.append(score_track(estimates, track, targets, mode=mode, method=method,
                                  window_seconds=window_seconds, hop_seconds=hop_seconds))
        if hasattr(track, "unload"):
            track.unload()  # keep memory flat on long datasets
    frames = pd.concat(tables, ignore_index=True)
    frames.attrs["mode"] = mode
    return frames


def enhancement_method(separator: torch.nn.Module, name: str | None = None) -> Callable:
    """A speech enhancement model (one output) as a ``method(track) -> {"speech", "noise"}``.

    Its one output is the enhanced voice; the noise estimate is the rest of the mixture.
    A model trained with SI-SNR sets no scale, so the voice is scored scale-invariantly
    (SI-SDR) and the noise, which depends on that scale, is not scored by default.

    Args:
        separator: a module with ``config.C == 1``, e.g. Conv-TasNet trained with ``--task enhance``.
        name: the method's name in the tables (default: the module's class name).

    Returns:
        ``method(track)`` for :func:`evaluate`, for tracks with a source ``"speech"``.
    """
    def method(track) -> dict:
        if "speech" not in track.source_names:
            raise ValueError(f"this model enhances one voice (one output), but track {track.name!r} has the "
                             f"sources {list(track.source_names)}; score it on an enhancement set, e.g. "
                             "--dataset 'speech?task=enhance' (load_dataset('speech', task='enhance'))")
        (speech,) = separate(separator, track.mixture, track.rate).values()
        return {"speech": speech, "noise": (track.mixture - speech).astype(np.float32)}

    method.__name__ = name or type(separator).__name__
    return method


def track_method(separator: torch.nn.Module, name: str | None = None) -> Callable:
    """The ``method(track)`` that scores a separator module: :func:`enhancement_method` for a model
    with one unnamed output, :func:`tpsep.separate.track_separator` (outputs matched to sources) otherwise."""
    if getattr(getattr(separator, "config", None), "C", None) == 1 and not getattr(separator, "sources", None):
        return enhancement_method(separator, name)
    return track_separator(separator, name=name)


def default_targets(source_names, with_accompaniment: bool = False) -> list:
    """The sources scored when none are named: the vocals of music (and the accompaniment, for
    the SiSEC tables), the voice of an enhancement set (``"speech"``), else every source."""
    names = list(source_names)
    if "vocals" in names:
        return ["vocals", "accompaniment"] if with_accompaniment else ["vocals"]
    if "speech" in names:
        return ["speech"]
    return names


# ----------------------------------------------------------------------------- one row per test item

# what a track's meta may say about it, worth a column of the per-sample table
PER_SAMPLE_META = ("pair", "speakers", "snr_db", "relative_level_db")


def per_sample_table(separator: Callable, tracks, targets=None, *, method: str | None = None,
                     mode: str = "si_sdr") -> pd.DataFrame:
    """One row per track: the input's score, the output's, the improvement, the length,
    and what the track's meta says about it (pair of voices, speakers, SNR, level).

    The input score is that of the mixture itself taken as every estimate: a pipeline
    whose *input* scores far below 0 dB (references misaligned, a wrong rate, sources
    paired with the wrong mixture) is broken, whatever the model does.

    Args:
        separator: as for :func:`evaluate` (a function of a track, or a separator module).
        targets: sources to score (default: vocals for music, the voice ``speech`` of an
            enhancement set, every source otherwise); the score of a track is the mean over them.
        mode: "si_sdr" (default), "fast", "global" or "museval" (median over frames).

    Returns:
        DataFrame indexed by track: ``input``, ``output``, ``improvement`` (dB), ``seconds``
        and the meta columns present; ``attrs["metric"]`` names the score.
    """
    tracks = list(tracks)
    if not tracks:
        raise ValueError("per_sample_table got no tracks; check the dataset name and split")
    if targets is None:
        targets = default_targets(tracks[0].source_names)
    metric = "SI-SDR" if mode == "si_sdr" else "SDR"
    scores = {}
    for name, method_fn in (("input", masks.oracle_separator("mix")), ("output", separator)):
        frames = evaluate(method_fn, tracks, targets, method=name, mode=mode)
        frames = frames[frames["target"].isin(targets) & (frames["metric"] == metric)]
        per_target = frames.groupby(["track", "target"], sort=False)["value"].median()  # over frames
        scores[name] = per_target.groupby(level="track", sort=False).mean()
    table = pd.DataFrame(scores)
    table["improvement"] = table["output"] - table["input"]
    by_name = {t.name: t for t in tracks}
    table["seconds"] = [round(by_name[name].duration, 2) for name in table.index]
    for key in PER_SAMPLE_META:
        values = [getattr(by_name[name], "meta", {}).get(key) for name in table.index]
        if any(v is not None for v in values):
            table[key] = [", ".join(map(str, v)) if isinstance(v, (list, tuple)) else v for v in values]
    table.index.name = "track"
    table.attrs.update(metric=metric, method=method or getattr(separator, "__name__", type(separator).__name__))
    return table


def snr_ranges(snr_db: pd.Series, width: float = SNR_RANGE_DB) -> pd.Series:
    """The range of ``width`` dB that holds each SNR, as an ordered category: "-5 to 0 dB", "0 to 5 dB", ...

    The ranges start at multiples of ``width``; each holds its lower end (0 dB is in "0 to 5 dB").
    A track without an SNR (NaN) is in no range.
    """
    lows = np.floor(np.asarray(snr_db, dtype=float) / width) * width
    label = {low: f"{low + 0:g} to {low + width:g} dB" for low in sorted(set(lows[np.isfinite(lows)]))}  # + 0: no "-0"
    return pd.Series(pd.Categorical([label.get(low) for low in lows], categories=list(label.values()), ordered=True),
                     index=snr_db.index, name="snr")


def per_sample_summary(table: pd.DataFrame, by: str | None = None) -> pd.DataFrame:
    """Summary statistics of a :func:`per_sample_table` (count, mean, median, std, worst and
    best 10 %) of the input, output and improvement.

    Args:
        table: a :func:`per_sample_table`.
        by: a column to make one block per group (e.g. ``"pair"``), or ``"snr"``: one block per
            range of :data:`SNR_RANGE_DB` dB of the ``snr_db`` column (:func:`snr_ranges`),
            from the noisiest.

    Returns:
        DataFrame indexed by score (and by group first, with ``by``), rounded to 0.01 dB.
    """
    columns = ["input", "output", "improvement"]

    def stats(part: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"count": part[columns].count(), "mean": part[columns].mean(),
                             "median": part[columns].median(), "std": part[columns].std(),
                             "10%": part[columns].quantile(0.1), "90%": part[columns].quantile(0.9)})

    if by is None:
        return stats(table).round(2)
    if by == "snr" and "snr" not in table.columns:
        if "snr_db" not in table.columns:
            raise ValueError(f"no column 'snr_db' to group by SNR range; the table has {list(table.columns)}")
        groups = table.groupby(snr_ranges(table["snr_db"]), observed=True)
    elif by not in table.columns:
        raise ValueError(f"no column {by!r} to group by; the table has {list(table.columns)}")
    else:
        groups = table.groupby(by)
    return pd.concat({group: stats(part) for group, part in groups}, names=[by, "score"]).round(2)


# ----------------------------------------------------------------------------- command line

def add_evaluate_command(subparsers) -> argparse.ArgumentParser:
    """Register ``tpsep evaluate`` on an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "evaluate",
        help="score oracle masks (or a trained model) on a dataset split",
        description=(
            "Separate every track of a dataset split and score the estimates.\n\n"
            "Oracle masks are computed from the true sources, so they are not methods but "
            "ceilings: the best a mask on this STFT could do. Scores are in dB and "
            "aggregated as in SiSEC 2018: median over 1 s frames within a track, then "
            "median over tracks.\n\n"
            "examples:\n"
            "  tpsep evaluate --oracle irm --dataset music --split test\n"
            "  tpsep evaluate --oracle ibm irm irm2 wiener mix --json oracle.json\n"
            "  tpsep evaluate --oracle irm --metric fast      # quick whole-signal SDR"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?", default=None,
                        help="a trained model's checkpoint to evaluate (needs a registered loader)")
    parser.add_argument("--oracle", nargs="+", choices=masks.MASK_KINDS, default=None, metavar="KIND",
                        help="oracle mask(s): ibm (binary), irm (ratio, magnitude), irm2 (ratio, power), "
                             "wiener (ratio of locally averaged powers), mix (the mixture as estimate)")
    parser.add_argument("--dataset", default=None,
                        help='"music", "speech", "speech?task=enhance", or a path to real data '
                             '(default: the dataset a CHECKPOINT was trained on, else music)')
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--targets", nargs="+", default=None,
                        help="sources to score (default: vocals accompaniment for music, speech for "
                             "enhancement, every source otherwise)")
    parser.add_argument("--tracks", type=int, default=None, help="score only the first N tracks")
    parser.add_argument("--metric", choices=MODES, default="museval",
                        help="; ".join(f"{k}: {v}" for k, v in MODE_HELP.items()))
    parser.add_argument("--n-fft", type=int, default=1024, help="STFT size of the oracle masks (default 1024)")
    parser.add_argument("--hop", type=int, default=256, help="STFT hop of the oracle masks (default 256)")
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the numbers to PATH as JSON")
    parser.add_argument("--per-sample", metavar="CSV", default=None,
                        help="also write one row per track (input and output scores, improvement, length, "
                             "pair of voices or SNR) for each method to CSV, and print their summary "
                             "(by pair of voices, or by SNR range for enhancement)")
    parser.set_defaults(func=run_evaluate)
    return parser


def checkpoint_label(path, checkpoint: dict) -> str:
    """How a table names a trained model: the model and where its checkpoint lies, ``unet (unet03/best.pt)``."""
    path = Path(path)
    return f"{checkpoint['extra']['model_name']} ({path.parent.name or '.'}/{path.name})"


def _separators_from_args(args) -> list[tuple[str, Callable]]:
    if args.checkpoint and args.oracle:
        raise SystemExit("tpsep evaluate: give either a CHECKPOINT or --oracle, not both")
    if args.oracle:
        return [(kind, masks.oracle_separator(kind, n_fft=args.n_fft, hop=args.hop)) for kind in args.oracle]
    if not args.checkpoint:
        raise SystemExit("tpsep evaluate: nothing to evaluate; give --oracle KIND or a CHECKPOINT")
    checkpoint = load_checkpoint(args.checkpoint)
    separator = separator_from(checkpoint)
    label = checkpoint_label(args.checkpoint, checkpoint)
    return [(label, track_method(separator))]


def _dataset_from_args(args) -> str:
    """``--dataset``, else the dataset the checkpoint was trained on (with its options), else music."""
    if args.dataset:
        return args.dataset
    if args.checkpoint:
        trained_on = (load_checkpoint(args.checkpoint).get("extra") or {}).get("dataset")
        if trained_on:
            return trained_on
    return "music"


def _load_tracks(dataset, split):
    from tpsep.data import load_dataset

    return load_dataset(dataset, split=split)


def summary_to_dict(summary: pd.DataFrame) -> dict:
    """``{method: {target: {metric: value}}}`` from :func:`tpsep.metrics.summary_table`."""
    out: dict = {}
    for (method, target), row in summary.iterrows():
        out.setdefault(method, {})[target] = {k: (None if pd.isna(v) else float(v)) for k, v in row.items()}
    return out


def run_evaluate(args) -> int:
    """Entry point of ``tpsep evaluate`` (exit status 0); the work is in :func:`evaluate_from_args`."""
    evaluate_from_args(args)
    return 0


def evaluate_from_args(args) -> dict:
    """What ``tpsep evaluate`` does: print the table and its key line; return the JSON-able results."""
    separators = _separators_from_args(args)
    dataset = _dataset_from_args(args)
    tracks = _load_tracks(dataset, args.split)
    if args.tracks is not None:
        tracks = tracks[: args.tracks]
    if not tracks:
        raise SystemExit(f"tpsep evaluate: dataset {dataset!r} split {args.split!r} has no tracks")
    targets = args.targets or default_targets(tracks[0].source_names, with_accompaniment=True)
    frames = pd.concat([evaluate(separator, tracks, targets, method=name, mode=args.metric, progress=True)
                        for name, separator in separators], ignore_index=True)
    summary = metrics.summary_table(frames)
    print(f"dataset {dataset!r}, split {args.split!r}: {len(tracks)} tracks at {tracks[0].rate} Hz; "
          f"metric: {MODE_HELP[args.metric]}")
    print(metrics.format_summary(summary))
    results = {
        "command": "evaluate", "dataset": str(dataset), "split": args.split, "tracks": len(tracks),
        "metric": args.metric, "aggregation": summary.attrs["aggregation"],
        "stft": {"n_fft": args.n_fft, "hop": args.hop} if args.oracle else None,
        "summary": summary_to_dict(summary),
        "per_track": [{"method": m, "track": t, "target": g,
                       **{k: (None if pd.isna(v) else float(v)) for k, v in row.items()}}
                      for (m, t, g), row in metrics.track_table(frames).iterrows()],
    }
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2), encoding="utf-8")
    if getattr(args, "per_sample", None):
        tables = [per_sample_table(separator, tracks, targets, mode=args.metric).assign(method=name)
                  for name, separator in separators]
        per_sample = pd.concat(tables)
        Path(args.per_sample).parent.mkdir(parents=True, exist_ok=True)
        per_sample.to_csv(args.per_sample)
        # the pair of voices makes separation hard or easy, the SNR enhancement
        group = "pair" if "pair" in per_sample.columns else "snr" if "snr_db" in per_sample.columns else None
        for name, table in zip((n for n, _ in separators), tables):
            print(f"per sample, {name} ({table.attrs['metric']}, dB), written to {args.per_sample}:")
            print(per_sample_summary(table, by=group).to_string())
    main_metric = "SI-SDR" if args.metric == "si_sdr" else "SDR"
    focus = "vocals" if "vocals" in targets else targets[0]
    figures = ", ".join(f"{method} {values[focus][main_metric]:.2f} dB"
                        for method, values in results["summary"].items() if focus in values)
    print(f"{focus} {main_metric} (median over tracks): {figures}")
    return results


# ----------------------------------------------------------------------------- leaderboard

LEADERBOARD_TASKS = ("music", "speech")
LEADERBOARD_KINDS = ("oracle", "mixture", "reference", "checkpoint")  # the order of the rows and of the colours
LEADERBOARD_ORACLES = {"ibm": "oracle IBM", "irm": "oracle IRM", "irm2": "oracle IRM2", "wiener": "oracle Wiener-like"}
MUSIC_TARGETS = ("vocals", "accompaniment")
SPEECH_PAIRS = ("FF", "FM", "MM")  # the pairs of voices of the speech set (meta["pair"])
MUSIC_MODELS = ("unet", "bandsplit")  # trained on music when their checkpoint names no dataset we know
LEADERBOARD_METRICS = {
    "music": "museval SDR (BSS Eval v4), median over 1 s frames within each track, then median over tracks; "
             "oracles: masks of an STFT of 1024 points, hop 256",
    "speech": "SI-SDRi (SI-SDR of the output minus SI-SDR of the mixture, mean over the two voices of a mixture, "
              "outputs matched to voices by best permutation), mean and median over mixtures, and mean by pair "
              "of voices; the mixture scores 0 by definition; oracles: masks of an STFT of 1024 points, hop 256",
}
MAIN_SCORE = {"music": "vocals SDR", "speech": "SI-SDRi mean"}
KIND_COLOURS = {"oracle": "tab:gray", "mixture": "tab:red", "reference": "tab:blue", "checkpoint": "tab:green"}

# Published figures, measured by their authors on other datasets (not on this course's data): they show
# what the models reach with full-size data and training, and are never mixed with the measured rows.
# Each was read in the paper's own text (see each "source"). Add a figure here only with its citation
# and the data it was measured on, after reading it in the paper itself.
PUBLISHED = (
    {"task": "speech", "method": "TF-GridNet", "dataset": "WSJ0-2mix, without data augmentation or dynamic mixing",
     "figure": "SI-SDRi (dB)", "value": 23.5,
     "citation": "Z.-Q. Wang, S. Cornell, S. Choi, Y. Lee, B.-Y. Kim, S. Watanabe, \"TF-GridNet: Integrating Full- and "
                 "Sub-Band Modeling for Speech Separation\", IEEE/ACM TASLP, 2023",
     "source": "the paper's abstract, https://ar5iv.labs.arxiv.org/html/2211.12433"},
    # the two figures notebook 05 discusses: the paper's title claim is the first above the second
    {"task": "speech", "method": "Conv-TasNet (non-causal, gLN)", "dataset": "WSJ0-2mix",
     "figure": "SI-SNRi (dB)", "value": 15.3,
     "citation": "Y. Luo, N. Mesgarani, \"Conv-TasNet: Surpassing Ideal Time-Frequency Magnitude Masking for "
                 "Speech Separation\", IEEE/ACM TASLP, 2019",
     "source": "the paper's comparison with the oracle masks, as cited in notebook 05"},
    {"task": "speech", "method": "IRM (oracle)", "dataset": "WSJ0-2mix",
     "figure": "SI-SNRi (dB)", "value": 12.2,
     "citation": "Y. Luo, N. Mesgarani, IEEE/ACM TASLP, 2019 (the same table)",
     "source": "the paper's comparison with the oracle masks, as cited in notebook 05"},
)


def _dataset_kind(dataset) -> tuple:
    """What identifies a dataset: the renderer behind an embedded name ("speech" and "libri2mix-mini" are
    the same data) and its options; a path stays itself."""
    from tpsep.data import EMBEDDED, split_dataset_options

    name, options = split_dataset_options(str(dataset))
    return EMBEDDED.get(name, name), tuple(sorted(options.items()))


def _trained_task(dataset, model_name) -> str:
    """The task a model was trained for, from the dataset it records (else from its kind of model):
    "music", "speech" (two voices to separate) or "speech enhancement"."""
    if dataset:
        kind, options = _dataset_kind(dataset)
        if dict(options).get("task") == "enhance":
            return "speech enhancement"
        if kind == "chorales":
            return "music"
        if kind in ("libri2mix-mini", "speech2mix"):
            return "speech"
    return "music" if model_name in MUSIC_MODELS else "speech"


def checkpoint_task(path) -> str:
    """The task the checkpoint at ``path`` was trained for: "music", "speech" or "speech enhancement"
    (what :func:`leaderboard` needs to know to put it on the right board)."""
    extra = load_checkpoint(str(path)).get("extra") or {}
    if "model_name" not in extra:
        raise ValueError(f"{str(path)!r} does not say which model it holds (extra['model_name'] is missing); "
                         f"expected a checkpoint written by tpsep train or by fit(..., extra=...)")
    return _trained_task(extra.get("dataset"), extra["model_name"])


def _is_real_data(dataset) -> bool:
    from tpsep.data import EMBEDDED, split_dataset_options

    return split_dataset_options(str(dataset))[0] not in EMBEDDED


def _checkpoint_row(path) -> tuple[dict, Callable, dict]:
    """``(row, method, checkpoint)`` of a checkpoint of ``tpsep train``, labelled as ``tpsep evaluate`` does."""
    checkpoint = load_checkpoint(str(path))
    separator = separator_from(checkpoint, source=repr(str(path)))
    extra, state = checkpoint.get("extra") or {}, checkpoint.get("state") or {}
    seconds = ((state.get("history") or {}).get("time") or [None])[-1]
    name = checkpoint_label(path, checkpoint)
    row = {"method": name, "kind": "checkpoint",
           "parameters (M)": sum(p.numel() for p in separator.parameters()) / 1e6,
           "steps": state.get("step"), "minutes": None if seconds is None else seconds / 60}
    return row, track_method(separator, name), checkpoint


def _plain_number(value):
    """A numpy or pandas number as the Python number JSON can write (steps stay whole)."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


@dataclass
class Leaderboard:
    """What :func:`leaderboard` measured, and the published figures kept apart from it."""

    task: str
    dataset: str
    split: str
    tracks: int
    metric: str                 # the one metric of every measured row, in words
    measured: pd.DataFrame      # one row per method: method, kind, parameters (M), steps, minutes, scores
    published: pd.DataFrame     # method, dataset, figure, value, citation: other data, other training
    notes: list = field(default_factory=list)  # what was skipped, and why

    @property
    def main_score(self) -> str:
        """The column the figure shows and ``best`` ranks by."""
        return MAIN_SCORE[self.task]

    @property
    def best(self) -> pd.Series | None:
        """The best row that is a method (a reference or a checkpoint), not an oracle: None if none was scored."""
        methods = self.measured[self.measured["kind"].isin(["reference", "checkpoint"])]
        return None if methods.empty else methods.loc[methods[self.main_score].idxmax()]

    def __str__(self) -> str:
        shown = self.measured.copy()
        if "steps" in shown.columns:  # whole numbers, "-" when unknown
            shown["steps"] = [("-" if pd.isna(v) else int(v)) for v in shown["steps"]]
        lines = [f"leaderboard, {self.task}: dataset {self.dataset!r}, split {self.split!r}, {self.tracks} tracks",
                 f"metric: {self.metric}", "",
                 shown.to_string(index=False, float_format=lambda v: f"{v:.2f}", na_rep="-")]
        lines += [f"note: {note}" for note in self.notes]
        lines += ["", "Published (other datasets; not comparable line by line):"]
        if self.published.empty:
            lines.append(f"  none verified for {self.task}")
        for row in self.published.itertuples():
            lines.append(f"  {row.method}: {row.figure} {row.value:g} on {row.dataset}; {row.citation}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """The JSON-able results: the measured rows and, apart, the published ones."""
        def records(table):
            return [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in table.to_dict("records")]

        return {"command": "leaderboard", "task": self.task, "dataset": self.dataset, "split": self.split,
                "tracks": self.tracks, "metric": self.metric, "main_score": self.main_score,
                "measured": records(self.measured), "published": records(self.published), "notes": list(self.notes)}

    def to_csv(self, path) -> Path:
        """Write the measured table (one row per method) to CSV; the published figures are in :meth:`to_json`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.measured.to_csv(path, index=False)
        return path

    def to_json(self, path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, default=_plain_number), encoding="utf-8")
        return path

    def plot(self, path=None, ax=None):
        """A horizontal bar per method of the main score, coloured by kind.

        With ``path``, on a figure of its own written there (returns the path); otherwise on ``ax``
        (a notebook's axes; returns them)."""
        # a Figure of its own, drawn by Agg: no pyplot, so a notebook's backend and figures are left alone
        from matplotlib.figure import Figure
        from matplotlib.patches import Patch

        if (path is None) == (ax is None):
            raise ValueError("Leaderboard.plot draws either to a file (path=...) or on axes (ax=...): give one")
        table = self.measured.iloc[::-1]  # the first row on top
        if ax is None:
            figure = Figure(figsize=(7, 0.4 * len(table) + 1.5))
            axis = figure.subplots()
        else:
            figure, axis = None, ax
        bars = axis.barh(table["method"], table[self.main_score].astype(float),
                         color=[KIND_COLOURS[k] for k in table["kind"]])
        axis.bar_label(bars, fmt="%.1f", fontsize="small", padding=2)  # the mixture's 0 dB has no bar to see
        axis.axvline(0, color="black", linewidth=0.8)
        axis.set_xlabel(f"{self.main_score} (dB)")
        axis.set_title(f"{self.task}: {self.dataset!r} {self.split}, {self.tracks} tracks")
        shown = [kind for kind in LEADERBOARD_KINDS if kind in set(table["kind"])]
        axis.legend(handles=[Patch(color=KIND_COLOURS[k], label=k) for k in shown], loc="lower right",
                    fontsize="small")
        if figure is None:
            return axis
        figure.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path)
        return path


def _music_scores(method: Callable, tracks, name: str, progress: bool = True) -> dict:
    frames = evaluate(method, tracks, MUSIC_TARGETS, method=name, mode="museval", progress=progress)
    summary = metrics.summary_table(frames)
    return {f"{target} SDR": float(summary.loc[(name, target), "SDR"]) for target in MUSIC_TARGETS}


def _speech_scores(method: Callable, tracks, name: str) -> dict:
    table = per_sample_table(method, tracks, method=name, mode="si_sdr")
    scores = {"SI-SDRi mean": table["improvement"].mean(), "SI-SDRi median": table["improvement"].median()}
    if "pair" in table.columns:
        by_pair = per_sample_summary(table, by="pair")
        for pair in SPEECH_PAIRS:
            scores[f"SI-SDRi {pair}"] = by_pair.loc[(pair, "improvement"), "mean"] if pair in by_pair.index else None
    scores["output SI-SDR mean"] = table["output"].mean()
    return {k: (None if v is None else float(v)) for k, v in scores.items()}


def leaderboard(task: str = "speech", *, split: str = "test", checkpoints=(), references: bool = True,
                oracles: bool = True, max_tracks: int | None = None, dataset=None,
                progress: bool = True) -> Leaderboard:
    """Score every available separator on one split, with one metric for all.

    The rows: the oracle masks (ceilings: they read the true sources), the mixture itself (the
    floor), the references shipped with tpsep that were trained on this dataset, and the
    ``checkpoints`` given. The published figures of the papers come apart, in ``published``:
    they were measured on other data and are not comparable line by line.

    Args:
        task: "music" (museval SDR of vocals and accompaniment) or "speech" (SI-SDRi).
        split: the dataset split to score.
        checkpoints: paths of checkpoints written by ``tpsep train`` for this task.
        references: score the shipped references trained on this dataset.
        oracles: score the oracle masks (IBM, IRM, IRM2, Wiener-like).
        max_tracks: score only the first N tracks (None: all of the split).
        dataset: the data to score on (default: the course's dataset of the task, "music" or "speech");
            on real recordings (a path), every reference of the task is scored, trained elsewhere.
        progress: music: show museval's progress bar per method.

    Returns:
        a :class:`Leaderboard`; ``print`` it, or write it with ``to_csv``, ``to_json``, ``plot``.
    """
    from tpsep.checkpoints import reference, reference_card, reference_names

    if task not in LEADERBOARD_TASKS:
        raise ValueError(f"unknown leaderboard task {task!r}; expected one of {LEADERBOARD_TASKS}")
    if max_tracks is not None and max_tracks < 1:
        raise ValueError(f"max_tracks must be a positive number of tracks, got {max_tracks}")
    dataset = str(dataset or task)
    rows: list[tuple[dict, Callable]] = []
    notes = []
    # the checkpoints first: a wrong one fails before any minute of scoring
    for path in checkpoints:
        row, method, checkpoint = _checkpoint_row(path)
        trained_on = (checkpoint.get("extra") or {}).get("dataset")
        trained_for = _trained_task(trained_on, checkpoint["extra"]["model_name"])
        if trained_for != task:
            raise ValueError(f"checkpoint {str(path)!r} was trained for {trained_for} (dataset {trained_on!r}), "
                             f"but this leaderboard is for {task}; give a checkpoint trained on {task}")
        if trained_on and _dataset_kind(trained_on) != _dataset_kind(dataset):
            notes.append(f"{row['method']} was trained on {trained_on!r}, scored on {dataset!r}")
        rows.append((row, method))
    if references:
        for name in reference_names():
            card = reference_card(name)
            if _trained_task(card.get("dataset"), card.get("model")) != task:
                continue
            if _is_real_data(dataset):  # real recordings: how far the course's models carry over
                notes.append(f"reference {name} was trained on {card.get('dataset')!r}, scored on {dataset!r}")
            elif _dataset_kind(card.get("dataset")) != _dataset_kind(dataset):
                notes.append(f"reference {name} skipped: trained on {card.get('dataset')!r}, not on {dataset!r}")
                continue
            separator = separator_from(load_checkpoint(str(reference(name))), source=f"reference {name!r}")
            rows.append(({"method": name, "kind": "reference",
                          "parameters (M)": card["parameters"] / 1e6 if card.get("parameters") else None,
                          "steps": card.get("steps"), "minutes": card.get("training_minutes")},
                         track_method(separator, name)))
        if not any(row["kind"] == "reference" for row, _ in rows):
            notes.append(f"no shipped reference was trained on {dataset!r}")
    if oracles:
        rows += [({"method": label, "kind": "oracle"}, masks.oracle_separator(kind))
                 for kind, label in LEADERBOARD_ORACLES.items()]
    rows.append(({"method": "mixture", "kind": "mixture"}, masks.oracle_separator("mix")))

    tracks = _load_tracks(dataset, split)[:max_tracks]
    if not tracks:
        raise ValueError(f"dataset {dataset!r} split {split!r} has no tracks to score")
    if task == "music" and "vocals" not in tracks[0].source_names:
        raise ValueError(f"the music leaderboard scores vocals and accompaniment, but {dataset!r} has the "
                         f"sources {list(tracks[0].source_names)}")
    # museval takes seconds per track and method, with a bar; SI-SDR is quick and has none
    score = partial(_music_scores, progress=progress) if task == "music" else _speech_scores
    measured = pd.DataFrame([{**row, **score(method, tracks, row["method"])} for row, method in rows])
    leading = ["method", "kind", "parameters (M)", "steps", "minutes"]
    measured = measured.reindex(columns=leading + [c for c in measured.columns if c not in leading])
    order = {kind: i for i, kind in enumerate(LEADERBOARD_KINDS)}
    measured = (measured.assign(_order=measured["kind"].map(order))
                .sort_values(["_order", MAIN_SCORE[task]], ascending=[True, False])
                .drop(columns="_order").reset_index(drop=True)
                .astype({"steps": "Int64"}))  # whole numbers, or <NA> when unknown
    published = pd.DataFrame([{k: v for k, v in entry.items() if k != "task"}
                              for entry in PUBLISHED if entry["task"] == task],
                             columns=["method", "dataset", "figure", "value", "citation", "source"])
    return Leaderboard(task=task, dataset=dataset, split=split, tracks=len(tracks),
                       metric=LEADERBOARD_METRICS[task], measured=measured, published=published, notes=notes)


def add_leaderboard_command(subparsers) -> argparse.ArgumentParser:
    """Register ``tpsep leaderboard`` on an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "leaderboard",
        help="score oracles, the mixture, the shipped references and checkpoints on one test split",
        description=(
            "Score every available separator on one split with one metric: the oracle masks "
            "(ceilings), the mixture (the floor), the shipped references trained on this data, and "
            "the checkpoints given. Music: museval SDR, median of frame medians; speech: SI-SDRi, "
            "mean and median, and by pair of voices. Published figures of the papers are printed "
            "apart: they were measured on other data.\n\n"
            "examples:\n"
            "  tpsep leaderboard speech --csv board.csv --plot board.png\n"
            "  tpsep leaderboard speech --checkpoint runs/ctn/best.pt --no-oracles\n"
            "  tpsep leaderboard music --tracks 2"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("task", choices=LEADERBOARD_TASKS, help="music or speech")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--dataset", default=None, help="the data to score on (default: the task's own, music or speech)")
    parser.add_argument("--checkpoint", nargs="+", default=[], metavar="PATH",
                        help="checkpoint(s) of `tpsep train` to score too")
    parser.add_argument("--no-references", dest="references", action="store_false",
                        help="leave out the references shipped with tpsep")
    parser.add_argument("--no-oracles", dest="oracles", action="store_false", help="leave out the oracle masks")
    parser.add_argument("--tracks", type=int, default=None, help="score only the first N tracks")
    parser.add_argument("--csv", metavar="PATH", default=None, help="also write the measured table to PATH")
    parser.add_argument("--json", metavar="PATH", default=None,
                        help="also write the measured and the published figures to PATH as JSON")
    parser.add_argument("--plot", metavar="PATH", default=None, help="also draw the main score per method to PATH")
    parser.set_defaults(func=run_leaderboard)
    return parser


def run_leaderboard(args) -> int:
    """Entry point of ``tpsep leaderboard``: print the table, write what was asked, end with the key line."""
    board = leaderboard(args.task, split=args.split, checkpoints=args.checkpoint, references=args.references,
                        oracles=args.oracles, max_tracks=args.tracks, dataset=args.dataset)
    print(board)
    for path, write in ((args.csv, board.to_csv), (args.json, board.to_json), (args.plot, board.plot)):
        if path:
            write(path)
    best = board.best
    best_text = "none (no reference or checkpoint)" if best is None else \
        f"{best['method']} {board.main_score} {best[board.main_score]:.2f} dB"
    print(f"leaderboard: task={board.task} methods={len(board.measured)} tracks={board.tracks} best={best_text}")
    return 0
