"""Exercises of notebook 03 (the U-Net): its encoder and decoder blocks, its forward pass with
skip connections, the L1 loss on masked magnitudes, and the fix of the "loss does not move" lab."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from tpsep import diagnose, spectral
from tpsep.exercises import CheckFailed, compare, register
from tpsep.losses import l1_mask_loss
from tpsep.models.unet import COURSE, DecoderBlock, EncoderBlock, UNet, UNetConfig


# ---- 03.encoder_block and 03.decoder_block ----------------------------------------------------
#
# The student returns a module; the check copies the weights of tpsep's block into it (so both
# compute with the same numbers), gives BatchNorm random running statistics, and compares the
# two on a random input in eval mode (running statistics, no dropout) and in training mode
# (batch statistics, and dropout drawn from the same seed).


def encoder_block(c_in: int, c_out: int) -> nn.Module:
    """Reference: one encoder level of the course U-Net, ``(batch, c_in, F, T) -> (batch, c_out, F/2, T/2)``."""
    return EncoderBlock(c_in, c_out, COURSE)


def decoder_block(c_in: int, c_out: int, dropout: float = 0.0) -> nn.Module:
    """Reference: one (not the last) decoder level, ``(batch, c_in, F, T) -> (batch, c_out, 2F, 2T)``."""
    return DecoderBlock(c_in, c_out, COURSE, dropout)


def _only(block: nn.Module, kind: type, what: str) -> nn.Module:
    found = [m for m in block.modules() if type(m) is kind]
    if len(found) != 1:
        raise CheckFailed(f"the block should hold exactly one {kind.__name__} ({what}), found {len(found)}")
    return found[0]


def _copy_weights(attempt: nn.Module, reference: nn.Module, conv_kind: type, rng) -> None:
    """Give ``attempt`` the weights of ``reference`` (and both the same random BatchNorm statistics)."""
    conv, ref_conv = _only(attempt, conv_kind, "the 5x5 convolution"), reference.conv
    if conv.weight.shape != ref_conv.weight.shape:
        raise CheckFailed(f"the {conv_kind.__name__}'s weight has shape {tuple(conv.weight.shape)}, expected "
                          f"{tuple(ref_conv.weight.shape)}: check the channels (in, out) and the 5x5 kernel")
    norm = _only(attempt, nn.BatchNorm2d, "after the convolution")
    if norm.weight is None or norm.running_mean is None:
        raise CheckFailed("the BatchNorm2d needs its learnable scale and shift and its running statistics "
                          "(keep the defaults affine=True, track_running_stats=True)")
    if norm.num_features != ref_conv.out_channels:
        raise CheckFailed(f"BatchNorm2d({norm.num_features}) after a convolution with {ref_conv.out_channels} "
                          "output channels")
    with torch.no_grad():
        if conv.bias is None:  # a convolution without bias before BatchNorm is a fair choice: compare like that
            ref_conv.bias.zero_()
        for param in (reference.norm.weight, reference.norm.bias, reference.norm.running_mean):
            param.copy_(torch.from_numpy(rng.uniform(-1, 1, param.shape)).float())
        running_var = reference.norm.running_var
        running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, running_var.shape)).float())
        conv.weight.copy_(ref_conv.weight)
        if conv.bias is not None:
            conv.bias.copy_(ref_conv.bias)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(norm, name).copy_(getattr(reference.norm, name))


def _block_trial(attempt, reference, rng, decoder: bool) -> None:
    c_in, c_out = int(rng.integers(1, 7)), int(rng.integers(2, 9))
    args = (c_in, c_out) + ((float(rng.choice([0.0, 0.5])),) if decoder else ())
    seed = int(rng.integers(2 ** 31))
    torch.manual_seed(seed)
    expected_block = reference(*args)
    torch.manual_seed(seed)
    block = attempt(*args)
    if not isinstance(block, nn.Module):
        raise CheckFailed(f"expected a torch.nn.Module (e.g. an nn.Sequential), got {type(block).__name__}")
    _copy_weights(block, expected_block, nn.ConvTranspose2d if decoder else nn.Conv2d, rng)
    freq, frames = 2 * int(rng.integers(2, 9)), 2 * int(rng.integers(2, 9))
    x = torch.from_numpy(rng.standard_normal((int(rng.integers(2, 4)), c_in, freq, frames))).float()
    what = (f"decoder_block({c_in}, {c_out}, dropout={args[2]})" if decoder
            else f"encoder_block({c_in}, {c_out})")
    for mode in ("eval", "train"):
        expected_block.train(mode == "train")
        block.train(mode == "train")
        with torch.no_grad():
            torch.manual_seed(seed)  # the same dropout draws for both
            expected = expected_block(x)
            torch.manual_seed(seed)
            got = block(x.clone())
        if not isinstance(got, torch.Tensor):
            raise CheckFailed(f"{what} should return a tensor, got {type(got).__name__}")
        if got.shape != expected.shape:
            size = "twice" if decoder else "half"
            raise CheckFailed(f"{what} on {tuple(x.shape)}: expected shape {tuple(expected.shape)} ({size} the "
                              f"frequency and time axes), got {tuple(got.shape)}; check stride, padding"
                              + (" and output_padding" if decoder else ""))
        compare(got, expected, atol=1e-5, rtol=1e-4,
                where=f"{what} in {mode} mode" + (" (BatchNorm on batch statistics, dropout on)"
                                                  if mode == "train" else " (running statistics, no dropout)"))


register("03.encoder_block", reference=encoder_block,
         test=lambda attempt, reference, rng: _block_trial(attempt, reference, rng, decoder=False),
         hint="nn.Sequential(nn.Conv2d(c_in, c_out, 5, stride=2, padding=2), nn.BatchNorm2d(c_out), "
              "nn.LeakyReLU(...)): mind the slope, LeakyReLU's default is not the paper's",
         points=2)
register("03.decoder_block", reference=decoder_block,
         test=lambda attempt, reference, rng: _block_trial(attempt, reference, rng, decoder=True),
         hint="ConvTranspose2d(c_in, c_out, 5, stride=2, padding=2, output_padding=1) -> BatchNorm2d -> ReLU -> "
              "Dropout(dropout) (an nn.Identity when dropout is 0); the dropout comes last",
         points=2)


# ---- 03.unet_forward ------------------------------------------------------------------------


def unet_forward(model: UNet, mixture_mag: torch.Tensor) -> torch.Tensor:
    """Reference: the mask of ``model`` for ``mixture_mag (batch, freq, frames)`` (what ``model(x)`` does)."""
    return model(mixture_mag)


def _random_unet(rng) -> tuple[UNet, torch.Tensor]:
    """A small U-Net with random weights *and* random BatchNorm statistics, in eval mode."""
    depth = int(rng.integers(2, 5))
    config = UNetConfig(depth=depth, channels=int(rng.choice([2, 4])), max_channels=16)
    torch.manual_seed(int(rng.integers(2 ** 31)))
    model = UNet(config, verbose=False)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    model.eval()  # no dropout, BatchNorm uses its running statistics: a deterministic function
    factor = 2 ** depth
    x = torch.rand(int(rng.integers(1, 4)), factor * int(rng.integers(1, 3)), factor * int(rng.integers(1, 3)))
    return model, x


def _test_unet_forward(attempt, reference, rng) -> None:
    model, x = _random_unet(rng)
    with torch.no_grad():
        expected = reference(model, x)
        got = attempt(model, x.clone())
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"expected a torch tensor (the mask), got {type(got).__name__}")
    if got.shape != expected.shape:
        raise CheckFailed(f"wrong shape: the mask should have the input's shape {tuple(x.shape)}, got {tuple(got.shape)}"
                          " (did you add the channel axis with unsqueeze(1) and remove it at the end?)")
    if float(got.min()) < 0 or float(got.max()) > 1:
        raise CheckFailed("the mask has values outside [0, 1]: did you apply the sigmoid at the end?")
    compare(got, expected, atol=1e-5, rtol=1e-4, where=f"mask of a depth-{model.config.depth} U-Net")


register("03.unet_forward", reference=unet_forward, test=_test_unet_forward,
         hint="keep every encoder output in a list; the decoder's first block takes the last one alone, "
              "each later block takes torch.cat([h, skip], dim=1) with the skips in reverse order; sigmoid at the end",
         points=3)


# ---- 03.l1_mask_loss ------------------------------------------------------------------------


def _loss_values(rng, shape):
    mask, mixture, target = (torch.from_numpy(rng.random(shape)).float() for _ in range(3))
    return mask, 3 * mixture, target


def _test_l1_mask_loss(attempt, reference, rng) -> None:
    shape = (int(rng.integers(2, 4)), int(rng.integers(4, 40)), int(rng.integers(4, 20)))
    mask, mixture, target = _loss_values(rng, shape)
    expected = reference(mask, mixture, target)
    got = attempt(mask.clone(), mixture.clone(), target.clone())
    if not isinstance(got, torch.Tensor):
        raise CheckFailed(f"expected a scalar torch tensor (training differentiates it), got {type(got).__name__}")
    compare(got, expected, atol=1e-6, rtol=1e-5, where="the loss")
    # the silent bug: a target with a channel axis, (batch, 1, F, T), broadcasts against (batch, F, T)
    # into a (batch, batch, F, T) difference and gives a number, the wrong one
    try:
        attempt(mask, mixture, target.unsqueeze(1))
    except ValueError:
        pass
    except Exception as error:
        raise CheckFailed(f"a target of shape {tuple(target.unsqueeze(1).shape)} against a mask of shape "
                          f"{tuple(mask.shape)} should raise a ValueError, got {type(error).__name__}: {error}")
    else:
        raise CheckFailed(f"a target of shape {tuple(target.unsqueeze(1).shape)} against a mask of shape "
                          f"{tuple(mask.shape)} gave a loss instead of a ValueError: torch broadcast them")


register("03.l1_mask_loss", reference=l1_mask_loss, test=_test_l1_mask_loss,
         hint="the average over every bin of |mask * X - Y|; before computing it, raise a ValueError "
              "when the three shapes are not equal (torch would broadcast them without a word)",
         points=2)


# ---- 03.fixed_batch: the fix of the debugging lab ----------------------------------------------
#
# The student's batch function turns (mixture, vocals) magnitudes with 513 bins into (inputs,
# targets) for the lab's loss, l1_mask_loss(model(inputs), inputs, targets). It passes when
# tpsep.diagnose.check_domains finds nothing wrong with the batch, the inputs and targets are the
# mixture and the vocals at one common scale (raw, or both normalised alike), and a small fresh
# U-Net memorises the batch (tpsep.diagnose.overfit_one_batch).

CHECK_UNET = UNetConfig(depth=3, channels=4, max_channels=16, dropout=0.0)
CHECK_FRAMES = 16


def fixed_batch(mixture_513: torch.Tensor, vocals_513: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference: raw magnitudes on both sides of the loss, the Nyquist bin dropped (512 bins)."""
    return spectral.crop_bins(mixture_513), spectral.crop_bins(vocals_513)


