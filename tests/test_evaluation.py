"""Tests of tpsep.evaluation: the separator/evaluate loop and the ``tpsep evaluate`` command."""

import argparse
import json

import numpy as np
import pytest
import torch

from tpsep import evaluation, masks, metrics

RATE = 8000


class FakeTrack:
    """A music-like track: four stems of tones and noise, 3 seconds at 8 kHz, mono."""

    source_names = ("drums", "bass", "other", "vocals")
    rate = RATE

    def __init__(self, name, seed):
        rng = np.random.default_rng(seed)
        t = np.arange(3 * RATE) / RATE
        freqs = {"drums": None, "bass": 110, "other": 660, "vocals": 330 + 20 * seed}
        self.name = name
        self.sources = {}
        for stem, f in freqs.items():
            if f is None:  # noise bursts
                x = 0.3 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 2 * t) > 0.6)
            else:
                x = 0.3 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) * (1 + 0.5 * np.sin(2 * np.pi * 0.7 * t))
            self.sources[stem] = (x + 1e-3 * rng.standard_normal(t.size))[None].astype(np.float32)
        self.mixture = sum(self.sources.values())

    def stem(self, name):
        if name == "accompaniment":
            return sum(v for k, v in self.sources.items() if k != "vocals")
        return self.sources[name]


TRACKS = [FakeTrack("a", 0), FakeTrack("b", 1)]


def test_group_targets_scores_accompaniment_with_vocals_like_museval():
    assert evaluation._group_targets(["vocals", "accompaniment"]) == [
        (["vocals", "accompaniment"], ["vocals", "accompaniment"])]
    groups = evaluation._group_targets(["drums", "bass", "other", "vocals", "accompaniment"])
    assert (["vocals", "accompaniment"], ["accompaniment"]) in groups
    assert (["drums", "bass", "other", "vocals"], ["drums", "bass", "other", "vocals"]) in groups
    assert evaluation._group_targets(["s1", "s2"]) == [(["s1", "s2"], ["s1", "s2"])]


def test_evaluate_framed_museval_ranks_the_oracle_above_the_mixture():
    frames = {kind: evaluation.evaluate(masks.oracle_separator(kind, n_fft=512, hop=128), TRACKS,
                                        method=kind) for kind in ("irm", "mix")}
    irm = frames["irm"]
    assert set(irm.columns) == {"method", "track", "target", "metric", "frame", "value"}
    assert set(irm.target) == {"vocals", "accompaniment"} and set(irm.metric) == set(metrics.METRICS)
    assert irm[(irm.track == "a") & (irm.metric == "SDR")].frame.nunique() == 3  # 1 s frames of 3 s
    import pandas as pd
    summary = metrics.summary_table(pd.concat(frames.values()))
    assert summary.loc[("irm", "vocals"), "SDR"] > summary.loc[("mix", "vocals"), "SDR"] + 10
    assert summary.loc[("irm", "vocals"), "tracks"] == 2


@pytest.mark.parametrize("mode,metric", [("fast", "SDR"), ("si_sdr", "SI-SDR"), ("global", "SIR")])
def test_other_modes_give_one_score_per_track(mode, metric):
    frames = evaluation.evaluate(masks.oracle_separator("irm2", n_fft=512, hop=128), TRACKS[:1], mode=mode)
    rows = frames[frames.metric == metric]
    assert len(rows) == 2 and rows.frame.max() == 0 and np.isfinite(rows.value).all()
    assert rows[rows.target == "vocals"].value.item() > 10


def test_fast_mode_matches_museval_bss_eval_sources():
    separator = masks.oracle_separator("ibm", n_fft=512, hop=128)
    track = TRACKS[0]
    estimates = separator(track)
    names = ["vocals", "accompaniment"]
    references = np.stack([track.stem(n) for n in names])
    estimated = np.stack([estimates[n] for n in names])
    fast = evaluation.score_track(estimates, track, names, mode="fast")
    slow = metrics.bss_eval_sources(references, estimated)["SDR"]
    np.testing.assert_allclose(fast.value.to_numpy(), slow, atol=0.05)


def test_bad_separator_output_is_a_clear_error():
    def short(track):
        return {"vocals": track.mixture[:, :-10], "accompaniment": track.mixture[:, :-10]}

    with pytest.raises(ValueError, match="has shape"):
        evaluation.evaluate(short, TRACKS[:1])
    with pytest.raises(ValueError, match="no estimate for 'accompaniment'"):
        evaluation.evaluate(lambda track: {"vocals": track.mixture}, TRACKS[:1])
    with pytest.raises(ValueError, match="no tracks"):
        evaluation.evaluate(short, [])


