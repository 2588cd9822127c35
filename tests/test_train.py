"""Tests of tpsep.train: the loop, exact resume, the NaN guard, schedules, EMA, DDP, the CLI."""

import argparse
import json
import os
import subprocess
import sys
import textwrap

import matplotlib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tpsep import train
from tpsep.train import (EMA, History, LRSchedule, NonFiniteError, TrainConfig, choose_device,
                         clip_gradients, fit, load_checkpoint, move_to)

matplotlib.use("Agg")
torch.set_num_threads(1)


class NoisyRegression(Dataset):
    """y = x @ W, with augmentation noise drawn from the *global* torch and numpy generators,
    so an exact resume must restore both random states and the data order."""

    def __init__(self, n=40, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 6, generator=g)
        self.y = self.x @ torch.randn(6, 2, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        noise = 0.05 * torch.randn(6) + 0.01 * torch.from_numpy(np.random.randn(6).astype(np.float32))
        return self.x[i] + noise, self.y[i]


def make_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                               torch.nn.Linear(16, 2))


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def loaders(batch_size=4):
    data = NoisyRegression(40)
    train_loader = DataLoader(data, batch_size=batch_size, shuffle=True)
    # validation asks for the opposite mapping: it gets worse as training succeeds (moves the plateau LR)
    valid_loader = DataLoader(TensorDataset(data.x[:12], -data.y[:12]), batch_size=6)
    return train_loader, valid_loader


def quiet(**kw):
    return TrainConfig(progress=False, tensorboard=False, **kw)


def test_loss_falls_and_history_is_complete():
    train_loader, valid_loader = loaders()
    history = fit(make_model(), mse, train_loader, valid_loader, quiet(epochs=6, lr=1e-2))
    assert history.steps == 6 * 10
    assert len(history.train_loss) == len(history.grad_norm) == len(history.lr) == len(history.time) == 60
    assert np.mean(history.train_loss[-10:]) < 0.5 * np.mean(history.train_loss[:10])
    assert len(history.valid_loss) == 6 and history.best_valid == min(history.valid_loss)
    assert history.valid_loss[-1] > history.valid_loss[0]  # the opposite mapping (see loaders)
    assert all(g > 0 and np.isfinite(g) for g in history.grad_norm)
    assert history.stopped_because == "epochs"


@pytest.mark.parametrize("interrupt_at", [7, 10, 13])  # mid-epoch, at an epoch's end, mid-epoch after one
def test_resume_gives_exactly_the_same_losses(tmp_path, interrupt_at):
    # 40 examples / batch 4 = 10 batches per epoch; accumulate 2 -> 5 optimiser steps per epoch
    config = dict(max_steps=18, lr=5e-3, accumulate=2, schedule="plateau", plateau_patience=1,
                  ema=0.9, grad_clip=0.5, seed=3)
    train_loader, valid_loader = loaders()
    straight = fit(make_model(), mse, train_loader, valid_loader, quiet(**config))

    first = make_model()
    train_loader, valid_loader = loaders()
    fit(first, mse, train_loader, valid_loader,
        quiet(**{**config, "max_steps": interrupt_at}, out_dir=str(tmp_path)))
    torch.manual_seed(1234)            # disturb every random state between the two halves
    np.random.seed(1234)
    resumed_model = make_model(seed=99)  # different initial weights: resume must overwrite them
    train_loader, valid_loader = loaders()
    resumed = fit(resumed_model, mse, train_loader, valid_loader,
                  quiet(**config, out_dir=str(tmp_path)), resume=str(tmp_path / "last.pt"))

    assert resumed.train_step == straight.train_step
    assert resumed.train_loss == straight.train_loss      # bitwise equal, step by step
    assert resumed.grad_norm == straight.grad_norm
    assert resumed.lr == straight.lr
    assert len(set(straight.lr)) > 1                      # the plateau schedule did move
    assert resumed.steps == 18 and resumed.stopped_because == "max_steps"


def test_resume_restores_weights_exactly(tmp_path):
    config = dict(max_steps=9, lr=1e-2, seed=1)
    a = make_model()
    fit(a, mse, *loaders(), quiet(**config))
    b = make_model()
    fit(b, mse, *loaders(), quiet(**{**config, "max_steps": 4}, out_dir=str(tmp_path)))
    c = make_model(seed=5)
    fit(c, mse, *loaders(), quiet(**config), resume=str(tmp_path / "last.pt"))
    for (name, pa), pc in zip(a.named_parameters(), c.parameters()):
        assert torch.equal(pa, pc), name


