"""The one place that turns a device name (``--device``, ``train.device``) into a device.

Train, evaluate, infer and export accept the same names with the same meaning: ``auto`` (the
first visible CUDA GPU of this process's local rank, else the CPU), ``cpu``, ``cuda``,
``cuda:N`` and ``mps``. Checking a name needs no torch; resolving it does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from geovision.errors import GeovisionError, InputError

if TYPE_CHECKING:
    import torch

#: Device names (besides ``cuda:N``).
DEVICES = ("auto", "cpu", "cuda", "mps")
_CUDA_N = re.compile(r"cuda:\d+")


def device_problem(name: str) -> str | None:
    """Why ``name`` is not a device name, or None when it is one."""
    text = str(name).strip().lower()
    if text in DEVICES or _CUDA_N.fullmatch(text):
        return None
    return f"'{name}' is not a device; choose one of {', '.join(DEVICES)} or cuda:N"


def resolve_device(name: str, *, option: str = "--device", local_rank: int = 0,
                   error: type[GeovisionError] = InputError) -> torch.device:
    """The torch device that ``name`` stands for here.

    Args:
        name: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        option: the option or config key that gave it, for messages.
        local_rank: this process's rank on the machine (``auto`` and ``cuda`` pick GPU
            ``local_rank`` modulo the GPU count under torchrun).
        error: the error class raised.

    Raises:
        GeovisionError: (``error``) the name is unknown, or the device is not available.
    """
    import torch

    problem = device_problem(name)
    if problem is not None:
        raise error(f"{option}: {problem}")
    text = name.strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    device = torch.device(text)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise error(f"{option}: {name} asked but no CUDA GPU is visible; use cpu")
        index = local_rank if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise error(f"{option}: {name}: only {torch.cuda.device_count()} CUDA device(s) "
                        "here")
        return torch.device("cuda", index)
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise error(f"{option}: {name} asked but MPS is not available; use cpu")
    return device
