"""Tests of tpsep.diagnose.check_pipeline: a healthy speech test set passes, and each classic way
of breaking an evaluation pipeline (a shifted reference, a reference of another item, a reference
at twice the rate, a (B, 1, T) against (B, T) broadcast, a run whose loss has the wrong sign or
whose learning rate collapsed) is named, with its numbers."""

import json

import numpy as np
import pytest
import torch

from tpsep.audio import resample
from tpsep.data import load_dataset, memory_track
from tpsep.diagnose import PipelineReport, check_pipeline, find_lag
from tpsep.reporting import History

torch.set_num_threads(1)

RATE = 8000


@pytest.fixture(scope="module")
def tracks():
    """The first 10 test mixtures of the default speech set (two speakers, 8 kHz), read once."""
    return [track.load() for track in load_dataset("speech", split="test", progress=False)[:10]]


def delayed(audio: np.ndarray, samples: int) -> np.ndarray:
    """``audio`` (channels, samples) shifted later by ``samples`` (earlier when negative), same length."""
    shifted = np.roll(audio, samples, axis=-1)
    if samples > 0:
        shifted[..., :samples] = 0
    else:
        shifted[..., samples:] = 0
    return shifted


def references_of(tracks, change) -> list:
    """Per track, its sources stacked (sources, channels, samples), each passed through ``change``."""
    return [np.stack([change(track.sources[name]) for name in track.source_names]) for track in tracks]


def the(report: PipelineReport, check: str):
    """The findings of one check."""
    return [f for f in report.findings if f.check == check]


def input_scores(report: PipelineReport) -> np.ndarray:
    return report.table[[c for c in report.table if c.startswith("input_")]].to_numpy(dtype=float)


# ---- the data ------------------------------------------------------------------------------------


def test_the_default_speech_set_is_healthy(tracks):
    report = check_pipeline(tracks)
    assert report.ok and report.findings == [], report.report()
    assert report.tracks_checked == 10 and report.rates == (RATE,)
    table = report.table
    assert list(table.index) == [t.name for t in tracks]
    assert {"input_s1", "input_s2", "lag_s1", "lag_s2", "rolloff_ratio_s1", "rolloff_ratio_s2"} <= set(table)
    # a mixture of two speakers scores about 0 dB against each of them, at no lag, on the same band
    assert np.all(np.abs(input_scores(report)) < 10)
    assert (table[["lag_s1", "lag_s2"]] == 0).all().all()
    assert np.allclose(table[["rolloff_ratio_s1", "rolloff_ratio_s2"]], 1, atol=0.05)
    assert "no problem found" in str(report)


@pytest.mark.parametrize("samples, milliseconds", [(8, 1.0), (256, 32.0), (-8, -1.0)])
def test_a_shifted_reference_is_found_with_its_lag(tracks, samples, milliseconds):
    report = check_pipeline(mixture=[t.mixture for t in tracks],
                            references=references_of(tracks, lambda x: delayed(x, samples)), rate=RATE)
    assert not report.ok
    assert (report.table[["lag_s1", "lag_s2"]] == samples).all().all()
    [lag] = the(report, "lag")
    assert lag.severity == "error"
    assert f"{samples:+d} samples late, {milliseconds:.1f} ms" in lag.message
    assert "once aligned" in lag.message
    assert np.mean(input_scores(report)) < -15  # what a student would have read as "the score"
    assert not the(report, "input")  # the lag explains it: no second finding about the same pairs


def test_a_lag_is_found_in_tracks_too(tracks):
    shifted = [memory_track(t.name, t.rate, t.mixture, {k: delayed(v, 3) for k, v in t.sources.items()})
               for t in tracks[:3]]
    report = check_pipeline(shifted)
    [lag] = the(report, "lag")
    assert "+3 samples late, 0.4 ms" in lag.message
    # one sample is a warning: it already costs several dB at 8 kHz
    almost = [memory_track(t.name, t.rate, t.mixture, {k: delayed(v, 1) for k, v in t.sources.items()})
              for t in tracks[:2]]
    [small] = the(check_pipeline(almost), "lag")
    assert small.severity == "warning" and "+1 samples" in small.message


