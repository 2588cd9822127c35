"""Where training runs: the device, the precision, moving batches, and several processes (DDP).

``fit`` (in :mod:`tpsep.train`) calls these by name; a student reads them only when
moving to a GPU (notebook 08) or to several GPUs with ``torchrun``.
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist


def choose_device(preference: str = "auto") -> torch.device:
    """``"auto"``: CUDA if available, then Apple's MPS, then the CPU; otherwise the named device."""
    if preference != "auto":
        try:
            device = torch.device(preference)
        except RuntimeError:
            raise ValueError(f"unknown device {preference!r}; expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {preference!r} asked for, but torch sees no CUDA GPU")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ValueError(f"device {preference!r} asked for, but MPS is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast_context(device: torch.device, precision: str = "auto"):
    """bf16 autocast on CUDA for "auto" (about 2x faster, same range as fp32, so no loss scaling);
    fp32 elsewhere. "bf16" forces autocast (CPU too), "fp32" turns it off. STFTs, complex masks
    and norms stay in float32 inside the models: bf16 has no complex dtype."""
    use_bf16 = precision == "bf16" or (
        precision == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported())  # Ampere and later
    if not use_bf16:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def move_to(batch, device: torch.device):
    """Move every tensor of ``batch`` (tensors, nested tuples/lists/dicts) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {key: move_to(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to(value, device) for value in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(value, device) for value in batch)
    return batch


# ---- several processes (torchrun): DistributedDataParallel ----


@dataclass
class Distributed:
    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    started_here: bool = False   # did fit() create the process group (so it destroys it)?


def setup_distributed(device_preference: str = "auto") -> Distributed:
    """Under ``torchrun`` (WORLD_SIZE > 1): join the process group (NCCL on GPUs, gloo on CPUs)
    and give each process its own GPU. Otherwise: one process, rank 0."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    device = choose_device(device_preference)
    if world_size == 1:
        return Distributed(0, 1, device)
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    started = not dist.is_initialized()
    if started:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), device, started)


def wrap_distributed(model, ddp: Distributed):
    """DDP averages the gradients of all processes during backward; one process: the model itself.

    ``find_unused_parameters``: some parameters may take no part in the loss (Conv-TasNet's last
    block computes a residual that nothing reads), and DDP would otherwise stop at the second
    step waiting for their gradients. The price is one walk over the autograd graph per step."""
    if ddp.world_size == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(model, device_ids=[ddp.device.index] if ddp.device.type == "cuda" else None,
                                   find_unused_parameters=True)


def sync_gradients(net, sync: bool):
    """With DDP and gradient accumulation, only the last micro-batch needs the all-reduce."""
    if sync or not hasattr(net, "no_sync"):
        return nullcontext()
    return net.no_sync()


def agreed_minutes(ddp: Distributed, minutes: float) -> float:
    """With several processes, the longest of their clocks, so that all stop after the same step
    for ``minutes``: each process starts its clock at its own moment, and one that stops alone
    leaves the others waiting for its gradients forever."""
    if ddp.world_size == 1:
        return minutes
    longest = torch.tensor([minutes], dtype=torch.float64, device=ddp.device)
    dist.all_reduce(longest, op=dist.ReduceOp.MAX)
    return longest.item()


def cleanup_distributed(ddp: Distributed) -> None:
    if ddp.started_here:
        dist.barrier()
        dist.destroy_process_group()
