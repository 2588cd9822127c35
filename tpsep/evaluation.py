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
"""

from __future__ import annotations

import argparse
import json
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


def _separators_from_args(args) -> list[tuple[str, Callable]]:
    if args.checkpoint and args.oracle:
        raise SystemExit("tpsep evaluate: give either a CHECKPOINT or --oracle, not both")
    if args.oracle:
        return [(kind, masks.oracle_separator(kind, n_fft=args.n_fft, hop=args.hop)) for kind in args.oracle]
    if not args.checkpoint:
        raise SystemExit("tpsep evaluate: nothing to evaluate; give --oracle KIND or a CHECKPOINT")
    checkpoint = load_checkpoint(args.checkpoint)
    separator = separator_from(checkpoint)
    label = f"{checkpoint['extra']['model_name']} ({Path(args.checkpoint).parent.name or '.'}/{Path(args.checkpoint).name})"
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