def test_references_of_another_track_give_a_broken_input_score(tracks):
    rolled = tracks[1:] + tracks[:1]  # each mixture gets the next track's sources, cut to its length
    references = [np.stack([np.pad(other.sources[k], ((0, 0), (0, max(0, t.frames - other.frames))))[:, :t.frames]
                            for k in t.source_names]) for t, other in zip(tracks, rolled)]
    report = check_pipeline(mixture=[t.mixture for t in tracks], references=references, rate=RATE)
    assert np.all(input_scores(report) < -20)
    [broken] = the(report, "input")
    assert broken.severity == "error" and "20 cases in 10 tracks" in broken.message
    assert "not the same recording" in broken.message and "where the levels predict" in broken.message
    assert report.table[["lag_s1", "lag_s2"]].isna().all().all()  # no shift makes them alike
    assert not the(report, "lag")


@pytest.mark.parametrize("cropped", [False, True])
def test_a_reference_at_twice_the_rate_is_named(tracks, cropped):
    def at_16k_read_as_8k(x):
        doubled = resample(x, RATE, 2 * RATE)
        return doubled[:, :x.shape[-1]] if cropped else doubled

    report = check_pipeline(mixture=[t.mixture for t in tracks[:4]],
                            references=references_of(tracks[:4], at_16k_read_as_8k), rate=RATE)
    [rate] = the(report, "rate")
    assert rate.severity == "error"
    assert "likely 16000 Hz audio read as 8000 Hz" in rate.message
    assert "resampled 16000 -> 8000 Hz it scores" in rate.message
    ratios = report.table[["rolloff_ratio_s1", "rolloff_ratio_s2"]].to_numpy()
    assert np.allclose(ratios, 0.5, atol=0.05)  # its spectrum stops at 2 kHz, the mixture's at 4 kHz
    lengths = the(report, "length")
    if cropped:
        assert not lengths
    else:
        assert lengths and "x2.00" in lengths[0].message and "+34360" in lengths[0].message


def test_tracks_at_another_rate_than_expected_are_named(tracks):
    report = check_pipeline(tracks[:2], rate=16000)
    [rate] = the(report, "rate")
    assert rate.severity == "warning" and "8000 Hz, not the expected 16000 Hz" in rate.message


def test_a_quiet_stem_is_not_blamed():
    rng = np.random.default_rng(0)
    loud, quiet = rng.standard_normal((2, 1, RATE)).astype(np.float32)
    quiet *= 10 ** (-30 / 20)  # 30 dB below: the mixture scores about -30 dB against it, as it should
    report = check_pipeline(mixture=(loud + quiet)[None], references=np.stack([loud, quiet])[None], rate=RATE)
    assert report.table.loc["item 0", "input_s2"] < -25
    assert report.ok and not the(report, "input"), report.report()


# ---- estimates -----------------------------------------------------------------------------------


def batch_of(tracks, source="s1"):
    length = min(t.frames for t in tracks)
    mixture = torch.tensor(np.stack([t.mixture[0, :length] for t in tracks]))
    reference = torch.tensor(np.stack([t.sources[source][0, :length] for t in tracks]))
    return mixture, reference


def test_estimates_b1t_against_references_bt_are_a_broadcast_not_a_score(tracks):
    mixture, clean = batch_of(tracks[:4])
    report = check_pipeline(mixture=mixture, references=clean, estimates=clean[:, None], rate=RATE)
    [broadcast] = the(report, "broadcast")
    length = clean.shape[-1]
    assert f"broadcast to (4, 4, {length})" in broadcast.message
    assert f"estimates.squeeze(1) gives (4, {length})" in broadcast.message
    assert "output" not in report.table  # nothing was scored against the broadcast pairs
    # the same estimates, squeezed, are fine
    fine = check_pipeline(mixture=mixture, references=clean, estimates=clean + 0.01 * torch.randn_like(clean), rate=RATE)
    assert fine.ok and (fine.table["improvement"] > 0).all()


