"""Band-split model (BSRNN / BS-RoFormer): shapes, band layout, clear errors, paper sizes,
bf16 autocast, the complex-mask plumbing, and a few training steps."""

from dataclasses import replace

import pytest
import torch

from tpsep.losses import bandsplit_loss
from tpsep.metrics import si_sdr
from tpsep.models import parameter_report
from tpsep.models.bandsplit import (
    COURSE,
    COURSE_EDGES_HZ,
    PAPER_BS_ROFORMER,
    PAPER_BSRNN_VOCALS,
    V7_VOCALS_EDGES_HZ,
    BandSplit,
    BandSplitConfig,
    band_bins,
    check_band_widths,
)

torch.set_num_threads(1)

# 8 kHz, 129 bins, 5 bands: small enough for a whole test file in seconds
TINY = BandSplitConfig(rate=8000, n_fft=256, hop=64, band_edges_hz=(250, 500, 1000, 2000),
                       N=8, L=1, H=8, heads=2, head_dim=4, mask_mult=2)
FOUR = ("vocals", "drums", "bass", "other")


def noise(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---- shapes


@pytest.mark.parametrize("sequence_model", ["blstm", "roformer"])
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("sources", [("vocals",), FOUR])
def test_output_shape_is_batch_sources_channels_samples(sequence_model, channels, sources):
    config = replace(TINY, channels=channels, sources=sources, sequence_model=sequence_model)
    model = BandSplit(config, verbose=False)
    mixture = noise(3, channels, 2001)  # a length that is not a multiple of the hop
    out = model(mixture)
    assert out.shape == (3, len(sources), channels, 2001)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_course_config_is_small_and_full_band_at_16_khz():
    model = BandSplit(COURSE, verbose=False)
    assert COURSE.rate == 16000 and sum(model.widths) == COURSE.n_fft // 2 + 1
    assert model.num_parameters() <= 0.9e6
    assert model(noise(1, 1, 16000)).shape == (1, 1, 1, 16000)


def test_constructor_prints_the_parameter_count(capsys):
    model = BandSplit(TINY)
    out = capsys.readouterr().out
    assert out.strip() == parameter_report(model, model.describe())
    assert out.startswith(f"BandSplit: {model.num_parameters():,} parameters") or "M parameters" in out
    assert "K 5 bands" in out


# ---- band layout


@pytest.mark.parametrize("rate, n_fft", [(16000, 1024), (44100, 2048)])
def test_course_layout_converts_and_covers_every_bin_once(rate, n_fft):
    config = replace(COURSE, rate=rate, n_fft=n_fft)
    widths = band_bins(config)
    bins = n_fft // 2 + 1
    assert len(widths) == len(COURSE_EDGES_HZ) + 1 and all(w >= 1 for w in widths) and sum(widths) == bins
    # every bin lies (within half a bin) inside the Hz range of the band it was given to
    hz = [0.0, *COURSE_EDGES_HZ, rate / 2]
    half_bin = rate / n_fft / 2
    band_of_bin = torch.repeat_interleave(torch.arange(len(widths)), torch.tensor(widths))
    for b in range(bins):
        k = int(band_of_bin[b])
        assert hz[k] - half_bin <= b * rate / n_fft <= hz[k + 1] + half_bin


def test_paper_layouts_have_the_papers_band_counts():
    assert len(band_bins(PAPER_BSRNN_VOCALS)) == 41  # BSRNN "v7"
    assert band_bins(PAPER_BS_ROFORMER) == [2] * 24 + [4] * 12 + [12] * 8 + [24] * 8 + [48] * 8 + [128, 129]
    assert band_bins(PAPER_BS_ROFORMER)[0] * 44100 / 2048 == pytest.approx(43.07, abs=0.01)


def test_a_layout_beyond_nyquist_is_a_clear_error():
    with pytest.raises(ValueError, match=r"above the Nyquist frequency 8000 Hz.*than the 513 bins.*drop the edges"):
        band_bins(replace(COURSE, band_edges_hz=V7_VOCALS_EDGES_HZ))


@pytest.mark.parametrize("edges, message", [
    ((100, 1000, 500), r"increasing.*500 Hz after 1000 Hz.*sort"),
    ((100, 101, 2000), r"100-101 Hz gets 0 bins.*at least 1.*merge"),
    ((0, 1000), r"above 0 Hz.*boundaries between bands"),
    ((1000, 8000), r"Nyquist.*drop the edges"),
])
def test_bad_layouts_say_what_was_expected_and_how_to_fix(edges, message):
    with pytest.raises(ValueError, match=message):
        band_bins(replace(COURSE, band_edges_hz=edges))
    with pytest.raises(ValueError, match=message):
        BandSplit(replace(COURSE, band_edges_hz=edges), verbose=False)


def test_widths_that_miss_bins_are_a_clear_error():
    check_band_widths([256, 257], 1024)
    with pytest.raises(ValueError, match=r"covers 512 bins.*expected.*513.*band_bins"):
        check_band_widths([256, 256], 1024)


def test_bad_configs_are_clear_errors():
    with pytest.raises(ValueError, match=r"tuple of names.*\('vocals',\)"):
        BandSplitConfig(sources="vocals")
    with pytest.raises(ValueError, match=r"'blstm' \(BSRNN\) or 'roformer'"):
        BandSplit(replace(TINY, sequence_model="lstm"), verbose=False)
    with pytest.raises(ValueError, match=r"channels must be 1 \(mono\) or 2"):
        BandSplit(replace(TINY, channels=3), verbose=False)
    assert BandSplitConfig(sources=["a", "b"], band_edges_hz=[1000]).sources == ("a", "b")


# ---- clear errors inside the model


def test_a_spectrogram_with_the_wrong_bin_count_is_an_error_not_a_crop():
    model = BandSplit(TINY, verbose=False)
    X = model.spectrogram(noise(2, 1, 2000))
    assert X.shape[-2] == 129
    with pytest.raises(ValueError, match=r"covers 129 bins.*has 128.*512-bin crop"):
        model.raw_masks(X[..., :128, :])
    masks = model.complex_masks(model.raw_masks(X))
    with pytest.raises(ValueError, match=r"covers 129 bins.*has 130"):
        model.apply_masks(masks, torch.cat([X, X[..., :1, :]], dim=-2))
    with pytest.raises(ValueError, match=r"covers 513 bins"):  # a model built for another n_fft
        BandSplit(replace(TINY, n_fft=1024, hop=256), verbose=False).raw_masks(X)


def test_a_mixture_of_the_wrong_layout_is_a_clear_error():
    model = BandSplit(TINY, verbose=False)
    with pytest.raises(ValueError, match=r"unsqueeze"):
        model(noise(2, 2000))
    with pytest.raises(ValueError, match=r"1 channel.*has 2.*channels=2"):
        model(noise(2, 2, 2000))


# ---- sizes from the papers


def build_on_meta(config):
    with torch.device("meta"):  # parameters without memory: just count them
        return BandSplit(config, verbose=False)


def test_bsrnn_size_matches_the_replication_study():
    # Magron, Serizel & Douwes' BSRNN replication (github.com/magronp/bsrnn, docs/analysis.md) reports
    # 8.0M parameters for its small vocals model: N 64, 8 layers, BLSTM 2N, the authors' mask MLPs.
    small = replace(PAPER_BSRNN_VOCALS, N=64, L=8, H=128)
    assert build_on_meta(small).num_parameters() == pytest.approx(8.0e6, rel=0.01)
    # the paper's configuration (N 128, 12 layers): 36.4M with the same code, counted here
    # (the BSRNN paper gives no count we could check; this pins the formula)
    assert build_on_meta(PAPER_BSRNN_VOCALS).num_parameters() == pytest.approx(36.4e6, rel=0.005)


def test_bs_roformer_size_matches_the_paper():
    # Lu et al. (2024): "72.2M" parameters for BS-RoFormer with L = 6
    model = build_on_meta(PAPER_BS_ROFORMER)
    assert model.num_parameters() == pytest.approx(72.2e6, rel=0.005)
    counts = model.parameter_counts()
    assert counts["total"] == counts["band split"] + counts["band-sequence layers"] + counts["mask estimation"]


# ---- precision


@pytest.mark.parametrize("sequence_model", ["blstm", "roformer"])
def test_bf16_autocast_forward_is_finite_and_close_to_float32(sequence_model):
    model = BandSplit(replace(TINY, channels=2, sources=("a", "b"), sequence_model=sequence_model), verbose=False)
    mixture = noise(2, 2, 4000)
    reference = model(mixture)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(mixture)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert (out - reference).norm() / reference.norm() < 0.1


def test_silence_gives_finite_output_and_gradients():
    model = BandSplit(TINY, verbose=False)
    silent = torch.zeros(2, 1, 2000)
    out = model(silent)
    assert torch.isfinite(out).all()
    bandsplit_loss(out, torch.zeros_like(out), resolutions=((256, 64, 256),)).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


# ---- the mask-layout plumbing


def ideal_raw_masks(model, mixture, sources):
    """The ideal complex masks S / X, laid out as the docstring of raw_masks says:
    (batch, sources, T, F * channels * 2), each frame ordered (bin, channel, real/imaginary)."""
    X = model.spectrogram(mixture)
    S = model.spectrogram(sources.flatten(0, 1)).view(*sources.shape[:3], *X.shape[-2:])
    M = S / X[:, None]  # (batch, sources, channels, F, T)
    return X, torch.view_as_real(M.permute(0, 1, 4, 3, 2)).flatten(3)


def test_ideal_complex_masks_reconstruct_the_sources_through_the_model_path():
    model = BandSplit(replace(TINY, channels=2, sources=("a", "b")), verbose=False)
    sources = noise(2, 2, 2, 3000)
    mixture = sources.sum(1)
    X, raw = ideal_raw_masks(model, mixture, sources)
    estimate = model.waveforms(model.apply_masks(model.complex_masks(raw), X), length=3000)
    assert estimate.shape == sources.shape
    assert si_sdr(estimate.double(), sources.double()).min() > 100


def test_a_wrong_mask_layout_fails_the_plumbing_check():
    # real parts first, then imaginary parts: the classic layout bug the check must catch
    model = BandSplit(replace(TINY, sources=("a", "b")), verbose=False)
    sources = noise(1, 2, 1, 3000)
    X, raw = ideal_raw_masks(model, sources.sum(1), sources)
    pairs = raw.unflatten(-1, (-1, 2))
    wrong = torch.cat([pairs[..., 0], pairs[..., 1]], dim=-1)
    estimate = model.waveforms(model.apply_masks(model.complex_masks(wrong), X), length=3000)
    assert si_sdr(estimate.double(), sources.double()).max() < 20


# ---- training


@pytest.mark.parametrize("sequence_model", ["blstm", "roformer"])
def test_a_few_adam_steps_reduce_the_loss_on_a_fixed_batch(sequence_model):
    torch.manual_seed(0)
    model = BandSplit(replace(TINY, sequence_model=sequence_model), verbose=False)
    t = torch.arange(4000) / 8000
    vocals = (0.5 * torch.sin(2 * torch.pi * 440 * t)).expand(2, 1, 1, -1)
    mixture = vocals[:, 0] + 0.3 * noise(2, 1, 4000)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(25):
        loss = bandsplit_loss(model(mixture), vocals, resolutions=((256, 64, 256), (128, 32, 128)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]
