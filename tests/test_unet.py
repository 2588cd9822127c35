"""The U-Net of Jansson et al. (2017): shapes, errors, skip connections, and that it can learn."""

import pytest
import torch

from tpsep.models.unet import COURSE, PAPER, UNet, UNetConfig

torch.set_num_threads(1)
SMALL = UNetConfig(depth=3, channels=4, max_channels=16)


def test_output_is_a_mask_of_the_input_shape():
    torch.manual_seed(0)
    model = UNet(SMALL, verbose=False).eval()
    x = torch.rand(2, 64, 32)
    with torch.no_grad():
        mask = model(x)
    assert mask.shape == x.shape
    assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0


def test_paper_config_shapes_and_parameter_count():
    widths = PAPER.level_channels()
    assert widths == [16, 32, 64, 128, 256, 512]
    # counted by hand: Conv2d / ConvTranspose2d weights + biases, BatchNorm scale + shift
    k = 25
    expected, c_in = 0, 1
    for w in widths:  # encoder
        expected += c_in * w * k + w + 2 * w
        c_in = w
    for j, level in enumerate(reversed(range(6))):  # decoder
        c_in = widths[level] * (1 if j == 0 else 2)
        c_out = 1 if level == 0 else widths[level - 1]
        expected += c_in * c_out * k + c_out + (0 if level == 0 else 2 * c_out)
    model = UNet(PAPER, verbose=False).eval()
    assert model.num_parameters() == expected
    with torch.no_grad():
        assert model(torch.rand(1, 512, 128)).shape == (1, 512, 128)


def test_prints_parameter_count(capsys):
    model = UNet(SMALL)
    assert f"{model.num_parameters():,} parameters" in capsys.readouterr().out


def test_course_default_is_smaller_than_the_paper():
    assert UNet(COURSE, verbose=False).num_parameters() < UNet(PAPER, verbose=False).num_parameters()


@pytest.mark.parametrize("shape, axis", [((1, 513, 128), "freq"), ((1, 512, 130), "frames"), ((1, 60, 32), "freq")])
def test_clear_error_when_a_size_cannot_be_halved(shape, axis):
    model = UNet(UNetConfig(depth=6), verbose=False)
    with pytest.raises(ValueError, match=f"{axis} must be a multiple of 64; got {shape[1 if axis == 'freq' else 2]}"):
        model(torch.rand(*shape))


def test_513_bins_error_points_to_crop_bins():
    with pytest.raises(ValueError, match="crop_bins"):
        UNet(COURSE, verbose=False)(torch.rand(1, 513, 128))


def test_wrong_rank_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(batch, freq, frames\)"):
        UNet(SMALL, verbose=False)(torch.rand(64, 32))


def test_decoder_concatenates_the_skips():
    model = UNet(SMALL, verbose=False)
    widths = SMALL.level_channels()
    assert [b.conv.in_channels for b in model.decoder] == [widths[2], 2 * widths[1], 2 * widths[0]]
    assert model.decoder[-1].conv.out_channels == 1
    # with the skips, a fine (1-frame) detail of the input reaches the output through the
    # first encoder level: perturbing one input bin changes the mask around that bin
    torch.manual_seed(0)
    model.eval()
    x = torch.rand(1, 64, 32)
    bumped = x.clone()
    bumped[0, 30, 15] += 5.0
    with torch.no_grad():
        change = (model(bumped) - model(x)).abs()[0]
    assert float(change[28:33, 13:18].max()) > 0


