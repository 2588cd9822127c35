"""Tests of tpsep.metrics: SI-SDR, museval loading with and without ffmpeg, framed BSS Eval,
the fast SDR against museval, and the SiSEC aggregation of the results tables."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.signal
import torch

from tpsep import metrics

REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata" / "musdb18hq-sample"


def _orthogonal_pair(samples=4000, seed=0):
    rng = np.random.default_rng(seed)
    reference = rng.standard_normal(samples)
    reference -= reference.mean()
    noise = rng.standard_normal(samples)
    noise -= noise.mean()
    noise -= (noise @ reference) / (reference @ reference) * reference
    return reference, noise


# ----------------------------------------------------------------------------- SI-SDR

@pytest.mark.parametrize("k", [0.1, 1.0, 3.0])
def test_si_sdr_matches_its_definition(k):
    reference, noise = _orthogonal_pair()
    expected = 10 * np.log10((reference @ reference) / (k ** 2 * (noise @ noise)))
    got = metrics.si_sdr(torch.tensor(reference + k * noise), torch.tensor(reference))
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_si_sdr_is_scale_invariant_but_not_noise_invariant():
    reference, noise = _orthogonal_pair(seed=1)
    estimate = torch.tensor(reference + 0.3 * noise)
    a = metrics.si_sdr(estimate, torch.tensor(reference))
    assert metrics.si_sdr(7.0 * estimate, torch.tensor(reference)).item() == pytest.approx(a.item(), abs=1e-6)
    assert metrics.si_sdr(estimate + torch.tensor(noise), torch.tensor(reference)).item() < a.item() - 5


def test_si_sdr_is_batched_and_differentiable():
    torch.manual_seed(0)
    reference = torch.randn(3, 2, 1000)
    estimate = (reference + 0.5 * torch.randn(3, 2, 1000)).requires_grad_()
    batched = metrics.si_sdr(estimate, reference)
    assert batched.shape == (3, 2)
    one = metrics.si_sdr(estimate[1, 0], reference[1, 0])
    assert torch.allclose(batched[1, 0], one)
    (-batched.mean()).backward()
    assert estimate.grad is not None and torch.isfinite(estimate.grad).all() and estimate.grad.abs().sum() > 0


def test_si_sdr_rejects_a_silent_reference_clearly():
    reference = torch.randn(2, 500)
    reference[1] = 0
    with pytest.raises(ValueError, match="all zeros.*\\[\\[1\\]\\]"):
        metrics.si_sdr(torch.randn(2, 500), reference)
    with pytest.raises(ValueError, match="same shape"):
        metrics.si_sdr(torch.randn(500), torch.randn(400))
    with pytest.raises(ValueError, match="NaN"):
        metrics.si_sdr(torch.full((500,), float("nan")), torch.randn(500))


def test_si_sdr_of_a_silent_estimate_is_very_low_but_finite():
    value = metrics.si_sdr(torch.zeros(500), torch.randn(500))
    assert torch.isfinite(value) and value.item() < -50


def test_si_sdr_improvement_is_the_difference():
    reference, noise = _orthogonal_pair(seed=2)
    mixture = torch.tensor(reference + noise)  # 0 dB
    estimate = torch.tensor(reference + 0.1 * noise)  # 20 dB
    assert metrics.si_sdr_improvement(estimate, torch.tensor(reference), mixture).item() == pytest.approx(20, abs=1e-4)


# ----------------------------------------------------------------------------- museval with or without ffmpeg

PROBE = textwrap.dedent("""
    import sys
    from tpsep import metrics
    module = metrics.museval_metrics()
    print(module.__name__, metrics.ffmpeg_available(), "museval" in sys.modules)
    try:
        metrics.require_ffmpeg("reading stems")
        print("ffmpeg ok")
    except RuntimeError as error:
        print("ERROR", error)
