"""Tests of tpsep.train: the loop, exact resume, the NaN guard, schedules, EMA, DDP, the CLI."""

import argparse
import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass, fields

import matplotlib
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from tpsep import reporting
from tpsep.checkpoints import load_checkpoint
from tpsep.devices import autocast_context, choose_device, move_to
from tpsep.train import EMA, NonFiniteError, TrainConfig, clip_gradients, fit, learning_rate

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
    config = TrainConfig(lr=1.0, schedule="cosine", warmup_steps=4, min_lr=0.1)
    lrs = [learning_rate(config, step, total=20) for step in range(21)]
    assert lrs[:5] == sorted(lrs[:5]) and lrs[0] < 0.3
    assert lrs[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:]))
    assert lrs[20] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="cosine"):
        fit(make_model(), mse, loaders()[0], config=quiet(schedule="cosine", minutes=1))


def test_plateau_schedule_halves_after_patience():
    # validation gets worse every epoch (see loaders): with patience 2, the LR halves after epochs 3 and 5
    history = fit(make_model(), mse, *loaders(), quiet(epochs=6, lr=1e-2, schedule="plateau", plateau_patience=2))
    lr_per_epoch = [history.lr[10 * epoch] for epoch in range(6)]
    assert lr_per_epoch == pytest.approx([1e-2, 1e-2, 1e-2, 5e-3, 5e-3, 2.5e-3])


def test_early_stopping(tmp_path):
    def loss_fn(model, batch):
        loss = mse(model, batch)
        return loss if model.training else loss.detach() * 0 + 1.0  # validation never improves

    history = fit(make_model(), loss_fn, *loaders(), quiet(epochs=20, patience=2, out_dir=str(tmp_path)))
    assert history.stopped_because.startswith("early stopping")
    assert len(history.valid_loss) == 3 and history.steps == 30
    assert load_checkpoint(str(tmp_path / "best.pt"))["state"]["step"] == 10


def test_checkpoints_hold_best_last_extra_and_ema_weights(tmp_path):
    model = make_model()
    extra = {"model_name": "tiny", "model_config": {"hidden": 16}}
    history = fit(model, mse, *loaders(), quiet(epochs=3, lr=1e-2, ema=0.5, out_dir=str(tmp_path)), extra=extra)
    best = load_checkpoint(str(tmp_path / "best.pt"))
    last = load_checkpoint(str(tmp_path / "last.pt"))
    assert best["state"]["step"] == history.best_step and last["state"]["step"] == history.steps == 30
    assert last["extra"] == extra and last["train_config"]["ema"] == 0.5
    # "model" holds the EMA weights (what validation used); the raw weights are kept to resume
    raw = last["resume"]["raw_model"]
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
    has_tensorboard = reporting.tensorboard_writer(str(tmp_path / "probe")) is not None
    assert (tmp_path / "tensorboard").exists() == has_tensorboard


def test_progress_bar_live_plot_and_plot_run_outside_a_notebook():
    from tqdm.auto import tqdm  # (the repository's conftest sets TQDM_DISABLE=1, so the bar stays silent)
    bar = reporting.Logger(TrainConfig(), True).progress([1, 2, 3], epoch=0)
    assert isinstance(bar, tqdm) and list(bar) == [1, 2, 3]
    batches = [1, 2]
    assert reporting.Logger(TrainConfig(progress=False), True).progress(batches, 0) is batches
    assert reporting.Logger(TrainConfig(), False).progress(batches, 0) is batches  # rank > 0
    history = fit(make_model(), mse, loaders()[0], config=TrainConfig(max_steps=5, live_plot=True, log_every=2))
    ax = history.plot(smooth=2)
    assert len(ax.lines) == 2


# ---- the command line ----

@dataclass
class TinyConfig:
    hidden: int = 16
    rate: int = 8000


class Tiny(torch.nn.Sequential):
    def __init__(self, config: TinyConfig = TinyConfig(), verbose: bool = False):
        super().__init__(torch.nn.Linear(6, config.hidden), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                         torch.nn.Linear(config.hidden, 2))
        self.config = config


def tiny_recipe(model, settings, seed):
    from tpsep.recipes import Recipe
    return Recipe(model, mse, *loaders(batch_size=settings.batch_size), "regression")


