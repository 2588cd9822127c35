"""The command a student types on a machine with several GPUs, run here with 2 CPU processes:

    torchrun --standalone --nproc_per_node 2 -m tpsep train convtasnet --dataset PATH ...

(gloo instead of NCCL, on a tiny LibriMix-like folder). One process writes the files, both train.
"""

import json
import os
import subprocess
import sys

import numpy as np
import soundfile as sf

from tpsep.checkpoints import load_checkpoint, load_separator

RATE = 8000
TINY = ["N=16", "L=8", "B=8", "H=16", "Sc=8", "P=3", "X=2", "R=1"]


def write_tiny_librimix(root, mixtures=None) -> None:
    """<root>/wav8k/min/{train,dev,test}/{mix_clean,s1,s2}/NAME.wav: 1-s voices (noisy tones) at 8 kHz."""
    mixtures = mixtures or {"train": 8, "dev": 2, "test": 2}
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    for split, count in mixtures.items():
        folder = root / "wav8k" / "min" / split
        for sub in ("mix_clean", "s1", "s2"):
            (folder / sub).mkdir(parents=True)
        for i in range(count):
            s1 = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 300) * t) + 0.02 * rng.standard_normal(RATE)
            s2 = 0.3 * np.sign(np.sin(2 * np.pi * rng.uniform(400, 900) * t)) + 0.02 * rng.standard_normal(RATE)
            name = f"{split}{i}.wav"
            sf.write(folder / "s1" / name, s1.astype(np.float32), RATE)
            sf.write(folder / "s2" / name, s2.astype(np.float32), RATE)
            sf.write(folder / "mix_clean" / name, (s1 + s2).astype(np.float32), RATE)


def torchrun_train(tmp_path, *flags, program=("-m", "tpsep"), timeout=300):
    """``torchrun --standalone --nproc_per_node=2 -m tpsep train convtasnet ...`` on a tiny LibriMix
    (8 one-second mixtures in 0.5-s chunks: 16 chunks, 8 batches of 2; each process gets 4)."""
    data, out = tmp_path / "librimix", tmp_path / "run"
    write_tiny_librimix(data)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": repo}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               *program, "train", "convtasnet", "--dataset", str(data), *flags,
               "--batch-size", "2", "--seconds", "0.5", "--device", "cpu",
               "--out", str(out), "--no-progress", "--json", str(out / "train.json"),
               *sum((["--option", o] for o in TINY), [])]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          cwd=tmp_path) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            # SIGTERM: torchrun stops its workers (they run in sessions of their own, and a SIGKILL
            # to torchrun would leave them hanging, holding the pipes open)
            process.terminate()
            stdout, stderr = process.communicate(timeout=60)
            raise AssertionError(f"torchrun still running after {timeout} s (hung?)\n{stderr[-3000:]}") from None
    assert process.returncode == 0, stdout[-2000:] + stderr[-3000:]
    return stdout, out


def test_train_command_under_torchrun_with_two_cpu_processes(tmp_path):
    stdout, out = torchrun_train(tmp_path, "--max-steps", "4", "--log-every", "1")

    # rank 0 alone writes: one summary line, one set of files
    assert stdout.count("train: model=convtasnet steps=4") == 1, stdout
    assert stdout.count("ConvTasNet: 1,") == 1, stdout        # the model's size, printed once too
    assert sorted(p.name for p in out.iterdir()) == ["best.pt", "last.pt", "log.jsonl", "train.json"]
    figures = json.loads((out / "train.json").read_text())
    assert figures["steps"] == 4 and figures["stopped_because"] == "max_steps"
    assert figures["processes"] == 2                        # the run knew it was one of two

    lines = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == [1, 2, 3, 4]   # each step logged once
    assert len([line for line in lines if "valid_loss" in line]) == 1

    # each process read half of the 8 batches: the 4 steps made one whole epoch (one process: half an epoch)
    state = load_checkpoint(str(out / "last.pt"))["state"]
    assert state["step"] == 4 and state["epoch"] == 1 and state["batch_in_epoch"] == 0
    model = load_separator(str(out / "last.pt"))
    assert type(model).__name__ == "ConvTasNet" and model.config.N == 16 and model.config.C == 2


SLOW_LOGGER = """
import sys, time
import tpsep.train
from tpsep.cli import main

class SlowLogger(tpsep.train.Logger):
    def __init__(self, config, is_main=True):
        if is_main:
            time.sleep(1.0)   # as importing tensorboard and opening its writer do, on rank 0 alone
        super().__init__(config, is_main)

tpsep.train.Logger = SlowLogger
sys.exit(main(sys.argv[1:]))
"""


def test_a_minutes_limit_stops_both_processes_after_the_same_step(tmp_path):
    # each process starts its clock at its own moment (here rank 1 about 1 s before rank 0): when each
    # stopped on its own clock, rank 1 stopped first and rank 0 waited forever for its gradients
    script = tmp_path / "slow_logger.py"
    script.write_text(SLOW_LOGGER)
    _, out = torchrun_train(tmp_path, "--minutes", "0.05", program=(str(script),), timeout=120)
    figures = json.loads((out / "train.json").read_text())
    assert figures["stopped_because"] == "minutes" and figures["steps"] >= 1 and figures["processes"] == 2
