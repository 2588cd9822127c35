"""tpsep doctor on runs made to fail in each of the classic ways, and on a healthy one.

Each run is a real `tpsep.train.fit` on a tiny linear model, so the log, the
configuration and the checkpoints are the ones the trainer writes.
"""

import json

import numpy as np
import pytest
import soundfile as sf
import torch
from torch.utils.data import DataLoader, TensorDataset

from tpsep import cli, doctor
from tpsep.train import NonFiniteError, TrainConfig, fit


def loaders(n_train=64, n_valid=32, noise=0.0, seed=0):
    """y = x W (+ noise) for 8-dim x: a linear model can learn it."""
    generator = torch.Generator().manual_seed(seed)
    weights = torch.randn(8, 8, generator=generator)
    def split(n):
        x = torch.randn(n, 8, generator=generator)
        return TensorDataset(x, x @ weights + noise * torch.randn(n, 8, generator=generator))
    return (DataLoader(split(n_train), batch_size=8, shuffle=True),
            DataLoader(split(n_valid), batch_size=8))


def mse(model, batch):
    x, y = batch
    return (model(x) - y).pow(2).mean()


def train(tmp_path, loss_fn=mse, model=None, data=None, extra=None, **settings):
    torch.manual_seed(0)
    model = model or torch.nn.Linear(8, 8)
    train_loader, valid_loader = data or loaders()
    config = TrainConfig(**{"epochs": 6, "lr": 1e-2, "device": "cpu", "out_dir": str(tmp_path / "run"),
                            "progress": False, "tensorboard": False, "log_every": 1, **settings})
    fit(model, loss_fn, train_loader, valid_loader, config, extra=extra)
    return tmp_path / "run"


def checks(result):
    return [f.check for f in result.findings]


def test_a_healthy_run_has_no_finding(tmp_path):
    result = doctor.examine_run(train(tmp_path), check_data=False)
    assert result.findings == [], str(result)
    assert result.summary["steps"] == 48 and result.summary["lr"] == 1e-2


def test_a_loss_that_does_not_move_is_named_with_its_learning_rate(tmp_path):
    result = doctor.examine_run(train(tmp_path, lr=1e-9), check_data=False)
    assert checks(result) == ["flat"]
    assert "does not move" in str(result) and "learning rate is 1e-09" in str(result)


def test_a_loss_that_does_not_move_for_another_reason_points_to_the_domains(tmp_path):
    # a mask in [0, 1] trained against a magnitude in dB (about -50 dB here): like is not compared
    # with like, and no mask can bring the loss down by more than a couple of percent
    def mask_against_db(model, batch):
        x, y = batch
        return (torch.sigmoid(model(x)) - 20 * torch.log10(1e-3 * y.abs() + 1e-6)).abs().mean()
    result = doctor.examine_run(train(tmp_path, loss_fn=mask_against_db), check_data=False)
    assert "flat" in checks(result)
    assert "check_domains" in str(result) and "overfit_one_batch" in str(result)


def test_a_loss_that_is_exactly_zero(tmp_path):
    def against_itself(model, batch):
        x, _ = batch
        estimate = model(x)
        return (estimate - estimate).abs().mean()
    result = doctor.examine_run(train(tmp_path, loss_fn=against_itself), check_data=False)
    assert checks(result) == ["zero"]
    assert "exactly 0 at every one of the 48 logged steps" in str(result)


def test_nan_from_a_silent_batch_says_where_and_when(tmp_path):
    x = torch.randn(64, 8)
    x[24:32] = 0  # the fourth batch is silence
    data = (DataLoader(TensorDataset(x, x), batch_size=8), None)

    def normalised(model, batch):
        x, y = batch
        scale = x.std(dim=1, keepdim=True)
        return (model(x / scale) - y / scale).pow(2).mean()

    with pytest.raises(NonFiniteError):
        train(tmp_path, loss_fn=normalised, data=data)
    result = doctor.examine_run(tmp_path / "run", check_data=False)
    assert checks(result) == ["nan"]
    assert "stopped at step 3" in str(result) and "the loss is nan" in str(result)
    assert "find_nonfinite" in str(result)


