"""How much does tpsep.train.fit cost on top of a bare PyTorch loop?

Times the same number of optimiser steps of the course U-Net on random
(batch, 512, 128) patches, once with a bare loop (forward, L1 loss, backward,
AdamW step) and once through ``fit`` (plus clipping, gradient-norm tracking,
the NaN guard, per-step history), and prints seconds per step for both.
Optionally with EMA. Prints only; asserts nothing.

    python benchmarks/train_overhead.py --steps 10 --batch-size 2 --threads 1
"""

import argparse
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from tpsep.losses import l1_mask_loss
from tpsep.models.unet import UNet, UNetConfig
from tpsep.train import TrainConfig, fit


def loss_fn(model, batch):
    mixture, target = batch
    return l1_mask_loss(model(mixture), mixture, target)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    g = torch.Generator().manual_seed(0)
    n = args.steps * args.batch_size
    mixture = torch.rand(n, 512, 128, generator=g)
    target = mixture * torch.rand(n, 512, 128, generator=g)
    loader = DataLoader(TensorDataset(mixture, target), batch_size=args.batch_size, shuffle=True)

    torch.manual_seed(0)
    model = UNet(UNetConfig(dropout=0.0), verbose=False).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn(model, (mixture[:1].to(device), target[:1].to(device))).backward()  # warm-up
    optimizer.zero_grad()
    start = time.perf_counter()
    for batch in loader:
        loss = loss_fn(model, [t.to(device) for t in batch])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    bare = (time.perf_counter() - start) / args.steps

    results = {"bare loop": bare}
    for name, ema in (("fit", None), ("fit + EMA", 0.999)):
        torch.manual_seed(0)
        model = UNet(UNetConfig(dropout=0.0), verbose=False)
        config = TrainConfig(epochs=1, device=args.device, ema=ema, progress=False, tensorboard=False)
        history = fit(model, loss_fn, loader, config=config)
        results[name] = history.time[-1] / history.steps

    for name, seconds in results.items():
        print(f"{name:>10}: {seconds * 1000:8.1f} ms/step  ({seconds / bare:5.2f} x bare)")
    print(f"train_overhead: steps={args.steps} batch={args.batch_size} threads={args.threads} "
          f"device={args.device} bare_ms={bare * 1000:.1f} fit_ms={results['fit'] * 1000:.1f} "
          f"fit_ema_ms={results['fit + EMA'] * 1000:.1f}")


if __name__ == "__main__":
    main()