@pytest.fixture
def tiny_cli(monkeypatch):
    from tpsep import recipes
    from tpsep.cli import main

    monkeypatch.setitem(recipes.MODELS, "tiny", recipes.ModelEntry(TinyConfig, Tiny, tiny_recipe))
    return main


def run_losses(out) -> list:
    """The training losses of a CLI run, read back from its last.pt."""
    return load_checkpoint(str(out / "last.pt"))["state"]["history"]["train_loss"]


def test_train_command(tmp_path, tiny_cli, capsys):
    out, figures = tmp_path / "run", tmp_path / "figures.json"
    assert tiny_cli(["train", "tiny", "--epochs", "2", "--batch-size", "8", "--out", str(out),
                     "--option", "hidden=8", "--no-progress", "--json", str(figures)]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("train: model=tiny steps=10 ") and "best_valid=" in line
    saved = json.loads(figures.read_text())
    assert saved["steps"] == 10 and saved["model"] == "tiny"
    checkpoint = load_checkpoint(str(out / "best.pt"))
    assert checkpoint["extra"] == {"model_name": "tiny", "model_config": {"hidden": 8, "rate": 8000},
                                   "dataset": "regression"}
    assert checkpoint["model"]["0.weight"].shape == (8, 6)


def help_of(argv, capsys) -> str:
    from tpsep.cli import main

    with pytest.raises(SystemExit):
        main(argv + ["--help"])
    return capsys.readouterr().out


def test_train_help_lists_every_model_with_its_description(capsys):
    from tpsep.recipes import MODELS

    help_text = help_of(["train"], capsys)
    for name, entry in MODELS.items():
        assert name in help_text
    assert "Jansson et al. 2017" in help_text and "Conv-TasNet, Luo & Mesgarani 2019" in help_text
    assert "tpsep train MODEL --help" in help_text


def test_each_model_help_lists_its_own_options_and_defaults(capsys):
    unet = help_of(["train", "unet"], capsys)
    convtasnet = help_of(["train", "convtasnet"], capsys)
    assert unet != convtasnet
    for help_text in (unet, convtasnet):
        for f in fields(TrainConfig):
            assert "--" + f.name.replace("_", "-") in help_text, f.name
        assert "--resume" in help_text and "best.pt" in help_text
    assert "singing-voice U-Net of Jansson et al. 2017" in unet.split("\n\n")[1]
    assert "unet options (--option KEY=VALUE; tpsep.models.unet.UNetConfig)" in unet
    assert re.search(r"^  max_channels=128 +\.\.\. up to this cap", unet, re.MULTILINE)
    assert re.search(r"^  X=6 +blocks per repeat", convtasnet, re.MULTILINE)
    assert "Conv-TasNet, Luo & Mesgarani 2019" in convtasnet.split("\n\n")[1]
    # each help holds its own model's keys only
    assert "max_channels=" not in convtasnet and "X=6" not in unet
    assert "tpsep train convtasnet --option X=7" in convtasnet


def test_a_model_help_shortens_a_long_default(capsys):
    from tpsep.models.bandsplit import BandSplitConfig

    edges = BandSplitConfig().band_edges_hz
    bandsplit = help_of(["train", "bandsplit"], capsys)
    assert f"band_edges_hz=({edges[0]}, {edges[1]}, ..., {edges[-1]}) [{len(edges)} values]" in bandsplit


def test_same_seed_same_run_from_the_cli(tmp_path, tiny_cli):
    """The seed is set before the model is built: two runs with one seed give the same losses."""
    for name in ("a", "b"):
        assert tiny_cli(["train", "tiny", "--max-steps", "6", "--seed", "4", "--out", str(tmp_path / name),
                         "--no-progress", "--batch-size", "4"]) == 0
    assert run_losses(tmp_path / "a") == run_losses(tmp_path / "b")
    assert tiny_cli(["train", "tiny", "--max-steps", "6", "--seed", "5", "--out", str(tmp_path / "c"),
                     "--no-progress", "--batch-size", "4"]) == 0
    assert run_losses(tmp_path / "c") != run_losses(tmp_path / "a")


def test_interrupted_cli_run_resumed_matches_an_uninterrupted_one(tmp_path, tiny_cli):
    common = ["--seed", "2", "--no-progress", "--batch-size", "4", "--lr", "5e-3"]
    assert tiny_cli(["train", "tiny", "--max-steps", "17", "--out", str(tmp_path / "straight"), *common]) == 0
    assert tiny_cli(["train", "tiny", "--max-steps", "7", "--out", str(tmp_path / "cut"), *common]) == 0
    assert tiny_cli(["train", "tiny", "--max-steps", "17", "--out", str(tmp_path / "cut"),
                     "--resume", str(tmp_path / "cut" / "last.pt"), *common]) == 0
    assert run_losses(tmp_path / "cut") == run_losses(tmp_path / "straight")
    assert len(run_losses(tmp_path / "straight")) == 17


def test_save_every_writes_a_resumable_checkpoint_before_the_epoch_ends(tmp_path):
    train_loader, _ = loaders()
    fit(make_model(), mse, train_loader, config=quiet(max_steps=3, save_every=2, out_dir=str(tmp_path)))
    # the epoch has 10 batches: only save_every can have written last.pt at step 2, then the stop at 3
    assert load_checkpoint(str(tmp_path / "last.pt"))["state"]["step"] == 3
    fit(make_model(), mse, train_loader, config=quiet(max_steps=2, save_every=2, out_dir=str(tmp_path / "b"),
                                                      epochs=None))
    assert load_checkpoint(str(tmp_path / "b" / "last.pt"))["resume"]["optimizer"] is not None


@pytest.mark.parametrize("flags, message", [
    (["--grad-clip", "-1"], "grad_clip must be a positive number"),
    (["--lr", "0"], "lr must be a positive number"),
    (["--lr", "nan"], "lr must be a positive number"),
    (["--batch-size", "0"], "batch_size must be positive"),
    (["--accumulate", "0"], "accumulate must be a positive number"),
    (["--ema", "1.5"], "ema is a decay in"),
    (["--schedule", "linear"], "schedule must be one of"),
    (["--option", "hidden"], "KEY=VALUE"),
    (["--option", "depth=3"], "unknown config key"),
])
def test_bad_training_options_are_one_line_errors(tmp_path, tiny_cli, capsys, flags, message):
    assert tiny_cli(["train", "tiny", "--max-steps", "1", "--no-progress", *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_two_epochs_draw_different_chunks():
    """The chunk dataset is told the epoch: remixes and chunks change, and stay the same on a rerun."""
    from tpsep.data import ChunkDataset, memory_track

    rng = np.random.default_rng(0)
    tracks = []
    for i in range(3):
        sources = {name: (0.1 * rng.standard_normal((1, 8000 * 4))).astype(np.float32) for name in ("s1", "s2")}
        tracks.append(memory_track(f"t{i}", 8000, sources["s1"] + sources["s2"], sources))

    def seen_per_epoch():
        dataset = ChunkDataset(tracks, seconds=0.5, remix=True, chunks_per_epoch=8)
        seen = []

        def loss_fn(model, batch):
            mixture, _ = batch
            seen.append(mixture.sum(dim=(1, 2)).tolist())
            return model(mixture[..., :6].mean(1)).pow(2).mean()

        fit(torch.nn.Linear(6, 2), loss_fn, DataLoader(dataset, batch_size=4, shuffle=True), config=quiet(epochs=2))
        return [sorted(sum(seen[:2], [])), sorted(sum(seen[2:], []))]

    first, second = seen_per_epoch()
    assert first != second                      # epoch 2 is not epoch 1 reshuffled
    assert seen_per_epoch() == [first, second]  # ... and the draw is reproducible


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
    assert load_checkpoint(str(tmp_path / "last.pt"))["state"]["step"] == 20


def test_validation_does_not_change_training():
    with_valid = fit(make_model(), mse, *loaders(), quiet(epochs=2))
    without = fit(make_model(), mse, loaders()[0], config=quiet(epochs=2))
    assert with_valid.train_loss == without.train_loss and len(with_valid.valid_loss) == 2


def test_bf16_autocast_and_the_minutes_limit():
    history = fit(make_model(), mse, loaders()[0], config=quiet(minutes=1e-9, precision="bf16", device="cpu"))
    assert history.steps == 1 and history.stopped_because == "minutes" and np.isfinite(history.train_loss[0])
    assert isinstance(autocast_context(torch.device("cpu"), "bf16"), torch.autocast)
    assert not isinstance(autocast_context(torch.device("cpu"), "auto"), torch.autocast)


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