def test_nan_weights_in_the_last_checkpoint_are_named(tmp_path):
    run = train(tmp_path)
    checkpoint = torch.load(run / "last.pt", weights_only=False)
    checkpoint["model"]["bias"][3] = float("nan")
    torch.save(checkpoint, run / "last.pt")
    result = doctor.examine_run(run, check_data=False)
    assert checks(result) == ["nan"]
    assert "1 weight tensor(s): bias" in str(result)


def overfitting_run(tmp_path, **settings):
    """16 noisy examples and a wide network: it memorises them, and validation gets worse."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8))
    data = loaders(n_train=16, n_valid=64, noise=3.0)
    return train(tmp_path, model=model, data=data, epochs=60, log_every=2, **settings)


def test_a_widening_gap_between_training_and_validation(tmp_path):
    result = doctor.examine_run(overfitting_run(tmp_path), check_data=False)
    assert checks(result) == ["gap"], str(result)
    assert "memorises" in str(result) and "widened" in str(result)


def test_a_collapsed_learning_rate(tmp_path):
    # after the best epoch the plateau schedule halves the rate at every epoch, without a floor
    result = doctor.examine_run(overfitting_run(tmp_path, schedule="plateau", plateau_patience=1),
                                check_data=False)
    assert checks(result)[0] == "lr", str(result)
    assert "collapsed" in str(result) and "hardly moved the weights" in str(result)


def test_513_bins_where_512_were_expected(tmp_path):
    from tpsep.models.unet import UNet, UNetConfig

    config = UNetConfig(depth=2, channels=2, max_channels=4)
    model = UNet(config)
    spectrogram = torch.rand(8, 513, 16)  # an n_fft of 1024 without the Nyquist bin dropped
    data = (DataLoader(TensorDataset(spectrogram, spectrogram), batch_size=4), None)
    with pytest.raises(ValueError, match="513"):
        train(tmp_path, model=model, data=data, loss_fn=mse)
    result = doctor.examine_run(tmp_path / "run", check_data=False)
    assert checks(result) == ["bins"]
    assert "crop_bins" in str(result) and "restore_bins" in str(result)


def test_input_scores_that_mean_a_broken_pipeline(tmp_path):
    # a folder of two-speaker tracks whose references belong to another track
    rate, rng = 8000, np.random.default_rng(0)
    voices = [rng.standard_normal(rate).astype(np.float32) * 0.1 for _ in range(11)]
    for index in range(10):
        folder = tmp_path / "data" / f"track{index}"
        folder.mkdir(parents=True)
        s1, s2 = voices[index], voices[index + 1]
        sf.write(folder / "mixture.wav", s1 + s2, rate)
        sf.write(folder / "s1.wav", s1, rate)
        sf.write(folder / "s2.wav", voices[(index + 5) % 11], rate)  # not the s2 that was mixed
    run = train(tmp_path, extra={"dataset": str(tmp_path / "data")})
    result = doctor.examine_run(run)
    assert checks(result) == ["input"], str(result)
    assert "s2" in str(result)
    assert doctor.examine_run(run, check_data=False).findings == []


def test_the_command_line_prints_the_findings_and_writes_json(tmp_path, capsys):
    run = train(tmp_path, lr=1e-9)
    assert cli.main(["doctor", str(run), "--no-data", "--json", str(tmp_path / "d.json")]) == 0
    out = capsys.readouterr().out
    assert "[flat]" in out and out.rstrip().endswith("doctor: findings=1 errors=1")
    saved = json.loads((tmp_path / "d.json").read_text())
    assert saved["findings"][0]["check"] == "flat"


def test_bad_paths_get_clear_errors(tmp_path, capsys):
    assert cli.main(["doctor", str(tmp_path / "nowhere")]) == 2
    assert "does not exist; expected a training run's folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("hello")
    assert cli.main(["doctor", str(tmp_path / "empty")]) == 2
    assert "holds neither log.jsonl nor last.pt/best.pt (it holds ['notes.txt'])" in capsys.readouterr().err
    run = train(tmp_path)
    (run / "last.pt").write_bytes((run / "last.pt").read_bytes()[:100])
    assert cli.main(["doctor", str(run)]) == 2
    assert "not a readable checkpoint (truncated" in capsys.readouterr().err
