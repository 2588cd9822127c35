"""Benchmark: tpsep.metrics.fast_sdr against museval's bss_eval_sources (BSS Eval v3, whole signal).

On every track of the default music test split, the vocals and the accompaniment are
estimated with an oracle mask (cycling through IBM, IRM, Wiener-like and the mixture,
so the SDRs span a wide range), then scored by both implementations. Prints the time
of each, the speed ratio and the largest difference in dB (the target: >= 10x faster,
< 0.05 dB apart).

    python benchmarks/fast_sdr.py [--dataset music] [--split test] [--tracks N]

Timings depend on the machine and its load; run it on an idle machine for numbers to quote.
"""

import argparse
import time

import numpy as np
import torch

from tpsep import masks, metrics
from tpsep.data import load_dataset


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="music")
    parser.add_argument("--split", default="test")
    parser.add_argument("--tracks", type=int, default=None, help="only the first N tracks")
    parser.add_argument("--permutation", action="store_true",
                        help="let museval search the best source order too (its default, much slower)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    tracks = load_dataset(args.dataset, split=args.split)[: args.tracks]
    names = ["vocals", "accompaniment"]
    kinds = ["ibm", "irm", "wiener", "mix"]
    metrics.museval_metrics()  # load it outside the timed region
    fast_time = slow_time = 0.0
    worst = 0.0
    print(f"{'track':<12} {'oracle':<7} {'seconds':>7} {'fast SDR (v, acc)':>20} {'museval SDR':>20} {'max |diff|':>10}")
    for i, track in enumerate(tracks):
        kind = kinds[i % len(kinds)]
        estimates = masks.oracle_separator(kind)(track)
        references = np.stack([track.stem(n) for n in names])
        estimated = np.stack([estimates[n] for n in names])
        start = time.perf_counter()
        fast = metrics.fast_sdr(references, estimated)
        fast_time += time.perf_counter() - start
        start = time.perf_counter()
        slow = metrics.bss_eval_sources(references, estimated, compute_permutation=args.permutation)["SDR"]
        slow_time += time.perf_counter() - start
        diff = float(np.max(np.abs(fast - slow)))
        worst = max(worst, diff)
        print(f"{track.name:<12} {kind:<7} {track.duration:7.1f} {fast[0]:9.3f} {fast[1]:9.3f} "
              f"{slow[0]:9.3f} {slow[1]:9.3f} {diff:10.2e}")
        track.unload()
    print(f"museval bss_eval_sources: {slow_time:.2f} s; fast_sdr: {fast_time:.2f} s; "
          f"{slow_time / fast_time:.1f}x faster; max difference {worst:.2e} dB over {len(tracks)} tracks")


if __name__ == "__main__":
    main()
