"""A longer TF-GridNet run than notebook 07's, and its SI-SDRi on the speech test split.

Trains `tpsep train gridnet`'s recipe (the course TF-GridNet, PIT SI-SNR, random chunks of the
embedded LibriSpeech mixtures) for a wall-clock or step budget, then scores the best validation
checkpoint on the whole test split with `tpsep.evaluation.per_sample_table`, beside a Conv-TasNet
(a shipped reference by name, or a checkpoint path) and the ideal ratio mask on a 32 ms STFT.
Prints the mean SI-SDRi overall and by pair of voices (FF, FM, MM); with ``--task enhance``, the
model has one output and the breakdown is by SNR range. It asserts nothing.

    python benchmarks/gridnet_long_run.py --minutes 40 --threads 1 --out runs/gridnet_long \\
        --json /tmp/gridnet_long.json
    python benchmarks/gridnet_long_run.py --checkpoint runs/gridnet_long/best.pt   # score only

On a shared CPU pass --threads 1. Timings depend on the machine and its load.

Measured (2026-12-01, 2-core CPU, 1 thread, beside another training run; the defaults):
3215 steps in 40.4 min, best validation SI-SNR 3.01 dB at the last validation. SI-SDRi on the
90 test mixtures, mean (median; FF, FM, MM): TF-GridNet 2.38 (2.10; -1.73, 3.78, 2.99),
Conv-TasNet convtasnet-speech-b4x1s (7314 H200 steps, same batches) 1.92 (1.27; 1.91, 2.08,
1.54), IRM 13.84 (13.76; 14.06, 13.73, 13.90). This run is the shipped reference
gridnet-speech-b4x1s.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace

import pandas as pd
import torch

import tpsep
from tpsep import data, masks
from tpsep.checkpoints import load_separator, reference, reference_names
from tpsep.evaluation import enhancement_method, per_sample_table
from tpsep.models import gridnet
from tpsep.models.gridnet import TFGridNet
from tpsep.recipes import DataSettings, pit_recipe
from tpsep.train import TrainConfig, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="speech")
    parser.add_argument("--task", default="separate", help="separate | enhance")
    parser.add_argument("--minutes", type=float, default=40.0)
    parser.add_argument("--max-steps", type=int, default=None, help="a step budget instead (same on any machine)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--precision", default="fp32", help="fp32 (as on the CPU) | bf16 | auto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=1.0, help="length of the training chunks")
    parser.add_argument("--lr", type=float, default=3e-3, help="3e-3 leaves the 'outputs = mixture' plateau")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (1 on a shared machine)")
    parser.add_argument("--convtasnet", default="convtasnet-speech-b4x1s",
                        help=f"a Conv-TasNet to score beside it: a shipped reference {reference_names()} or a path")
    parser.add_argument("--checkpoint", default=None, help="skip training: score this TF-GridNet checkpoint")
    parser.add_argument("--out", default="runs/gridnet_long")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    enhance = args.task == "enhance"
    config = replace(gridnet.COURSE, C=1) if enhance else gridnet.COURSE

    figures = {"task": args.task}
    if args.checkpoint is None:
        tpsep.seed_everything(0)
        settings = DataSettings(dataset=args.dataset, batch_size=args.batch_size, seconds=args.seconds, task=args.task)
        recipe = pit_recipe(TFGridNet(config), settings)
        train_config = TrainConfig(minutes=None if args.max_steps else args.minutes, max_steps=args.max_steps,
                                   lr=args.lr, device=args.device, precision=args.precision, out_dir=args.out,
                                   progress=False, schedule="plateau", min_lr=args.lr / 100, save_every=500,
                                   tensorboard=False)
        start = time.time()
        extra = {"model_name": "gridnet", "model_config": asdict(config), "dataset": str(recipe.dataset)}
        history = fit(recipe.model, recipe.loss_fn, recipe.train_loader, recipe.valid_loader, train_config,
                      extra=extra)
        train_minutes = (time.time() - start) / 60
        print(f"trained {history.steps} steps in {train_minutes:.1f} min; best validation loss "
              f"{history.best_valid:.4f} at step {history.best_step}", flush=True)
        figures.update(steps=history.steps, train_minutes=round(train_minutes, 2), best_valid=history.best_valid,
                       best_step=history.best_step)
        args.checkpoint = f"{args.out}/best.pt"

    tracks = data.load_dataset(args.dataset, split="test", task=args.task)
    model = load_separator(args.checkpoint)
    if enhance:
        methods = {"TF-GridNet (long run)": enhancement_method(model),
                   "IRM (STFT 32 ms)": masks.oracle_separator("irm", n_fft=256, hop=64)}
        targets, by = ["speech"], "snr"
    else:
        convtasnet_path = args.convtasnet if args.convtasnet.endswith(".pt") else reference(args.convtasnet)
        methods = {"TF-GridNet (long run)": model, f"Conv-TasNet ({args.convtasnet})": load_separator(convtasnet_path),
                   "IRM (STFT 32 ms)": masks.oracle_separator("irm", n_fft=256, hop=64)}
        targets, by = None, "pair"
    tables = {name: per_sample_table(method, tracks, targets, method=name) for name, method in methods.items()}
    summary = pd.DataFrame({name: table["improvement"] for name, table in tables.items()})
    table = next(iter(tables.values()))  # every table has the same tracks and meta columns
    groups = table[by] if by != "snr" else pd.cut(table["snr_db"], [-5, 0, 5, 10], right=False)
    result = summary.groupby(groups.astype(str)).mean().T
    result.insert(0, "all", summary.mean())
    result.insert(1, "median", summary.median())
    print(f"SI-SDRi (dB), mean over {len(tracks)} test mixtures, overall and by {by}:")
    print(result.round(2).to_string())
    figures.update(test_tracks=len(tracks), si_sdri={k: {g: round(float(v), 2) for g, v in row.items()}
                                                    for k, row in result.iterrows()})
    print("gridnet_long_run: " + " ".join(f"{k}={v}" for k, v in figures.items() if k != "si_sdri"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
