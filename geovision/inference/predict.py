"""Running a bundle's model on batches of windows, with a per-process model cache.

Blocks running on Dask workers call :func:`cached_bundle`, so each worker process loads a
model once, not once per block.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import torch

from geovision.errors import InputError
from geovision.inference.tasks import for_task
from geovision.models.bundle import Bundle, load_bundle


@functools.lru_cache(maxsize=4)
def _load(path: str, stamp: tuple[int, int], device: str) -> Bundle:
    bundle = load_bundle(path, device=device)
    for_inference(bundle.model, device)
    return bundle


def for_inference(model: torch.nn.Module, device: str) -> torch.nn.Module:
    """Lay a model's weights out for fast inference on ``device`` (in place).

    On a CPU, a network with 2-D convolutions gets channels-last weights, so that oneDNN runs
    its convolutions, pooling and concatenations on NHWC tensors: on the benchmark U-Net
    that took 28 CPU seconds for a 4096-pixel scene where NCHW took 28 to 40, depending on
    where the allocator happened to place the activations. The outputs are the same up to
    float32 rounding (the sums run in another order).
    """
    if str(device).startswith("cpu") and any(
            isinstance(m, torch.nn.Conv2d) for m in model.modules()):
        model.to(memory_format=torch.channels_last)
    return model


def bundle_loads() -> int:
    """How many times this process has loaded a bundle from disk (the cache's misses).

    On a Dask cluster, ``client.run(bundle_loads)`` shows that each worker loads a model once.
    """
    return _load.cache_info().misses


def cached_bundle(path: str | os.PathLike[str], device: str = "cpu") -> Bundle:
    """The bundle at ``path`` on ``device``, loaded once per process (reloaded if it changes).

    Raises:
        InputFileError: the file does not exist.
        ModelFileError: it is not a valid model bundle.
    """
    p = Path(path).resolve()
    try:
        st = p.stat()
        stamp = (st.st_mtime_ns, st.st_size)
    except OSError:
        stamp = (0, 0)
    return _load(str(p), stamp, device)


Transform = Callable[[torch.Tensor], torch.Tensor]


def dihedral(tta: bool = True) -> list[tuple[Transform, Transform]]:
    """Test-time augmentations (forward, inverse) on ``(..., H, W)``: identity, flips, rot90.

    Without ``tta``, the identity alone.
    """
    transforms: list[tuple[Transform, Transform]] = [
        (lambda t: t, lambda t: t),
        (lambda t: t.flip(-1), lambda t: t.flip(-1)),
        (lambda t: t.flip(-2), lambda t: t.flip(-2)),
        (lambda t: t.rot90(1, (-2, -1)), lambda t: t.rot90(-1, (-2, -1))),
    ]
    return transforms if tta else transforms[:1]


def check_window(bundle: Bundle, window: int, bands: int, device: str) -> None:
    """Run the model once on a blank window, so a size it cannot take fails before any work.

    Windows of the model's tile size are not run: the model was trained on them.

    Raises:
        InputError: the model fails on ``window x window`` inputs or returns another size.
    """
    if window == bundle.tile_size:
        return
    task = for_task(bundle.task)
    x = torch.zeros((1, bands, window, window), dtype=torch.float32, device=device)
    try:
        problem = task.output_problem(task.predict(bundle.model, x), window)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or ["error"])[0][:160]
        raise InputError(f"--window {window}: the model cannot run on {window}x{window} "
                         f"windows ({first}); choose a multiple of 32") from None
    if problem is not None:
        raise InputError(f"--window {window}: {problem}; choose a multiple of 32")
