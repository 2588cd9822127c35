"""Seconds and peak memory per training step of the band-split model, on this machine's CPU.

One step = forward, the band-split loss (waveform L1 + 5-resolution complex STFT L1, or the
waveform L1 alone with ``--loss l1``), backward, Adam. Each configuration runs in a fresh process, so its peak resident memory
(``ru_maxrss``) is its own; "train" is how much the steps added on top of the built model
(activations, gradients, Adam's two moments). "cpu s" is the process's CPU time per step (all
threads), which other load on a shared machine inflates less than the wall clock; the load
average is printed first. Prints only; asserts nothing.

    python benchmarks/bandsplit_step.py                       # course (blstm, roformer) + paper BSRNN
    python benchmarks/bandsplit_step.py --configs course --steps 10 --threads 2
    python benchmarks/bandsplit_step.py --configs paper-roformer --batch-size 1 --seconds 1
"""

import argparse
import multiprocessing
import os
import resource
import time
from dataclasses import replace

# name: (config name, default batch size, default seconds)
CONFIGS = {
    "course": ("COURSE", 4, 1.0),
    "course-roformer": ("COURSE_ROFORMER", 4, 1.0),
    "paper-bsrnn": ("PAPER_BSRNN_VOCALS", 1, 1.0),
    "paper-roformer": ("PAPER_BS_ROFORMER", 1, 1.0),
}


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run(name, batch_size, seconds, steps, threads, loss_name, queue):
    import torch

    from tpsep.losses import bandsplit_loss, waveform_l1_loss
    from tpsep.models import bandsplit

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    key = CONFIGS[name][0]
    config = (replace(bandsplit.COURSE, sequence_model="roformer") if key == "COURSE_ROFORMER"
              else getattr(bandsplit, key))
    model = bandsplit.BandSplit(config, verbose=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    samples = int(seconds * config.rate)
    sources = 0.1 * torch.randn(batch_size, len(config.sources), config.channels, samples)
    mixture = sources.sum(1) + 0.1 * torch.randn(batch_size, config.channels, samples)
    built = peak_mib()

    loss_fn = bandsplit_loss if loss_name == "bandsplit" else waveform_l1_loss

    def step():
        loss = loss_fn(model(mixture), sources)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: first-call allocations, Adam state
    start, start_cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    per_step = (time.perf_counter() - start) / steps
    cpu_per_step = (time.process_time() - start_cpu) / steps  # all threads; less sensitive to other load
    queue.put(dict(name=name, params=model.num_parameters(), batch=batch_size, seconds=seconds,
                   per_step=per_step, cpu_per_step=cpu_per_step, peak=peak_mib(), train=peak_mib() - built))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["course", "course-roformer", "paper-bsrnn"],
                        choices=sorted(CONFIGS))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a busy 2-core machine, 2 threads can be 5x slower)")
    parser.add_argument("--loss", choices=["bandsplit", "l1"], default="bandsplit",
                        help="bandsplit: waveform L1 + 5-resolution STFT L1; l1: waveform L1 only (the model alone)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 4 for course, 1 for paper")
    parser.add_argument("--seconds", type=float, default=None, help="chunk length (default 1 s)")
    args = parser.parse_args()

    print(f"load: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} "
          f"(1/5/15 min), {os.cpu_count()} CPUs, {args.threads} torch threads, {args.steps} timed steps, "
          f"{args.loss} loss, Adam")
    print(f"{'config':16} {'params':>8} {'batch':>11} {'s/step':>8} {'cpu s':>7} {'peak MiB':>9} {'train MiB':>10}")
    context = multiprocessing.get_context("spawn")
    for name in args.configs:
        _, batch_size, seconds = CONFIGS[name]
        batch_size = args.batch_size or batch_size
        seconds = args.seconds or seconds
        queue = context.Queue()
        process = context.Process(target=run, args=(name, batch_size, seconds, args.steps, args.threads, args.loss, queue))
        process.start()
        r = queue.get()
        process.join()
        print(f"{r['name']:16} {r['params'] / 1e6:7.2f}M {r['batch']:>4} x {r['seconds']:g} s "
              f"{r['per_step']:8.3f} {r['cpu_per_step']:7.3f} {r['peak']:9.0f} {r['train']:10.0f}")


if __name__ == "__main__":
    main()