def lab_loss_fn(model, batch):
    """The lab's loss: the mask multiplies the network's own input."""
    inputs, targets = batch
    return l1_mask_loss(model(inputs), inputs, targets)


def _synthetic_magnitudes(rng) -> tuple[torch.Tensor, torch.Tensor]:
    """(mixture, vocals) magnitudes ``(2, 513, frames)`` at the scale of raw STFT magnitudes.

    Sparse loud "harmonics" for the vocals over a denser accompaniment, summed with random
    phases: the mixture magnitude is |V + A|, so a few vocals bins exceed it, as in real data.
    """
    shape = (2, 513, CHECK_FRAMES)
    gain = 10 ** rng.uniform(0.5, 1.5)
    vocals = gain * rng.exponential(1.0, shape) * (rng.random(shape) < 0.15)
    accompaniment = gain * rng.exponential(0.3, shape)
    mixture = np.abs(vocals + accompaniment * np.exp(2j * np.pi * rng.random(shape)))
    return torch.from_numpy(mixture).float(), torch.from_numpy(vocals).float()


def _common_scale(got: torch.Tensor, expected: torch.Tensor) -> torch.Tensor | None:
    """The per-item factor ``s`` with ``got == s * expected`` (to float precision), or None if there is none."""
    scale = got.sum(dim=(-2, -1), keepdim=True) / expected.sum(dim=(-2, -1), keepdim=True).clamp_min(1e-30)
    tolerance = 1e-4 * (scale * expected).abs().amax(dim=(-2, -1), keepdim=True)
    matches = (got - scale * expected).abs() <= tolerance + 1e-3 * (scale * expected).abs()
    return scale if bool(matches.all()) else None


