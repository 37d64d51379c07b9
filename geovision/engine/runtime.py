"""Device, mixed precision and DistributedDataParallel set-up."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from geovision.device import resolve_device
from geovision.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    """Where and how a process trains.

    Attributes:
        device: the torch device of this process.
        amp_dtype: autocast dtype (bfloat16/float16) or None for full precision.
        rank: this process's rank (0 when not distributed).
        world: number of processes.
        local_rank: rank on this machine.
    """

    device: torch.device
    amp_dtype: torch.dtype | None
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """Launched by torchrun with several processes."""
        return self.world > 1

    @property
    def main(self) -> bool:
        """The process that writes files."""
        return self.rank == 0

    @property
    def use_scaler(self) -> bool:
        """fp16 needs a gradient scaler; bf16 and fp32 do not."""
        return self.amp_dtype == torch.float16

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """Autocast context of this runtime (a no-op in full precision)."""
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: fp32).

    ``auto`` is bf16 on CUDA devices that support it, fp16 on older ones, fp32 elsewhere.
    ``bf16`` also runs on a CPU (``torch.autocast("cpu", torch.bfloat16)``): slower than fp32
    on most CPUs, but the code path of a bf16 GPU run, checked without a GPU.

    Raises:
        ConfigError: fp16 (or bf16 on another device than CUDA or CPU) asked for elsewhere.
    """
    if precision == "fp32":
        return None
    if device.type != "cuda":
        if precision == "auto":
            return None
        if precision == "bf16" and device.type == "cpu":
            return torch.bfloat16
        raise ConfigError(f"train.precision: {precision} needs a CUDA device; use "
                          f"train.precision=fp32 or auto on {device.type}"
                          + (" (or bf16)" if device.type == "cpu" else ""))
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if precision == "bf16" else torch.float16


def setup(device: str, precision: str) -> Runtime:
    """Set up this process: join the torchrun process group when there is one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, option="train.device", local_rank=local_rank,
                         error=ConfigError)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend=backend)
        log.info("DDP: rank %d of %d on %s (%s)", rank, world, dev, backend)
    return Runtime(device=dev, amp_dtype=resolve_precision(precision, dev), rank=rank,
                   world=world, local_rank=local_rank)


def teardown(rt: Runtime) -> None:
    """Leave the process group."""
    if rt.distributed and dist.is_initialized():
        dist.destroy_process_group()


def all_mean(value: float, rt: Runtime) -> float:
    """Average of a float over processes."""
    if not rt.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=rt.device)
    dist.all_reduce(t)
    return float(t.item()) / rt.world


@contextlib.contextmanager
def maybe_no_sync(model: torch.nn.Module, skip: bool) -> Iterator[None]:
    """DDP's ``no_sync`` while accumulating gradients; a no-op otherwise."""
    if skip and hasattr(model, "no_sync"):
        with model.no_sync():  # type: ignore[operator]
            yield
    else:
        yield