def test_references_that_do_not_fit_the_mixture_are_named(tracks):
    mixture, clean = batch_of(tracks[:4])
    [shape] = check_pipeline(mixture=mixture, references=clean[:3], rate=RATE).findings
    assert shape.check == "shape" and "(3," in shape.message and "(4," in shape.message


def test_improvements_tens_of_db_both_ways_mean_a_broken_pipeline(tracks):
    rng = np.random.default_rng(0)
    estimates = []
    for index, track in enumerate(tracks[:4]):
        if index % 2 == 0:  # nearly perfect
            estimates.append({k: v + 0.003 * rng.standard_normal(v.shape).astype(np.float32)
                              for k, v in track.sources.items()})
        else:               # the next track's sources: scored against the wrong references
            other = tracks[index + 1]
            estimates.append({k: np.resize(other.sources[k], track.mixture.shape) for k in track.source_names})
    report = check_pipeline(tracks[:4], estimates=estimates)
    [spread] = the(report, "spread")
    assert spread.severity == "error"
    assert report.table["improvement"].min() < -10 < 10 < report.table["improvement"].max()
    assert f"{report.table['improvement'].min():+.1f} dB" in spread.message


def test_a_separator_is_run_and_its_estimates_matched(tracks):
    class MixtureTwice(torch.nn.Module):  # "separates" by returning the mixture as both sources
        def forward(self, mixture):        # (batch, channels, samples) -> (batch, 2, channels, samples)
            return torch.stack([mixture, mixture], dim=1)

    report = check_pipeline(tracks[:3], separator=MixtureTwice())
    assert report.ok and not report.findings
    assert np.allclose(report.table["improvement_s1"], 0, atol=1e-3)
    # estimates given in the wrong order are matched back (PIT models output any order)
    swapped = [{"s1": t.sources["s2"], "s2": t.sources["s1"]} for t in tracks[:3]]
    assert (check_pipeline(tracks[:3], estimates=swapped).table["output"] > 50).all()


def test_shifted_estimates_are_named(tracks):
    estimates = [{k: delayed(v, 40) for k, v in t.sources.items()} for t in tracks[:3]]
    report = check_pipeline(tracks[:3], estimates=estimates)
    [lag] = the(report, "lag")
    assert "estimate s1 is +40 samples late, 5.0 ms" in lag.message
    assert (report.table[["output_lag_s1", "output_lag_s2"]] == 40).all().all()


def test_find_lag_gives_sign_and_value():
    signal = np.random.default_rng(1).standard_normal(4000)
    assert find_lag(signal, delayed(signal[None], 17)[0], 100) == (17, pytest.approx(1, abs=0.01))
    assert find_lag(signal, delayed(signal[None], -5)[0], 100)[0] == -5
    assert find_lag(signal, np.zeros(4000), 100) == (0, 0.0)


# ---- a run's log ---------------------------------------------------------------------------------

STEPS_PER_EPOCH, EPOCHS = 100, 1496


def collapsing_run() -> list:
    """The report's run: an LR divided by 8,000 over 1,496 epochs, the best validation at epoch 100."""
    total, records = STEPS_PER_EPOCH * EPOCHS, []
    for step in range(100, total + 1, 100):
        decay = (step - 100) / (total - 100)  # 0 at the first step, 1 at the last
        records.append({"step": step, "loss": -12.0, "grad_norm": 1.0, "lr": 5e-4 * (1 / 8000) ** decay,
                        "time": step / 10})
    for epoch in [*range(10, EPOCHS, 10), EPOCHS]:
        records.append({"step": epoch * STEPS_PER_EPOCH, "epoch": epoch, "valid_loss": -10.0 + abs(epoch - 100) / 1000})
    return sorted(records, key=lambda r: r["step"])


