"""What to train each model on, and the one table of models.

A *recipe* says which data a model learns from and with which loss: it takes the
separator (built from its config) and the data settings, and returns the module to
train, the loss function and the loaders that :func:`tpsep.train.fit` needs.

:data:`MODELS` is the only place where a model name (``tpsep train unet``) meets its
config, its separator, its recipe and the part of it that trains. Nothing registers
itself anywhere: to add a model, write its file in ``tpsep/models/``, a recipe here,
and one line in the table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
from torch.utils.data import DataLoader

from tpsep import data
from tpsep.data.real import resolve_task
from tpsep.losses import bandsplit_loss, l1_mask_loss, pit_si_snr_loss
from tpsep.models.bandsplit import BandSplit, BandSplitConfig
from tpsep.models.convtasnet import ConvTasNet, ConvTasNetConfig, STFTMaskConfig, STFTMaskNet
from tpsep.models.gridnet import GridNetConfig, TFGridNet
from tpsep.models.unet import UNetConfig, UNetSeparator


@dataclass
class DataSettings:
    """How a recipe feeds its model; ``tpsep train`` makes one flag of each (help = the metadata)."""

    dataset: str | None = field(default=None, metadata={
        "help": "music | speech (the embedded sets) | a path to real data; default: the model's own"})
    task: str | None = field(default=None, metadata={
        "help": "speech models: separate (two voices) | separate_noisy (two voices in noise, C=3) | "
                "enhance (one voice in noise, one output: --option C=1); default: separate"})
    batch_size: int = field(default=8, metadata={"help": "examples per batch"})
    num_workers: int = field(default=0, metadata={"help": "DataLoader worker processes"})
    seconds: float = field(default=2.0, metadata={
        "help": "length of the random training chunks of the waveform models, in seconds"})
    remix: bool = field(default=False, metadata={
        "help": "waveform models: take each source of a chunk from a different random track"})
    patches_per_epoch: int | None = field(default=None, metadata={
        "help": "U-Net: random 128-frame patches per epoch; None: as many as fit the tracks end to end"})

    def __post_init__(self):
        for name in ("batch_size", "seconds"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers!r}")
        if self.patches_per_epoch is not None and self.patches_per_epoch < 1:
            raise ValueError(f"patches_per_epoch must be >= 1 (or None), got {self.patches_per_epoch!r}")
        if self.task is not None:
            self.task = resolve_task(self.task)   # LibriMix's names (enh_single, ...) become ours


def _no_task(settings: DataSettings, model: str) -> None:
    """The music models have no task to choose: say so rather than ignore ``--task``."""
    if settings.task is not None:
        raise ValueError(f"--task chooses what the speech models learn; the {model} separates music stems "
                         f"(drop --task {settings.task})")


class Recipe(NamedTuple):
    model: torch.nn.Module          # what fit() trains (the separator itself, or its trained part)
    loss_fn: Callable               # loss_fn(model, batch) -> scalar tensor
    train_loader: DataLoader
    valid_loader: DataLoader | None
    dataset: str                    # the dataset it reads, with its options ("speech?task=enhance"),
                                    # stored in the checkpoints: tpsep evaluate loads the same data


def unet_recipe(separator: UNetSeparator, settings: DataSettings, seed: int = 0) -> Recipe:
    """The U-Net learns on 512 x 128 magnitude patches at 8192 Hz, with the L1 loss on
    the masked mixture (Jansson et al. 2017)."""
    c = separator.config
    _no_task(settings, "U-Net")
    dataset = settings.dataset or "music"
    patch_options = dict(target=c.target, rate=c.rate, n_fft=c.n_fft, hop=c.hop, bins=c.n_fft // 2,
                         frames=c.patch_frames)
    train_set = data.SpectrogramPatchDataset(data.load_dataset(dataset, split="train"), **patch_options,
                                             patches_per_epoch=settings.patches_per_epoch, seed=seed)
    valid_set = data.SpectrogramPatchDataset(data.load_dataset(dataset, split="valid"), **patch_options,
                                             random=False)

    def loss_fn(unet, batch):
        mixture_mag, target_mag = batch             # (batch, 512, 128) each, raw magnitudes
        return l1_mask_loss(unet(mixture_mag), mixture_mag, target_mag)

    return Recipe(separator.unet, loss_fn, *_loaders(train_set, valid_set, settings), dataset)


def pit_recipe(separator: torch.nn.Module, settings: DataSettings, seed: int = 0) -> Recipe:
    """Conv-TasNet, the STFT-mask baseline and TF-GridNet learn on random chunks of the speech mixtures,
    with minus the SI-SNR under the best permutation of the outputs (PIT).

    With ``settings.task="enhance"`` they learn speech enhancement instead: one output
    (``config.C == 1``), trained against the clean voice alone (the source ``speech``)
    with minus its SI-SNR. The noise is a target of no output: it is whatever the model
    leaves out of the mixture.
    """
    dataset = settings.dataset or "speech"
    options = {} if settings.task in (None, "separate") else {"task": settings.task}
    train_tracks = data.load_dataset(dataset, split="train", **options)
    names = list(train_tracks[0].source_names)
    # the task may also come with the dataset's name, as a checkpoint records it ("speech?task=enhance")
    enhance = settings.task == "enhance" or train_tracks[0].meta.get("task") == "enhance"
    targets = 1 if enhance else len(names)   # the voice alone, or every source
    if separator.config.C != targets:
        what = (f"the task is to enhance one voice: {dataset!r} has the target 'speech' (and the noise)"
                if enhance else f"{dataset!r} has {targets} sources {names}")
        raise ValueError(f"{type(separator).__name__} has C={separator.config.C} outputs, but {what}; "
                         f"set --option C={targets}")
    if train_tracks[0].rate != separator.config.rate:
        raise ValueError(f"{dataset!r} is at {train_tracks[0].rate} Hz, the model at {separator.config.rate} Hz; "
                         f"set --option rate={train_tracks[0].rate}")
    # the noise stays in the chunks even when it is no target: with --remix, the mixture is the sum
    # of the chunk's sources, and a chunk without its noise would be clean speech
    train_set = data.ChunkDataset(train_tracks, settings.seconds, remix=settings.remix, seed=seed)
    valid_set = data.ChunkDataset(data.load_dataset(dataset, split="valid", **options), settings.seconds)

    def loss_fn(model, batch):
        mixture, sources = batch                    # (batch, channels, samples), (batch, sources, channels, samples)
        # enhancement: the first source, the voice, is the one target; with one output there is one
        # permutation, and the PIT loss is minus the SI-SNR of the enhanced voice
        return pit_si_snr_loss(model(mixture), sources[:, :targets])

    return Recipe(separator, loss_fn, *_loaders(train_set, valid_set, settings),
                  data.dataset_with_options(dataset, **options))


def bandsplit_recipe(separator: BandSplit, settings: DataSettings, seed: int = 0) -> Recipe:
    """The band-split model learns on random chunks of the music stems, full band at its own rate,
    with BSRNN's loss: waveform L1 + L1 on the real and imaginary parts of the STFT at the model's
    own resolution (Luo & Yu 2023). Chunks where a target is digital silence are drawn again."""
    c = separator.config
    _no_task(settings, "band-split model")
    dataset = settings.dataset or "music"
    train_tracks = data.load_dataset(dataset, split="train")
    first = train_tracks[0]
    missing = [s for s in c.sources if s not in first.source_names and s != "accompaniment"]
    if missing:
        raise ValueError(f"{dataset!r} has no source(s) {missing}; it has {list(first.source_names)}; "
                         f"set --option \"sources={tuple(first.source_names)}\" (or a subset)")
    if first.channels != c.channels:
        raise ValueError(f"{dataset!r} has {first.channels} channel(s), the model {c.channels}; "
                         f"set --option channels={first.channels}")
    chunks = dict(rate=c.rate, sources=c.sources)
    train_set = data.ChunkDataset(train_tracks, settings.seconds, remix=settings.remix, seed=seed, **chunks)
    valid_set = data.ChunkDataset(data.load_dataset(dataset, split="valid"), settings.seconds, **chunks)
    own_resolution = ((c.n_fft, c.hop, c.n_fft),)

    def loss_fn(model, batch):
        mixture, targets = batch                    # (batch, channels, samples), (batch, sources, channels, samples)
        return bandsplit_loss(model(mixture), targets, resolutions=own_resolution)

    return Recipe(separator, loss_fn, *_loaders(train_set, valid_set, settings), dataset)


def _loaders(train_set, valid_set, settings: DataSettings):
    train = DataLoader(train_set, batch_size=settings.batch_size, shuffle=True, drop_last=True,
                       num_workers=settings.num_workers)
    valid = DataLoader(valid_set, batch_size=settings.batch_size, num_workers=settings.num_workers)
    return train, valid


@dataclass(frozen=True)
class ModelEntry:
    config: type                    # the config dataclass (the paper's notation, front end included)
    separator: Callable             # separator(config, verbose=...) -> the module used by separate/evaluate
    recipe: Callable                # recipe(separator, DataSettings, seed) -> Recipe
    trained: str = ""               # the submodule that trains and whose weights a checkpoint holds ("" = all)
    description: str = ""


MODELS: dict[str, ModelEntry] = {
    "unet": ModelEntry(UNetConfig, UNetSeparator, unet_recipe, trained="unet",
                       description="the singing-voice U-Net of Jansson et al. 2017 (notebooks 03-04)"),
    "convtasnet": ModelEntry(ConvTasNetConfig, ConvTasNet, pit_recipe,
                             description="Conv-TasNet, Luo & Mesgarani 2019 (notebook 05)"),
    "stft_mask": ModelEntry(STFTMaskConfig, STFTMaskNet, pit_recipe,
                            description="the STFT-mask BLSTM baseline of notebook 05"),
    "bandsplit": ModelEntry(BandSplitConfig, BandSplit, bandsplit_recipe,
                            description="band-split RNN / RoFormer, Luo & Yu 2023, Lu et al. 2024 (notebook 06)"),
    "gridnet": ModelEntry(GridNetConfig, TFGridNet, pit_recipe,
                          description="TF-GridNet, Wang et al. 2023 (notebook 07)"),
}
