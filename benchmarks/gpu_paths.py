"""Run the trainer's GPU paths for real, and print what they cost.

    python benchmarks/gpu_paths.py            # on a machine with a CUDA GPU (falls back to the CPU)

For the course configurations of the U-Net and Conv-TasNet, on synthetic batches
of the shapes they train on (so that no dataset is needed), it prints:

- seconds per optimiser step with fp32 and with bf16 autocast (``TrainConfig.precision``);
- that a run interrupted and resumed on the GPU gives the same losses as a straight one;
- that each separator takes a 44.1 kHz stereo mixture to estimates at 44.1 kHz, on the GPU.

It prints, it asserts nothing: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from tpsep.devices import choose_device
from tpsep.losses import l1_mask_loss, pit_si_snr_loss
from tpsep.models.convtasnet import COURSE as TASNET_COURSE
from tpsep.models.convtasnet import ConvTasNet
from tpsep.models.unet import COURSE as UNET_COURSE
from tpsep.models.unet import UNetSeparator
from tpsep.train import TrainConfig, fit


def unet_case(batches: int, batch_size: int):
    g = torch.Generator().manual_seed(0)
    mixture = torch.rand(batches * batch_size, 512, 128, generator=g)
    target = mixture * torch.rand(mixture.shape, generator=g)
    loss_fn = lambda unet, batch: l1_mask_loss(unet(batch[0]), batch[0], batch[1])  # noqa: E731
    return (lambda: UNetSeparator(UNET_COURSE).unet), loss_fn, TensorDataset(mixture, target)


def tasnet_case(batches: int, batch_size: int):
    g = torch.Generator().manual_seed(0)
    sources = torch.randn(batches * batch_size, 2, 1, 8000, generator=g) * torch.rand(
        batches * batch_size, 2, 1, 1, generator=g)
    loss_fn = lambda model, batch: pit_si_snr_loss(model(batch[0]), batch[1])  # noqa: E731
    return (lambda: ConvTasNet(TASNET_COURSE, verbose=False)), loss_fn, TensorDataset(sources.sum(1), sources)


def seconds_per_step(make_model, loss_fn, dataset, batch_size, device, precision, steps):
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)
    fit(make_model(), loss_fn, loader, config=TrainConfig(max_steps=3, device=device, precision=precision,
                                                          progress=False, tensorboard=False))  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    torch.manual_seed(0)
    history = fit(make_model(), loss_fn, loader, config=TrainConfig(
        max_steps=steps, device=device, precision=precision, progress=False, tensorboard=False))
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps, history.train_loss[-1]


def resume_matches(make_model, loss_fn, dataset, batch_size, device, precision):
    config = dict(max_steps=12, device=device, precision=precision, progress=False, tensorboard=False, seed=1)
    loader = lambda: DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True)  # noqa: E731
    torch.manual_seed(0)
    straight = fit(make_model(), loss_fn, loader(), config=TrainConfig(**config))
    with tempfile.TemporaryDirectory() as folder:
        torch.manual_seed(0)
        fit(make_model(), loss_fn, loader(), config=TrainConfig(**{**config, "max_steps": 5}, out_dir=folder))
        torch.manual_seed(7)
        resumed = fit(make_model(), loss_fn, loader(), config=TrainConfig(**config, out_dir=folder),
                      resume=f"{folder}/last.pt")
    difference = max(abs(a - b) for a, b in zip(straight.train_loss, resumed.train_loss))
    return straight.train_loss == resumed.train_loss, difference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = str(choose_device(args.device))
    name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    print(f"device: {device} ({name}), torch {torch.__version__}")
    cases = {"U-Net course (batch 8 x 512 x 128)": (unet_case, 8),
             "Conv-TasNet course (batch 4 x 1 s at 8 kHz)": (tasnet_case, 4)}
    for label, (make_case, batch_size) in cases.items():
        make_model, loss_fn, dataset = make_case(batches=16, batch_size=batch_size)
        for precision in ("fp32", "bf16"):
            seconds, loss = seconds_per_step(make_model, loss_fn, dataset, batch_size, device, precision, args.steps)
            print(f"{label}, {precision}: {1000 * seconds:.1f} ms per step ({args.steps} steps), last loss {loss:.4g}")
        for precision in ("fp32", "bf16"):
            same, difference = resume_matches(make_model, loss_fn, dataset, batch_size, device, precision)
            print(f"{label}, {precision}: resumed run {'matches' if same else 'differs from'} the straight one "
                  f"(largest loss difference {difference:.3g})")

    t = np.arange(44100 * 3 + 5) / 44100
    mixture = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 660 * t)]).astype(np.float32)
    try:
        from tpsep.separate import separate
    except ImportError as error:  # soundfile/librosa missing on this machine
        print(f"separate: skipped ({error})")
        return
    for separator in (UNetSeparator(UNET_COURSE), ConvTasNet(TASNET_COURSE, verbose=False)):
        estimates = separate(separator.to(device), mixture, 44100)
        shapes = {k: v.shape for k, v in estimates.items()}
        print(f"separate with {type(separator).__name__} on {device}: 44.1 kHz stereo {mixture.shape} -> {shapes}")


if __name__ == "__main__":
    main()