def _test_fixed_batch(attempt, reference, rng) -> None:
    mixture, vocals = _synthetic_magnitudes(rng)
    batch = attempt(mixture.clone(), vocals.clone())
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2
            and all(isinstance(t, torch.Tensor) for t in batch)):
        raise CheckFailed("fixed_batch should return two tensors: (inputs, targets)")
    inputs, targets = (t.detach().float() for t in batch)
    expected_shape = (2, 512, CHECK_FRAMES)
    if tuple(inputs.shape) != expected_shape or tuple(targets.shape) != expected_shape:
        raise CheckFailed(f"on (2, 513, {CHECK_FRAMES}) magnitudes, expected inputs and targets of shape "
                          f"{expected_shape} (512 bins, the U-Net's), got {tuple(inputs.shape)} and "
                          f"{tuple(targets.shape)}")
    errors = [f for f in diagnose.check_domains(inputs, targets) if f.severity == "error"]
    if errors:
        raise CheckFailed("tpsep.diagnose.check_domains on your batch:\n  " + "\n  ".join(map(str, errors)))
    # like with like: the inputs are the mixture magnitude and the targets the vocals magnitude, both
    # multiplied by the same factor (1 for raw magnitudes, 1/peak for a peak normalisation, ...), so that
    # targets / inputs is the mask |V| / |X| that will multiply the raw mixture at separation time
    mixture_512, vocals_512 = reference(mixture, vocals)
    scale = _common_scale(inputs, mixture_512)
    if scale is not None and not bool((scale > 0).all()):
        raise CheckFailed("the inputs are all zero (or negative): the network needs the mixture magnitude")
    if scale is None:
        raise CheckFailed("the inputs are not the mixture magnitude (up to a gain): a log or another "
                          "non-linear map changes the mask that targets / inputs asks for")
    target_scale = _common_scale(targets, vocals_512)
    if target_scale is None:
        raise CheckFailed("the targets are not the vocals magnitude (up to a gain): the loss should ask "
                          "mask * inputs to become the vocals")
    if not torch.allclose(target_scale, scale, rtol=1e-3):
        raise CheckFailed(f"the inputs are the mixture times {scale.flatten()[0].item():.4g} but the targets the "
                          f"vocals times {target_scale.flatten()[0].item():.4g}: scale both sides alike")
    torch.manual_seed(int(rng.integers(2 ** 31)))
    model = UNet(CHECK_UNET, verbose=False)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny network: one thread is faster than several
    try:
        result = diagnose.overfit_one_batch(model, lab_loss_fn, (inputs, targets),
                                            steps=60, factor=2, lr=1e-2, raise_on_failure=False)
    finally:
        torch.set_num_threads(threads)
    if not result.passed:
        first_line = str(result).splitlines()[0]
        raise CheckFailed(f"a small fresh U-Net could not memorise your batch ({first_line}); "
                          "tpsep.diagnose.overfit_one_batch prints the usual causes")


register("03.fixed_batch", reference=fixed_batch, test=_test_fixed_batch, trials=2,
         hint="the mask multiplies the inputs, so inputs and targets must be the same kind of magnitude "
              "(raw on both sides, or the same normalisation on both); and the U-Net wants 512 bins",
         points=3)