def test_accumulation_matches_a_bigger_batch():
    data = TensorDataset(torch.randn(16, 6), torch.randn(16, 2))
    big, small = make_model(), make_model()
    small.load_state_dict(big.state_dict())
    for m in (big, small):
        m.eval()  # no dropout: the two runs must compute the same gradients
    no_dropout = lambda model, batch: mse(model.eval(), batch)  # noqa: E731
    fit(big, no_dropout, DataLoader(data, batch_size=8), config=quiet(epochs=2, grad_clip=None))
    fit(small, no_dropout, DataLoader(data, batch_size=4), config=quiet(epochs=2, grad_clip=None, accumulate=2))
    for pb, ps in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(pb, ps, rtol=1e-5, atol=1e-6)


def test_nonfinite_loss_names_the_step():
    calls = {"n": 0}

    def loss_fn(model, batch):
        calls["n"] += 1
        loss = mse(model, batch)
        return loss * float("nan") if calls["n"] == 4 else loss

    with pytest.raises(NonFiniteError, match=r"step 3: the loss is nan.*forward pass"):
        fit(make_model(), loss_fn, loaders()[0], config=quiet(epochs=1))


def test_nonfinite_batch_is_named():
    x = torch.randn(8, 6)
    x[5, 2] = float("inf")
    loader = DataLoader(TensorDataset(x, torch.randn(8, 2)), batch_size=4)
    with pytest.raises(NonFiniteError, match=r"step 1: .*batch\[0\]"):
        fit(make_model(), mse, loader, config=quiet(epochs=1))


def test_nonfinite_gradient_names_the_parameter():
    class SqrtModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(6, 2)
            self.gain = torch.nn.Parameter(torch.zeros(2))  # d sqrt(g) / dg = inf at 0

        def forward(self, x):
            return self.linear(x) * torch.sqrt(self.gain + 1.0) + torch.sqrt(self.gain)

    loader = DataLoader(TensorDataset(torch.randn(8, 6), torch.randn(8, 2)), batch_size=4)
    with pytest.raises(NonFiniteError, match=r"step 0: the gradient norm is .*gain"):
        fit(SqrtModel(), mse, loader, config=quiet(epochs=1))


def test_clip_gradients_returns_the_norm_before_clipping():
    model = torch.nn.Linear(4, 1)
    for p in model.parameters():
        p.grad = torch.full_like(p, 3.0)
    expected = float(torch.sqrt(torch.tensor(9.0 * 5)))
    assert clip_gradients(model, 1.0, step=0) == pytest.approx(expected, rel=1e-6)
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in model.parameters()))
    assert float(total) == pytest.approx(1.0, rel=1e-4)


def test_cosine_schedule_warms_up_then_decays():
    schedule = LRSchedule(TrainConfig(lr=1.0, schedule="cosine", warmup_steps=4, min_lr=0.1), total_steps=20)
    lrs = [schedule(step) for step in range(21)]
    assert lrs[:5] == sorted(lrs[:5]) and lrs[0] < 0.3
    assert lrs[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert lrs[20] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="cosine"):
        LRSchedule(TrainConfig(schedule="cosine", minutes=1), total_steps=None)


def test_plateau_schedule_halves_after_patience():
    schedule = LRSchedule(TrainConfig(lr=1.0, schedule="plateau", plateau_patience=2), total_steps=None)
    for loss in [1.0, 0.9, 0.95, 0.92]:
        schedule.on_validation(loss)
    assert schedule(10) == pytest.approx(0.5)
    schedule.on_validation(0.5)
    assert schedule(11) == pytest.approx(0.5)


def test_early_stopping(tmp_path):
    def loss_fn(model, batch):
        loss = mse(model, batch)
        return loss if model.training else loss.detach() * 0 + 1.0  # validation never improves

    history = fit(make_model(), loss_fn, *loaders(), quiet(epochs=20, patience=2, out_dir=str(tmp_path)))
    assert history.stopped_because.startswith("early stopping")
    assert len(history.valid_loss) == 3 and history.steps == 30
    assert load_checkpoint(str(tmp_path / "best.pt"))["step"] == 10


