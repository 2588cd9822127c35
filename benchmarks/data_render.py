"""Render both embedded datasets from a cold cache, and check that separating them is a real problem.

Prints, for "music" (Bach chorales) and "speech" (LibriSpeech 2-speaker mixtures):
- the render time from an empty cache (wall clock, and CPU time of this process and its children),
  the size on disk and the number of tracks/minutes per split;
- the SI-SDR of the ideal ratio mask (magnitude IRM |S| / (|S| + |N|) on the STFT,
  mixture phase) on the test split: vocals for music, each speaker for speech,
  next to the SI-SDR of the unprocessed mixture. A ceiling far above the mixture
  but well below "perfect" (say 10-20 dB) means the task is neither trivial nor
  impossible.

    python benchmarks/data_render.py [--cache DIR] [--keep] [--json PATH] [--datasets music speech]

The machine is shared: wall-clock times are inflated by other people's load; the
CPU time is the steadier figure.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time

import numpy as np
import torch


def irm_si_sdr(track, target: str, n_fft: int, hop: int) -> tuple:
    """SI-SDR (dB) of the magnitude-IRM estimate of ``target`` and of the raw mixture."""
    from tpsep import masks, metrics, spectral

    mixture = torch.from_numpy(track.mixture.mean(axis=0))
    reference = torch.from_numpy(track.stem(target).mean(axis=0))
    mix_stft = spectral.stft(mixture, n_fft=n_fft, hop=hop)
    target_stft = spectral.stft(reference, n_fft=n_fft, hop=hop)
    other_stft = spectral.stft(mixture - reference, n_fft=n_fft, hop=hop)
    mask = masks.ideal_ratio_mask(target_stft.abs(), other_stft.abs())
    estimate = spectral.istft(masks.apply_mask(mask, mix_stft), n_fft=n_fft, hop=hop, length=mixture.shape[-1])
    return float(metrics.si_sdr(estimate, reference)), float(metrics.si_sdr(mixture, reference))


def children_cpu() -> float:
    """CPU seconds used by finished child processes (the speech set speaks in one)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", default=None, help="cache folder to render into (default: a fresh temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary cache")
    parser.add_argument("--json", default=None, help="write the figures to this file")
    parser.add_argument("--datasets", nargs="+", default=["music", "speech"], choices=["music", "speech"],
                        help="which embedded datasets to render (default: both)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache = args.cache or tempfile.mkdtemp(prefix="tpsep-cache-")
    os.environ["TPSEP_CACHE"] = cache
    from tpsep.data import load_dataset
    from tpsep.data.commands import dataset_info

    results = {}
    for name, targets, n_fft, hop in (("music", ["vocals"], 1024, 256), ("speech", ["s1", "s2"], 256, 64)):
        if name not in args.datasets:
            continue
        wall, cpu = time.perf_counter(), time.process_time() + children_cpu()
        load_dataset(name, split="test", progress=False)  # renders every split
        wall, cpu = time.perf_counter() - wall, time.process_time() + children_cpu() - cpu
        info = dataset_info(name, progress=False)
        tracks = load_dataset(name, split="test")
        scores = {t: [irm_si_sdr(track, t, n_fft, hop) for track in tracks] for t in targets}
        results[name] = {"render_wall_s": round(wall, 1), "render_cpu_s": round(cpu, 1),
                         "disk_mb": info["disk_mb"], "minutes": info["minutes"],
                         "splits": {s: (v["tracks"], round(v["seconds"] / 60, 2)) for s, v in info["splits"].items()},
                         "irm": {t: {"n_fft": n_fft, "hop": hop,
                                     "irm_si_sdr_median": round(float(np.median([s[0] for s in v])), 2),
                                     "irm_si_sdr_mean": round(float(np.mean([s[0] for s in v])), 2),
                                     "mixture_si_sdr_median": round(float(np.median([s[1] for s in v])), 2)}
                                 for t, v in scores.items()}}
        r = results[name]
        print(f"{name}: rendered in {r['render_wall_s']} s wall ({r['render_cpu_s']} s CPU), "
              f"{r['disk_mb']} MB, {r['minutes']} min; splits (tracks, min) {r['splits']}")
        for t, v in r["irm"].items():
            print(f"  test {t:6s}: IRM SI-SDR median {v['irm_si_sdr_median']:6.2f} dB (mean {v['irm_si_sdr_mean']:.2f}), "
                  f"mixture {v['mixture_si_sdr_median']:6.2f} dB  [STFT {n_fft}/{hop}]")
    print("data_render | " + " | ".join(
        f"{n}: {r['render_wall_s']} s wall, {r['render_cpu_s']} s CPU, {r['disk_mb']} MB, "
        + ", ".join(f"IRM {t} {v['irm_si_sdr_median']} dB" for t, v in r["irm"].items())
        for n, r in results.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.cache is None and not args.keep:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
