"""Turn a training checkpoint into a reference shipped with tpsep: weights, config and a card.

    python benchmarks/export_reference.py RUN/best.pt convtasnet-speech \\
        --command "bash benchmarks/gpu_speech_runs.sh OUT 4 30000" --machine "one NVIDIA H200"

It scores the checkpoint on the whole test split of the data it was trained on
(SI-SDRi for a speech model, by pair of voices; museval vocals SDR for a music
model), and on the first few test tracks, the quick check that
``tests/test_references.py`` repeats so that a shipped number cannot move
unnoticed. It writes ``tpsep/references/<name>.pt`` and ``<name>.json`` (the card).
"""

from __future__ import annotations

import argparse
import datetime
import platform
from pathlib import Path

import pandas as pd
import torch

from tpsep import checkpoints
from tpsep.data import load_dataset
from tpsep.evaluation import evaluate, per_sample_table

CHECK_TRACKS = 12  # the quick check: enough to catch a change, fast enough for every test run
MUSIC_MODELS = ("unet", "bandsplit")  # scored by museval vocals SDR; the others by SI-SDRi


def music_vocals_sdr(model, tracks) -> pd.Series:
    """museval vocals SDR (dB), median over frames, of ``model`` on each track."""
    frames = evaluate(model, tracks, targets=("vocals", "accompaniment"), mode="museval")
    return frames.query("target == 'vocals' and metric == 'SDR'").groupby("track", sort=False)["value"].median()


def score(model, tracks, music: bool) -> dict:
    if music:
        per_track = music_vocals_sdr(model, tracks)
        return {"metric": "vocals SDR (museval, median of frame medians)", "value": round(float(per_track.median()), 3)}
    per_track = per_sample_table(model, tracks)["improvement"]
    result = {"metric": "SI-SDRi (mean)", "value": round(float(per_track.mean()), 3),
              "median": round(float(per_track.median()), 3)}
    pairs = pd.Series({t.name: t.meta.get("pair") for t in tracks})
    if pairs.notna().all():
        result["by pair"] = {pair: round(float(group.mean()), 3)
                             for pair, group in per_track.groupby(pairs.reindex(per_track.index))}
    return result


def main(argv=None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("name", help="the reference's name, e.g. convtasnet-speech")
    parser.add_argument("--command", required=True, help="the command that trained it")
    parser.add_argument("--machine", required=True, help="what it ran on")
    parser.add_argument("--note", default="", help="anything else the card should say")
    parser.add_argument("--half", action="store_true",
                        help="store the weights in float16 (half the file); the card scores the rounded weights")
    args = parser.parse_args(argv)

    torch.set_num_threads(2)
    stored = checkpoints.load_checkpoint(args.checkpoint)
    dtype = torch.float16 if args.half else None
    stored["model"] = checkpoints.slim_weights(stored["model"], dtype)  # score what ships
    model = checkpoints.separator_from(stored)
    extra, state = stored["extra"], stored.get("state") or {}
    dataset = extra.get("dataset")
    music = extra["model_name"] in MUSIC_MODELS
    tracks = load_dataset(dataset, split="test")
    minutes = (state.get("history") or {}).get("time") or []
    card = {
        "name": args.name, "model": extra["model_name"], "model_config": extra["model_config"],
        "dataset": dataset, "trained_by": args.command, "machine": args.machine,
        "steps": state.get("step"), "epochs": state.get("epoch"),
        "training_minutes": round(minutes[-1] / 60, 2) if minutes else None,
        "train_config": stored.get("train_config"),
        "parameters": sum(p.numel() for p in model.parameters()),
        "test": {"dataset": dataset, "split": "test", "tracks": len(tracks), **score(model, tracks, music)},
        "check": {"dataset": dataset, "split": "test", "first_tracks": CHECK_TRACKS,
                  **score(model, tracks[:CHECK_TRACKS], music)},
        "exported": datetime.date.today().isoformat(), "exported_with": f"torch {torch.__version__}, "
                                                                       f"{platform.machine()}",
        "weights": "float16" if args.half else "float32",
        "note": args.note,
    }
    path = checkpoints.export_reference(args.checkpoint, checkpoints.REFERENCES / f"{args.name}.pt", card, dtype)
    print(f"{path} ({path.stat().st_size / 1e6:.2f} MB): test {card['test']}, check {card['check']}")
    return path


if __name__ == "__main__":
    main()