""")


def _run_with_path(path_dirs, tmp_path):
    env = dict(os.environ, PATH=os.pathsep.join(str(p) for p in path_dirs),
               PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                            timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_museval_metrics_load_without_ffmpeg(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    lines = _run_with_path([empty], tmp_path)
    # loaded museval/metrics.py on its own: museval/__init__ (and stempeg) never ran
    assert lines[0] == "tpsep._museval_metrics False False"
    assert lines[1].startswith("ERROR reading stems needs the ffmpeg program")
    assert "apt-get install ffmpeg" in lines[1] and "conda install -c conda-forge ffmpeg" in lines[1]


def test_museval_metrics_use_the_package_when_ffmpeg_is_there(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    for name in ("ffmpeg", "ffprobe"):  # stempeg only checks that they exist at import time
        script = fake / name
        script.write_text("#!/bin/sh\necho 'ffmpeg version 6.0'\n")
        script.chmod(0o755)
    lines = _run_with_path([fake, "/usr/bin", "/bin"], tmp_path)
    assert lines[0] == "museval.metrics True True"
    assert lines[1] == "ffmpeg ok"


# ----------------------------------------------------------------------------- BSS Eval and the fast SDR

def _sources_and_estimates(channels=1, samples=12000, seed=0):
    """Two random references and estimates that mix a filtered reference, a leak and noise."""
    rng = np.random.default_rng(seed)
    references = rng.standard_normal((2, channels, samples))
    estimates = np.empty_like(references)
    for j in range(2):
        filtered = scipy.signal.lfilter([1.0, 0.4, -0.2], [1.0], references[j], axis=-1)
        estimates[j] = filtered + 0.3 * references[1 - j] + 0.2 * rng.standard_normal((channels, samples))
    return references, estimates


def test_framed_bss_eval_scales_its_1_s_window_to_the_rate():
    for rate in (4000, 8000):
        references, estimates = _sources_and_estimates(samples=3 * rate + rate // 2, seed=rate)
        scores = metrics.bss_eval(references, estimates, rate=rate)
        assert set(scores) == {"SDR", "ISR", "SIR", "SAR"}
        assert scores["SDR"].shape == (2, 3)  # three whole 1 s frames, whatever the rate
        # the same numbers as museval called with the window in samples
        direct = metrics.museval_metrics().bss_eval(
            references.transpose(0, 2, 1), estimates.transpose(0, 2, 1), window=rate, hop=rate,
            compute_permutation=False, framewise_filters=False, bsseval_sources_version=False)[0]
        np.testing.assert_allclose(scores["SDR"], direct)
    half = metrics.bss_eval(references, estimates, rate=rate, window_seconds=0.5, hop_seconds=0.5)
    assert half["SDR"].shape == (2, 7)


def test_whole_signal_v4_sdr_counts_a_gain_as_distortion_but_v3_and_si_sdr_do_not():
    rng = np.random.default_rng(3)
    reference = rng.standard_normal((1, 1, 4000))
    estimate = 0.5 * reference + 1e-4 * rng.standard_normal(reference.shape)
    v4 = metrics.bss_eval_global(reference, estimate)
    assert set(v4) == {"SDR", "ISR", "SIR", "SAR"} and v4["SDR"].shape == (1,)
    assert v4["SDR"][0] == pytest.approx(20 * np.log10(2), abs=0.05)  # the missing half is the error
    assert metrics.fast_sdr(reference, estimate)[0] > 60
    assert metrics.si_sdr(torch.tensor(estimate), torch.tensor(reference)).item() > 60


def test_bss_eval_rejects_bad_input():
    references, estimates = _sources_and_estimates(samples=2000)
    with pytest.raises(ValueError, match="same shape"):
        metrics.bss_eval(references, estimates[:, :, :1000], rate=1000)
    references[1] = 0
    with pytest.raises(ValueError, match="all zeros"):
        metrics.fast_sdr(references, estimates)
    with pytest.raises(ValueError, match="sample rate"):
        metrics.bss_eval(references, estimates, rate=0)


@pytest.mark.parametrize("channels", [1, 2])
def test_fast_sdr_agrees_with_museval_bss_eval_sources(channels):
    references, estimates = _sources_and_estimates(channels=channels, samples=6000, seed=channels)
    fast = metrics.fast_sdr(references, estimates)
    slow = metrics.bss_eval_sources(references, estimates)["SDR"]
    assert np.max(np.abs(fast - slow)) < 0.05, (fast, slow)
    # and it is not a constant: a better estimate scores higher
    better = metrics.fast_sdr(references, references + 0.01 * estimates)
    assert np.all(better > fast + 10)


@pytest.mark.skipif(not REALDATA.exists(), reason="real MUSDB18-HQ sample not available")
def test_fast_sdr_agrees_with_museval_on_real_music():
    import soundfile as sf

    folder = REALDATA / "train" / "Music Delta - 80s Rock"
    start, stop = 44100, 44100 + 2 * 22050  # one second of stereo music, to stay fast
    stems = {n: sf.read(folder / f"{n}.wav", dtype="float64")[0][start:stop].T
             for n in ("vocals", "drums", "bass", "other")}
    vocals = stems["vocals"]
    accompaniment = stems["drums"] + stems["bass"] + stems["other"]
    references = np.stack([vocals, accompaniment])
    rng = np.random.default_rng(0)
    estimates = np.stack([vocals + 0.3 * accompaniment, accompaniment + 0.2 * vocals])
    estimates += 0.01 * rng.standard_normal(estimates.shape)
    fast = metrics.fast_sdr(references, estimates)
    slow = metrics.bss_eval_sources(references, estimates)["SDR"]
    assert np.max(np.abs(fast - slow)) < 0.05, (fast, slow)


# ----------------------------------------------------------------------------- tables

def test_summary_is_median_over_frames_then_median_over_tracks():
    frames = pd.concat([
        metrics.scores_table({"SDR": [[1.0, 2.0, 30.0]]}, ["vocals"], track="a", method="irm"),
        metrics.scores_table({"SDR": [[5.0, np.nan, 6.0, 7.0]]}, ["vocals"], track="b", method="irm"),
        metrics.scores_table({"SDR": [[0.0, 100.0, 100.0]]}, ["vocals"], track="c", method="irm"),
    ])
    per_track = metrics.track_table(frames)
    assert per_track.loc[("irm", "a", "vocals"), "SDR"] == 2.0  # a median, not the mean 11
    assert per_track.loc[("irm", "b", "vocals"), "SDR"] == 6.0  # the silent (NaN) frame is ignored
    summary = metrics.summary_table(frames)
    assert summary.loc[("irm", "vocals"), "SDR"] == 6.0  # median of 2, 6, 100
    assert summary.loc[("irm", "vocals"), "tracks"] == 3
    text = metrics.format_summary(summary)
    assert "median over 1 s frames within each track, then median over tracks" in text


def test_summary_of_whole_signal_scores_does_not_claim_frames():
    frames = pd.concat([metrics.scores_table({"SI-SDR": [[value]]}, ["s1"], track=name, method="irm")
                        for name, value in [("a", 9.0), ("b", 12.0), ("c", 10.0)]])
    summary = metrics.summary_table(frames)
    assert summary.loc[("irm", "s1"), "SI-SDR"] == 10.0
    text = metrics.format_summary(summary)
    assert "frames" not in text and "whole-signal score per track, then median over tracks" in text


def _default_test_split_or_skip():
    """The default music test split, only if it is already rendered (rendering takes a minute)."""
    try:
        from tpsep.data import dataset_dir, load_dataset
        from tpsep.data.chorales import music_params
    except ImportError as error:
        pytest.skip(f"tpsep.data is not available: {error}")
    if not (dataset_dir("chorales", music_params()) / "manifest.json").exists():
        pytest.skip("the default music dataset is not rendered yet (tpsep data, or load_dataset('music'))")
    return load_dataset("music", split="test", progress=False)


def test_fast_sdr_agrees_with_museval_on_the_default_test_split():
    """Every test track, its first 16 s (benchmarks/fast_sdr.py checks whole tracks, slowly)."""
    from tpsep import masks

    tracks = _default_test_split_or_skip()
    kinds = ["ibm", "irm", "wiener", "mix"]  # estimates from good to useless
    names = ["vocals", "accompaniment"]
    worst = 0.0
    for i, track in enumerate(tracks):
        length = 16 * track.rate
        stems = {n: track.stem(n)[:, :length] for n in names}
        estimates = masks.separate_with_oracle(track.mixture[:, :length], stems, kind=kinds[i % len(kinds)])
        references = np.stack([stems[n] for n in names])
        estimated = np.stack([estimates[n] for n in names])
        fast = metrics.fast_sdr(references, estimated)
        # bss_eval_sources' SDR of a source depends only on its own reference (the interference
        # and artifacts are lumped together), so scoring one source at a time gives the same
        # numbers as scoring the pair, at half the cost
        slow = np.concatenate([metrics.bss_eval_sources(references[j:j + 1], estimated[j:j + 1])["SDR"]
                               for j in range(len(names))])
        worst = max(worst, float(np.max(np.abs(fast - slow))))
        track.unload()
    assert len(tracks) > 0 and worst < 0.05, worst