def test_checkpoints_hold_best_last_extra_and_ema_weights(tmp_path):
    model = make_model()
    extra = {"model_name": "tiny", "model_config": {"hidden": 16}}
    history = fit(model, mse, *loaders(), quiet(epochs=3, lr=1e-2, ema=0.5, out_dir=str(tmp_path)), extra=extra)
    best = load_checkpoint(str(tmp_path / "best.pt"))
    last = load_checkpoint(str(tmp_path / "last.pt"))
    assert best["step"] == history.best_step and last["step"] == history.steps == 30
    assert last["extra"] == extra and last["config"]["ema"] == 0.5
    # "model" holds the EMA weights (what validation used); the raw weights are kept to resume
    raw = last["train_state"]["raw_model"]
    assert all(torch.equal(raw[k], v.cpu()) for k, v in model.state_dict().items())
    assert not torch.equal(last["model"]["0.weight"], raw["0.weight"])
    fresh = make_model(seed=7)
    load_checkpoint(str(tmp_path / "last.pt"), fresh)
    assert torch.equal(fresh.state_dict()["0.weight"], last["model"]["0.weight"])
    assert (tmp_path / "log.jsonl").read_text().count("valid_loss") == 3
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_checkpoint(str(tmp_path / "missing.pt"))


def test_ema_averages_and_swaps_back():
    model = torch.nn.Linear(2, 1, bias=False)
    torch.nn.init.zeros_(model.weight)
    ema = EMA(model, decay=0.5)
    ema.updates = 100  # past the ramp-up: decay is exactly 0.5
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)
    assert torch.allclose(ema.shadow["weight"], torch.full((1, 2), 0.5))
    with ema.applied(model):
        assert torch.allclose(model.weight, torch.full((1, 2), 0.5))
    assert torch.allclose(model.weight, torch.ones(1, 2))


def test_device_and_move_to():
    assert choose_device("cpu") == torch.device("cpu")
    assert choose_device("auto").type in ("cuda", "mps", "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA"):
            choose_device("cuda")
    batch = {"x": [torch.zeros(2), (torch.ones(1), "name")], "n": 3}
    moved = move_to(batch, torch.device("cpu"))
    assert moved["n"] == 3 and moved["x"][1][1] == "name" and torch.equal(moved["x"][1][0], torch.ones(1))


def test_bad_config_is_a_clear_error():
    with pytest.raises(ValueError, match="schedule"):
        fit(make_model(), mse, loaders()[0], config=quiet(schedule="linear"))
    with pytest.raises(ValueError, match="ema"):
        fit(make_model(), mse, loaders()[0], config=quiet(ema=1.5))


def test_tensorboard_is_optional(tmp_path):
    fit(make_model(), mse, loaders()[0], config=TrainConfig(max_steps=3, progress=False, out_dir=str(tmp_path)))
    has_tensorboard = train.tensorboard_writer(str(tmp_path / "probe")) is not None
    assert (tmp_path / "tensorboard").exists() == has_tensorboard


def test_progress_bar_live_plot_and_plot_run_outside_a_notebook():
    from tqdm.auto import tqdm  # (the repository's conftest sets TQDM_DISABLE=1, so the bar stays silent)
    bar = train.Logger(TrainConfig(), True, History()).progress([1, 2, 3], epoch=0)
    assert isinstance(bar, tqdm) and list(bar) == [1, 2, 3]
    batches = [1, 2]
    assert train.Logger(TrainConfig(progress=False), True, History()).progress(batches, 0) is batches
    assert train.Logger(TrainConfig(), False, History()).progress(batches, 0) is batches  # rank > 0
    history = fit(make_model(), mse, loaders()[0], config=TrainConfig(max_steps=5, live_plot=True, log_every=2))
    ax = history.plot(smooth=2)
    assert len(ax.lines) == 2


# ---- the command line ----

def tiny_recipe(args):
    train_loader, valid_loader = loaders(batch_size=args.batch_size)
    hidden = args.options.get("hidden", 16)
    torch.manual_seed(args.seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 2))
    return model, mse, train_loader, valid_loader, {"model_config": {"hidden": hidden}}