def test_a_collapsed_learning_rate_is_named_with_its_factor(tmp_path):
    records = collapsing_run()
    (tmp_path / "log.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    for log in (records, tmp_path / "log.jsonl", str(tmp_path)):  # the records, the file, the run's folder
        report = check_pipeline(log=log)
        [lr] = the(report, "lr")
        assert lr.severity == "error"
        assert "collapsed 8,000-fold" in lr.message
        assert "from step 115,100 on (77% of the 149,600 steps)" in lr.message  # 1/1000 is 10/13 of 1/8000
        assert "step 10,000 (epoch 100 of 1,496), 7% of the run" in lr.message
    assert report.run["best_epoch"] == 100 and report.run["lr_factor"] == pytest.approx(8000)


def test_a_positive_rising_si_snr_loss_has_the_wrong_sign():
    records = [{"step": s, "loss": 20 + 13 * s / 1000, "lr": 1e-3} for s in range(10, 1001, 10)]
    [sign] = check_pipeline(log=records).findings
    assert sign.check == "sign" and sign.severity == "error"
    assert "positive and rising, +21.7 -> +31.4" in sign.message
    # sitting at +33: a warning when guessed, an error when the loss is declared minus SI-SNR
    flat = [{"step": s, "valid_loss": 33.0 + 0.1 * np.sin(s)} for s in range(10)]
    assert [f.severity for f in check_pipeline(log=flat).findings] == ["warning"]
    assert [f.severity for f in check_pipeline(log=flat, loss_kind="si_snr").findings] == ["error"]
    assert check_pipeline(log=flat, loss_kind="other").findings == []


def test_a_loss_that_falls_with_its_metric_has_the_wrong_sign():
    records = [{"step": s, "epoch": s // 100, "valid_loss": 1 - s / 2000, "valid_si_snr": 10 - s / 100}
               for s in range(100, 1001, 100)]
    [sign] = check_pipeline(log=records).findings
    assert sign.check == "sign" and "valid_si_snr falls with it" in sign.message


def test_a_healthy_run_passes_and_a_history_is_read():
    history = History()
    for step in range(1, 201):
        lr = 1e-5 + (1e-3 - 1e-5) * 0.5 * (1 + np.cos(np.pi * step / 200))  # cosine to a floor
        history.add_step(step, -5 - step / 20, 1.0, lr, step / 10)
    for epoch in range(1, 11):
        history.add_valid(epoch * 20, epoch, -5 - epoch)
    report = check_pipeline(log=history)
    assert report.ok and report.findings == [], report.report()
    assert report.run["steps"] == 200 and report.run["best_epoch"] == 10


def test_tracks_and_log_together(tracks):
    report = check_pipeline(tracks[:2], log=collapsing_run())
    assert [f.check for f in report.findings] == ["lr"]
    text = str(report)
    assert "2 tracks" in text and "run: 149,600 steps" in text


# ---- bad arguments -------------------------------------------------------------------------------


def test_bad_arguments_are_named(tracks, tmp_path):
    with pytest.raises(ValueError, match="needs something to check"):
        check_pipeline()
    with pytest.raises(ValueError, match="either tracks or mixture"):
        check_pipeline(tracks[:1], mixture=np.zeros(10), references=np.zeros(10))
    with pytest.raises(ValueError, match="mixture= was given without references="):
        check_pipeline(mixture=np.zeros(10))
    with pytest.raises(TypeError, match="list of tpsep.data.Track.*got str"):
        check_pipeline("speech")
    with pytest.raises(TypeError, match="item 1 is a dict"):
        check_pipeline([tracks[0], {"mixture": 0}])
    with pytest.raises(ValueError, match="1 estimates for 2 tracks"):
        check_pipeline(tracks[:2], estimates=[{}])
    with pytest.raises(ValueError, match="estimates= or separator="):
        check_pipeline(tracks[:1], estimates=[{}], separator=torch.nn.Identity())
    with pytest.raises(FileNotFoundError, match="nowhere.jsonl does not exist"):
        check_pipeline(log=tmp_path / "nowhere.jsonl")
    with pytest.raises(FileNotFoundError, match="holds no log.jsonl"):
        check_pipeline(log=tmp_path)
    with pytest.raises(TypeError, match="log must be .* got int"):
        check_pipeline(log=3)
    with pytest.raises(ValueError, match="loss_kind must be"):
        check_pipeline(log=[], loss_kind="l1")
    with pytest.raises(ValueError, match="max_tracks must be a positive integer"):
        check_pipeline(tracks, max_tracks=0)
