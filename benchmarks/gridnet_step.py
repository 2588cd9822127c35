"""Time and peak memory of one TF-GridNet training step (forward, PIT SI-SNR loss, backward, Adam).

Random 1-second mixtures at 8 kHz: the course configuration at batch 4, the paper's
WSJ0-2mix configuration at batch 1. Each configuration runs in a fresh Python process,
so that its peak memory is its own. Prints only; asserts nothing.

On a CPU, "peak memory" is the process's peak resident set size (ru_maxrss) and the
"step" column is how much it grew over the resident size before the first step (the
activations, gradients and Adam state, plus whatever the allocator keeps). On CUDA it is
torch.cuda.max_memory_allocated. The "saved" column counts the tensors autograd keeps
for the backward pass (their allocated size), which does not depend on the allocator.

The machine may be shared: the load average (``uptime``) is printed before and after,
and the CPU time the process used is printed beside the wall-clock time. When the load
is above the number of cores, trust the CPU time more than the wall time.

    python benchmarks/gridnet_step.py                      # course (batch 4) and paper (batch 1)
    python benchmarks/gridnet_step.py --configs course --steps 10 --threads 2
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

BATCH = {"course": 4, "paper": 1, "tiny": 4}


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load average: %.2f, %.2f, %.2f" % os.getloadavg()


def rss_mib() -> float:
    """Current resident set size of this process, in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def saved_for_backward_mib(loss_fn) -> float:
    """MiB of tensors autograd keeps for the backward pass of ``loss_fn()`` (the activations).

    Unlike the resident size, this does not depend on the allocator or on other processes.
    Each storage is counted once, however many views of it are saved.
    """
    import torch

    storages = {}

    def pack(t):
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = loss_fn()
    loss.backward()  # frees the graph
    return sum(storages.values()) / 2**20


def one(name: str, steps: int, threads: int, device: str, seconds: float) -> dict:
    """Run ``steps`` timed training steps (after one warm-up step) in this process."""
    import torch

    from tpsep.losses import pit_si_snr_loss
    from tpsep.models import gridnet

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = getattr(gridnet, name.upper())
    batch, samples = BATCH[name], int(seconds * config.rate)
    model = gridnet.TFGridNet(config, verbose=False).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    sources = torch.randn(batch, config.C, 1, samples, device=device)
    mixture = sources.sum(1)

    def step():
        loss = pit_si_snr_loss(model(mixture), sources)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    rss_before = rss_mib()
    step()  # warm-up: allocator, Adam state, oneDNN kernels
    saved = saved_for_backward_mib(lambda: pit_si_snr_loss(model(mixture), sources))
    wall, cpu = [], []
    for _ in range(steps):
        w, c = time.perf_counter(), time.process_time()
        step()
        wall.append(time.perf_counter() - w)
        cpu.append(time.process_time() - c)
    result = {
        "config": name, "parameters": model.num_parameters(), "batch": f"{batch} x {seconds:g} s",
        "threads": threads, "wall_s": statistics.median(wall), "cpu_s": statistics.median(cpu),
        "saved_mib": saved,
    }
    if device.startswith("cuda"):
        result["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
        result["step_mib"] = result["peak_mib"]
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        result["peak_mib"], result["step_mib"] = peak, peak - rss_before
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=["course", "paper"], choices=sorted(BATCH))
    parser.add_argument("--steps", type=int, default=5, help="timed steps per configuration (after 1 warm-up)")
    parser.add_argument("--paper-steps", type=int, default=2, help="timed steps for the (slow) paper model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one configuration, print JSON
    args = parser.parse_args()

    if args.one:
        print(json.dumps(one(args.one, args.steps, args.threads, args.device, args.seconds)))
        return

    print("before:", uptime())
    rows = []
    for name in args.configs:
        steps = args.paper_steps if name == "paper" else args.steps
        cmd = [sys.executable, __file__, "--one", name, "--steps", str(steps), "--threads", str(args.threads),
               "--device", args.device, "--seconds", str(args.seconds)]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            print(f"{name}: failed (exit {done.returncode})\n{done.stderr[-2000:]}")
            continue
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    print("after: ", uptime())
    print(f"\n{'config':8} {'params':>10} {'batch':>10} {'threads':>7} {'wall s/step':>11} {'cpu s/step':>10} "
          f"{'peak MiB':>9} {'step MiB':>9} {'saved MiB':>9}")
    for r in rows:
        print(f"{r['config']:8} {r['parameters']:>10,} {r['batch']:>10} {r['threads']:>7} {r['wall_s']:>11.3f} "
              f"{r['cpu_s']:>10.3f} {r['peak_mib']:>9.0f} {r['step_mib']:>9.0f} {r['saved_mib']:>9.0f}")
    print("\npeak: peak resident size (CPU) or peak allocated (CUDA); step: its growth over the size before the "
          "first step;\nsaved: tensors autograd keeps for backward (activations), allocated size, once per storage; it can exceed\n"
          "the peak resident size: the BLSTMs' oneDNN workspaces are not all touched, and untouched pages are not resident.")


if __name__ == "__main__":
    main()