def test_train_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(train.TRAINABLE, "tiny", f"{__name__}:tiny_recipe")
    parser = argparse.ArgumentParser(prog="tpsep")
    train.add_train_command(parser.add_subparsers(dest="command"))
    out, figures = tmp_path / "run", tmp_path / "figures.json"
    args = parser.parse_args(["train", "tiny", "--epochs", "2", "--batch-size", "8", "--out", str(out),
                              "--option", "hidden=8", "--no-progress", "--json", str(figures)])
    args.func(args)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("train: model=tiny steps=10 ") and "best_valid=" in line
    saved = json.loads(figures.read_text())
    assert saved["steps"] == 10 and saved["model"] == "tiny"
    checkpoint = load_checkpoint(str(out / "best.pt"))
    assert checkpoint["extra"] == {"model_name": "tiny", "model_config": {"hidden": 8}}
    assert checkpoint["model"]["0.weight"].shape == (8, 6)
    help_text = parser._subparsers._group_actions[0].choices["train"].format_help()
    assert "--resume" in help_text and "best.pt" in help_text


# ---- several processes: torchrun, gloo, CPU ----

DDP_SCRIPT = """
import os, sys, torch
torch.set_num_threads(1)
sys.path.insert(0, {tests!r})
from test_train import make_model, mse, loaders, quiet
from tpsep.train import fit
model = make_model()
history = fit(model, mse, *loaders(), quiet(epochs=4, lr=1e-2, out_dir={out!r}))
rank = int(os.environ["RANK"])
torch.save({{"weights": model.state_dict(), "losses": history.train_loss}}, os.path.join({out!r}, f"rank{{rank}}.pt"))
"""


def test_ddp_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT.format(tests=os.path.dirname(__file__), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.path.dirname(os.path.dirname(__file__))}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", str(script)],
        capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for key, value in r0["weights"].items():
        assert torch.equal(value, r1["weights"][key]), key  # DDP kept the replicas identical
    assert len(r0["losses"]) == 4 * 5                      # each rank saw half of the 10 batches per epoch
    assert r0["losses"] != r1["losses"]                    # ... a different half
    assert np.mean(r0["losses"][-5:]) < 0.7 * np.mean(r0["losses"][:5])
    assert (tmp_path / "last.pt").exists() and (tmp_path / "best.pt").exists()
    assert load_checkpoint(str(tmp_path / "last.pt"))["step"] == 20


def test_validation_does_not_change_training():
    with_valid = fit(make_model(), mse, *loaders(), quiet(epochs=2))
    without = fit(make_model(), mse, loaders()[0], config=quiet(epochs=2))
    assert with_valid.train_loss == without.train_loss and len(with_valid.valid_loss) == 2


def test_bf16_autocast_and_the_minutes_limit():
    history = fit(make_model(), mse, loaders()[0], config=quiet(minutes=1e-9, precision="bf16", device="cpu"))
    assert history.steps == 1 and history.stopped_because == "minutes" and np.isfinite(history.train_loss[0])
    assert isinstance(train.autocast_context(torch.device("cpu"), "bf16"), torch.autocast)
    assert not isinstance(train.autocast_context(torch.device("cpu"), "auto"), torch.autocast)


def test_resuming_a_finished_run_does_nothing(tmp_path):
    first = fit(make_model(), mse, loaders()[0], config=quiet(epochs=1, out_dir=str(tmp_path)))
    again = fit(make_model(), mse, loaders()[0], config=quiet(epochs=1, out_dir=str(tmp_path)),
                resume=str(tmp_path / "last.pt"))
    assert again.steps == first.steps == 10 and again.stopped_because == "epochs"
    with pytest.raises(ValueError, match="no batch"):
        fit(make_model(), mse, [], config=quiet(epochs=1))


def test_a_custom_sampler_is_kept():
    data = NoisyRegression(8)
    sampler = torch.utils.data.WeightedRandomSampler([0.0] * 7 + [1.0], num_samples=8)  # always index 7
    seen = []

    def loss_fn(model, batch):
        seen.append(batch[1].clone())
        return mse(model, batch)

    fit(make_model(), loss_fn, DataLoader(data, batch_size=4, sampler=sampler), config=quiet(epochs=1))
    assert all(torch.equal(y, data.y[7].expand(4, 2)) for y in seen)


def test_nonfinite_weight_is_named():
    model = make_model()
    with torch.no_grad():
        model[3].bias[1] = float("nan")
    with pytest.raises(NonFiniteError, match=r"step 0: the loss is nan; non-finite values already in the weight 3.bias"):
        fit(model, mse, loaders()[0], config=quiet(epochs=1))
