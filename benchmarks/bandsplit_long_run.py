"""A longer band-split run than notebook 06's, and its vocals SDR on the music test split, full band.

Trains `tpsep train bandsplit`'s recipe (the course BSRNN, 16 kHz, full band, waveform L1 +
complex STFT L1) for a wall-clock or step budget, then scores the best validation checkpoint on
the whole test split with museval (median over 1 s frames, then over tracks), beside:

- a U-Net checkpoint (``--unet``, e.g. the best.pt of ``benchmarks/unet_long_run.py``);
- the ideal ratio mask full band at 16 kHz (n_fft 1024, hop 256: the band-split model's STFT);
- the ideal ratio mask in the U-Net's setting (8192 Hz): the U-Net's ceiling;
- the mixture itself (the floor).

Prints the figures; it asserts nothing.

    python benchmarks/bandsplit_long_run.py --minutes 30 --threads 1 --out runs/bandsplit_long \\
        --unet runs/unet_long/best.pt --json /tmp/bandsplit_long.json

On a shared CPU pass --threads 1. Timings depend on the machine and its load.

Measured (2026-12-01, 2-core CPU, 1 thread, beside other runs; the defaults: batches of 4
two-second chunks, lr 1e-3, plateau schedule), vocals SDR on the 8 test tracks, museval
(accompaniment in brackets):

- 1135 steps (35 min): band-split 5.51 dB;
- 2527 steps (80 min, resumed with `tpsep train bandsplit --resume`): 7.11 (8.02) dB;
- 3560 steps (105 min, the LR halved once at step ~3200): 7.38 (9.08) dB;
- the U-Net of `benchmarks/unet_long_run.py --max-steps 1211` (18.7 min): 8.33 (7.88) dB;
- IRM 16 kHz full band 12.50 dB, IRM at 8192 Hz 11.85 dB, the mixture -1.24 dB.

The band-split model is ahead on the accompaniment and on SAR, still behind on the vocals. Per
step it hears 8 s of audio where the U-Net's batch of 8 patches holds 96 s, and its step costs
more: at the 2527-step mark, after four times the U-Net's CPU time, it had heard about a sixth
of the U-Net's audio (5.6 h against 32 h).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict

import pandas as pd
import torch

import tpsep
from tpsep import data, evaluation, masks, metrics, separate
from tpsep.checkpoints import load_separator
from tpsep.models.bandsplit import COURSE, BandSplit
from tpsep.recipes import DataSettings, bandsplit_recipe
from tpsep.train import TrainConfig, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="music")
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--max-steps", type=int, default=None, help="a step budget instead (same on any machine)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--precision", default="fp32", help="fp32 (as on the CPU) | bf16 | auto")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of the training chunks")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (1 on a shared machine)")
    parser.add_argument("--unet", default=None, help="a U-Net checkpoint to score beside it")
    parser.add_argument("--checkpoint", default=None, help="skip training: score this band-split checkpoint")
    parser.add_argument("--out", default="runs/bandsplit_long")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    figures = {}
    if args.checkpoint is None:
        tpsep.seed_everything(0)
        recipe = bandsplit_recipe(BandSplit(COURSE, verbose=True),
                                  DataSettings(dataset=args.dataset, batch_size=args.batch_size, seconds=args.seconds))
        config = TrainConfig(minutes=None if args.max_steps else args.minutes, max_steps=args.max_steps,
                             lr=args.lr, device=args.device, precision=args.precision, out_dir=args.out,
                             progress=False, schedule="plateau", save_every=200, tensorboard=False)
        start = time.time()
        extra = {"model_name": "bandsplit", "model_config": asdict(COURSE), "dataset": args.dataset}
        history = fit(recipe.model, recipe.loss_fn, recipe.train_loader, recipe.valid_loader, config, extra=extra)
        train_minutes = (time.time() - start) / 60
        print(f"trained {history.steps} steps in {train_minutes:.1f} min; best validation loss "
              f"{history.best_valid:.4f} at step {history.best_step}", flush=True)
        figures.update(steps=history.steps, train_minutes=round(train_minutes, 2), best_valid=history.best_valid,
                       best_step=history.best_step)
        args.checkpoint = f"{args.out}/best.pt"

    tracks = data.load_dataset(args.dataset, split="test")
    methods = [(load_separator(args.checkpoint), "band-split (long run)")]
    if args.unet:
        methods.append((load_separator(args.unet), "U-Net"))
    methods += [(masks.oracle_separator("irm", n_fft=1024, hop=256), "IRM, 16 kHz full band"),
                (separate.oracle_at_model_rate, "IRM, 8192 Hz (U-Net's ceiling)"),
                (masks.oracle_separator("mix"), "mixture")]
    frames = []
    for method, name in methods:
        start = time.time()
        frames.append(evaluation.evaluate(method, tracks, method=name))
        print(f"scored {name} in {time.time() - start:.0f} s", flush=True)
    table = metrics.summary_table(pd.concat(frames, ignore_index=True))
    print(metrics.format_summary(table))
    vocals = table.xs("vocals", level="target")["SDR"]
    figures.update(test_tracks=len(tracks), vocals_sdr={k: round(float(v), 2) for k, v in vocals.items()})
    print("bandsplit_long_run: " + " ".join(f"{k}={v}" for k, v in figures.items() if k != "vocals_sdr")
          + " vocals_SDR: " + ", ".join(f"{k} {v:.2f} dB" for k, v in figures["vocals_sdr"].items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
