"""A longer U-Net run than notebook 03's, and its vocals SDR on the test split.

Trains `tpsep train unet`'s recipe for a wall-clock budget, then scores the best
validation checkpoint on the whole test split with museval (median over 1 s
frames, then over tracks), next to the ideal ratio mask at the model's own
setting (8192 Hz, n_fft 1024, hop 768). Prints the figures; it asserts nothing.

    python benchmarks/unet_long_run.py --minutes 20 --out runs/unet_long --json /tmp/unet_long.json

On a shared CPU pass --threads 1. Timings depend on the machine and its load.

Measured (2026-11-30, 2-core CPU, 1 thread, four runs side by side, `--max-steps 1211`,
the step count of the recorded 15-minute run), before and after the trainer told the
patch dataset the epoch (new random patches every epoch): vocals SDR 12.90 -> 12.66 dB,
accompaniment 15.61 -> 15.88 dB, against 13.77 dB for the IRM at 8192 Hz. With 800
random patches per epoch over 20 minutes of music, each epoch already covered the
data many times: the fix changes nothing measurable here.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace

import torch

import tpsep
from tpsep import data, evaluation, masks, metrics, separate
from tpsep.checkpoints import load_separator
from tpsep.models.unet import COURSE, UNetSeparator
from tpsep.recipes import DataSettings, unet_recipe
from tpsep.train import TrainConfig, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="music")
    parser.add_argument("--minutes", type=float, default=20.0)
    parser.add_argument("--max-steps", type=int, default=None, help="a step budget instead (same on any machine)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--precision", default="fp32", help="fp32 (as on the CPU) | bf16 | auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--patches-per-epoch", type=int, default=800)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (1 on a shared machine)")
    parser.add_argument("--out", default="runs/unet_long")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    tpsep.seed_everything(0)
    recipe = unet_recipe(UNetSeparator(COURSE, verbose=True),
                         DataSettings(dataset=args.dataset, batch_size=args.batch_size,
                                      patches_per_epoch=args.patches_per_epoch))
    config = TrainConfig(minutes=None if args.max_steps else args.minutes, max_steps=args.max_steps, lr=args.lr,
                         device=args.device, precision=args.precision, out_dir=args.out, progress=False,
                         schedule="plateau", tensorboard=False)
    start = time.time()
    extra = {"model_name": "unet", "model_config": asdict(COURSE), "dataset": args.dataset}
    history = fit(recipe.model, recipe.loss_fn, recipe.train_loader, recipe.valid_loader, config, extra=extra)
    train_minutes = (time.time() - start) / 60
    print(f"trained {history.steps} steps in {train_minutes:.1f} min; best validation loss "
          f"{history.best_valid:.4f} at step {history.best_step}", flush=True)

    best = load_separator(f"{args.out}/best.pt")
    refined = UNetSeparator(replace(best.config, refine=True), unet=best.unet)
    tracks = data.load_dataset(args.dataset, split="test")
    frames = [evaluation.evaluate(best, tracks, method="U-Net (long run)"),
              evaluation.evaluate(refined, tracks, method="U-Net + Wiener-like"),
              evaluation.evaluate(separate.oracle_at_model_rate, tracks, method="IRM, 8192 Hz"),
              evaluation.evaluate(masks.oracle_separator("irm", n_fft=1024, hop=256), tracks,
                                  method="IRM (notebook 02)")]
    import pandas as pd
    table = metrics.summary_table(pd.concat(frames, ignore_index=True))
    print(metrics.format_summary(table))
    vocals = table.xs("vocals", level="target")["SDR"]
    figures = {"steps": history.steps, "train_minutes": round(train_minutes, 2), "best_valid": history.best_valid,
               "test_tracks": len(tracks), "vocals_sdr": {k: round(float(v), 2) for k, v in vocals.items()}}
    print("unet_long_run: " + " ".join(f"{k}={v}" for k, v in figures.items() if k != "vocals_sdr")
          + " vocals_SDR: " + ", ".join(f"{k} {v:.2f} dB" for k, v in figures["vocals_sdr"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