def test_skip_is_used_in_forward():
    """Zeroing the skip path's encoder level-0 output must change the mask (it would not without skips)."""
    torch.manual_seed(0)
    model = UNet(SMALL, verbose=False).eval()
    x = torch.rand(2, 64, 32)
    with torch.no_grad():
        reference = model(x)
        original = model.decoder[-1].forward

        def without_skip(h):  # the last decoder block sees [decoder output, encoder level-0 skip]
            h = h.clone()
            h[:, h.shape[1] // 2:] = 0
            return original(h)

        model.decoder[-1].forward = without_skip
        assert not torch.allclose(model(x), reference)


def test_mask_bias_sets_the_initial_mask():
    model = UNet(UNetConfig(depth=3, channels=4, max_channels=16, mask_bias=-0.4), verbose=False).eval()
    torch.nn.init.zeros_(model.decoder[-1].conv.weight)
    with torch.no_grad():
        mask = model(torch.rand(1, 64, 32))
    assert torch.allclose(mask, torch.sigmoid(torch.tensor(-0.4)).expand_as(mask))


def test_dropout_only_in_training_and_only_first_three_decoder_levels():
    model = UNet(UNetConfig(depth=4, channels=4, max_channels=16), verbose=False)
    drops = [isinstance(b.drop, torch.nn.Dropout) for b in model.decoder[:-1]]
    assert drops == [True, True, True]
    x = torch.rand(1, 64, 32)
    model.train()
    assert not torch.allclose(model(x), model(x))
    model.eval()
    assert torch.allclose(model(x), model(x))


def test_it_can_overfit_one_batch():
    torch.manual_seed(0)
    model = UNet(UNetConfig(depth=3, channels=4, max_channels=16, dropout=0.0), verbose=False)
    x = torch.rand(4, 64, 32)
    y = x * (x > 0.5)  # keep the loud bins: a mask the network can compute from its input
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        loss = (model(x) * x - y).abs().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


# ---- the checks of notebook 03 reject the classic mistakes (tpsep/exercises/nb03.py) ----

def _status(capsys, name, attempt):
    from tpsep.exercises import check
    check(name, attempt, seed=0)
    return capsys.readouterr().out


def test_encoder_block_check_accepts_a_sequential_and_rejects_the_default_leaky_slope(capsys):
    nn = torch.nn
    right = lambda c_in, c_out: nn.Sequential(nn.Conv2d(c_in, c_out, 5, 2, 2), nn.BatchNorm2d(c_out),
                                              nn.LeakyReLU(0.2))
    default_slope = lambda c_in, c_out: nn.Sequential(nn.Conv2d(c_in, c_out, 5, 2, 2), nn.BatchNorm2d(c_out),
                                                      nn.LeakyReLU())
    no_padding = lambda c_in, c_out: nn.Sequential(nn.Conv2d(c_in, c_out, 5, 2), nn.BatchNorm2d(c_out),
                                                   nn.LeakyReLU(0.2))
    assert _status(capsys, "03.encoder_block", right).startswith("✓")
    assert _status(capsys, "03.encoder_block", default_slope).startswith("✗")
    assert "expected shape" in _status(capsys, "03.encoder_block", no_padding)


def test_decoder_block_check_rejects_a_missing_output_padding_and_dropout_before_the_norm(capsys):
    nn = torch.nn

    def block(c_in, c_out, dropout=0.0, output_padding=1, dropout_first=False):
        conv = nn.ConvTranspose2d(c_in, c_out, 5, 2, 2, output_padding=output_padding)
        drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        layers = [conv, drop, nn.BatchNorm2d(c_out), nn.ReLU()] if dropout_first else \
                 [conv, nn.BatchNorm2d(c_out), nn.ReLU(), drop]
        return nn.Sequential(*layers)

    assert _status(capsys, "03.decoder_block", block).startswith("✓")
    assert "output_padding" in _status(capsys, "03.decoder_block",
                                       lambda c_in, c_out, dropout=0.0: block(c_in, c_out, dropout, 0))
    assert "train mode" in _status(capsys, "03.decoder_block",
                                   lambda c_in, c_out, dropout=0.0: block(c_in, c_out, dropout, dropout_first=True))


def test_loss_check_asks_for_the_shape_guard(capsys):
    assert "ValueError" in _status(capsys, "03.l1_mask_loss", lambda m, x, y: (m * x - y).abs().mean())


def test_fixed_batch_check_rejects_the_broken_domains_and_the_wrong_targets(capsys):
    from tpsep.spectral import crop_bins

    def log_input_raw_target(mixture, vocals):
        inputs = torch.log1p(mixture) / torch.log1p(mixture.amax(dim=(-2, -1), keepdim=True))
        return crop_bins(inputs), crop_bins(vocals)

    assert "check_domains" in _status(capsys, "03.fixed_batch", log_input_raw_target)
    assert "not the vocals" in _status(capsys, "03.fixed_batch", lambda m, v: (crop_bins(m), crop_bins(m)))
    assert "512 bins" in _status(capsys, "03.fixed_batch", lambda m, v: (m, v))