def _parse(argv):
    parser = argparse.ArgumentParser(prog="tpsep")
    evaluation.add_evaluate_command(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_command_prints_the_table_and_ends_with_the_vocals_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(evaluation, "_load_tracks", lambda dataset, split: TRACKS)
    path = tmp_path / "out" / "oracle.json"
    args = _parse(["evaluate", "--oracle", "irm", "mix", "--dataset", "music", "--split", "test",
                   "--metric", "fast", "--n-fft", "512", "--hop", "128", "--json", str(path)])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    results = json.loads(path.read_text())
    irm = results["summary"]["irm"]["vocals"]["SDR"]
    mix = results["summary"]["mix"]["vocals"]["SDR"]
    assert lines[-1] == f"vocals SDR (median over tracks): irm {irm:.2f} dB, mix {mix:.2f} dB"
    assert irm > mix
    assert any("median over tracks" in line for line in lines[:-1])
    assert len(results["per_track"]) == 2 * 2 * 2  # methods x tracks x targets


def test_command_checkpoint_mode_rebuilds_the_model_or_says_why(tmp_path, monkeypatch, capsys):
    from dataclasses import asdict

    from tpsep.checkpoints import save_checkpoint
    from tpsep.cli import main
    from tpsep.models.unet import UNet, UNetConfig

    monkeypatch.setattr(evaluation, "_load_tracks", lambda dataset, split: TRACKS[:1])
    with pytest.raises(SystemExit, match="nothing to evaluate"):
        evaluation.run_evaluate(_parse(["evaluate"]))
    junk = tmp_path / "model.pt"
    junk.write_bytes(b"not a real model")
    assert main(["evaluate", str(junk), "--metric", "fast"]) == 2
    assert "not a readable checkpoint" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "missing.pt")]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    other = tmp_path / "other.pt"
    save_checkpoint(other, torch.nn.Linear(2, 2), extra={"model_name": "resnet"})
    assert main(["evaluate", str(other)]) == 2
    assert "unknown model 'resnet'" in capsys.readouterr().err

    config = UNetConfig(depth=6, channels=4, max_channels=8)
    unet = tmp_path / "runs" / "best.pt"
    save_checkpoint(unet, UNet(config, verbose=False), extra={"model_name": "unet", "model_config": asdict(config)})
    assert main(["evaluate", str(unet), "--metric", "si_sdr"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[-1].startswith("vocals SI-SDR (median over tracks): unet (runs/best.pt) ")
    # the table names the model and its run too, not the file name "best" alone
    assert any(line.startswith("unet (runs/best.pt) vocals") for line in lines), lines

def test_tracks_made_from_arrays_can_be_evaluated_twice():
    # evaluate() unloads each track after scoring it to keep memory flat; a track made from
    # arrays has no file to read again, so unloading it used to lose its audio for good
    from tpsep.data import memory_track

    rng = np.random.default_rng(0)
    sources = {"s1": rng.standard_normal((1, RATE)).astype(np.float32),
               "s2": rng.standard_normal((1, RATE)).astype(np.float32)}
    track = memory_track("pair", RATE, sources["s1"] + sources["s2"], sources)
    oracle = masks.oracle_separator("irm", n_fft=256, hop=64)
    first = evaluation.evaluate(oracle, [track], targets=["s1", "s2"], mode="si_sdr")
    second = evaluation.evaluate(oracle, [track], targets=["s1", "s2"], mode="si_sdr")
    np.testing.assert_allclose(first["value"], second["value"])
    assert np.isfinite(first["value"]).all()


def _speech_pairs():
    from tpsep.data import memory_track

    tracks = []
    for i, pair in enumerate(("FF", "FM", "MM", "FM")):
        rng = np.random.default_rng(i)
        t = np.arange(RATE) / RATE
        s1 = (np.sin(2 * np.pi * (200 + 50 * i) * t) * (1 + rng.uniform(0, 1))).astype(np.float32)[None]
        s2 = (0.5 * rng.standard_normal(RATE)).astype(np.float32)[None]
        tracks.append(memory_track(f"mix{i}", RATE, s1 + s2, {"s1": s1, "s2": s2},
                                   meta={"pair": pair, "speakers": [f"a{i}", f"b{i}"]}))
    return tracks


def test_per_sample_table_has_one_row_per_track_with_its_meta():
    tracks = _speech_pairs()
    table = evaluation.per_sample_table(masks.oracle_separator("irm", n_fft=256, hop=64), tracks)
    assert list(table.index) == [t.name for t in tracks]
    np.testing.assert_allclose(table["improvement"], table["output"] - table["input"])
    assert (table["improvement"] > 3).all()  # the oracle separates tones from noise
    assert list(table["pair"]) == ["FF", "FM", "MM", "FM"]
    assert table.loc["mix0", "speakers"] == "a0, b0" and table.loc["mix0", "seconds"] == 1.0
    # the input score is the mixture's own: the mean over sources of SI-SDR(mixture, source)
    mixture = torch.from_numpy(tracks[2].mixture)
    expected = np.mean([float(metrics.si_sdr(mixture, torch.from_numpy(tracks[2].sources[s])).mean())
                        for s in ("s1", "s2")])
    assert table.loc["mix2", "input"] == pytest.approx(expected, abs=1e-4)
    summary = evaluation.per_sample_summary(table, by="pair")
    assert summary.loc[("FM", "improvement"), "count"] == 2
    assert summary.loc[("FM", "improvement"), "mean"] == pytest.approx(
        table.loc[["mix1", "mix3"], "improvement"].mean(), abs=0.01)
    with pytest.raises(ValueError, match="no column 'snr_db'"):
        evaluation.per_sample_summary(table, by="snr_db")


def test_command_writes_the_per_sample_csv(tmp_path, monkeypatch, capsys):
    import pandas as pd

    monkeypatch.setattr(evaluation, "_load_tracks", lambda dataset, split: _speech_pairs())
    path = tmp_path / "per_sample.csv"
    args = _parse(["evaluate", "--oracle", "irm", "mix", "--dataset", "speech", "--metric", "si_sdr",
                   "--n-fft", "256", "--hop", "64", "--per-sample", str(path)])
    assert args.func(args) == 0
    written = pd.read_csv(path)
    assert len(written) == 2 * 4 and set(written["method"]) == {"irm", "mix"}
    mix_rows = written[written["method"] == "mix"]
    np.testing.assert_allclose(mix_rows["improvement"], 0, atol=1e-6)  # the mixture improves on nothing
    assert "per sample, irm" in capsys.readouterr().out
