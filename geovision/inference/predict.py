"""Running a bundle's model on batches of windows, with a per-process model cache.

Blocks running on Dask workers call :func:`cached_bundle`, so each worker process loads a
model once, not once per block.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from geovision.errors import InputError
from geovision.models.bundle import Bundle, load_bundle


@functools.lru_cache(maxsize=4)
def _load(path: str, stamp: tuple[int, int], device: str) -> Bundle:
    return load_bundle(path, device=device)


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


def _dihedral() -> list[tuple[Callable[[torch.Tensor], torch.Tensor],
                              Callable[[torch.Tensor], torch.Tensor]]]:
    """Test-time augmentations (forward, inverse) on ``(..., H, W)``: identity, flips, rot90."""
    return [
        (lambda t: t, lambda t: t),
        (lambda t: t.flip(-1), lambda t: t.flip(-1)),
        (lambda t: t.flip(-2), lambda t: t.flip(-2)),
        (lambda t: t.rot90(1, (-2, -1)), lambda t: t.rot90(-1, (-2, -1))),
    ]


@torch.inference_mode()
def segment(model: torch.nn.Module, batch: np.ndarray, device: str,
            tta: bool = False) -> torch.Tensor:
    """Class probabilities ``(N, K, H, W)`` float32 on ``device``, for ``(N, C, H, W)`` input."""
    x = torch.from_numpy(batch).to(device)
    transforms = _dihedral() if tta else _dihedral()[:1]
    probs = None
    for fwd, inv in transforms:
        p = inv(torch.softmax(model(fwd(x)).float(), dim=1))
        probs = p if probs is None else probs + p
    assert probs is not None
    return probs / len(transforms)


@torch.inference_mode()
def classify(model: torch.nn.Module, batch: np.ndarray, device: str,
             tta: bool = False) -> np.ndarray:
    """Class probabilities ``(N, K)`` float32 for normalized windows ``(N, C, H, W)``."""
    x = torch.from_numpy(batch).to(device)
    transforms = _dihedral() if tta else _dihedral()[:1]
    probs = sum(torch.softmax(model(fwd(x)).float(), dim=1) for fwd, _ in transforms)
    return (probs / len(transforms)).cpu().numpy()  # type: ignore[union-attr]


@torch.inference_mode()
def detect(model: torch.nn.Module, batch: np.ndarray,
           device: str) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Boxes (xyxy, window pixels), scores and labels for each normalized window."""
    images = list(torch.from_numpy(batch).to(device))
    out = []
    for d in model(images):
        out.append((d["boxes"].float().cpu().numpy(), d["scores"].float().cpu().numpy(),
                    d["labels"].cpu().numpy().astype(np.int64)))
    return out


def check_window(bundle: Bundle, window: int, bands: int, device: str) -> None:
    """Run the model once on a blank window, so a size it cannot take fails before any work.

    Raises:
        InputError: the model fails on ``window x window`` inputs or returns another size.
    """
    x = np.zeros((1, bands, window, window), dtype=np.float32)
    try:
        if bundle.task == "segmentation":
            out = segment(bundle.model, x, device)
            if out.shape[-2:] != (window, window):
                raise InputError(f"--window {window}: the model returns {out.shape[-2:]} "
                                 "outputs for this window; choose a multiple of 32")
        elif bundle.task == "classification":
            classify(bundle.model, x, device)
        else:
            detect(bundle.model, x, device)
    except RuntimeError as exc:
        first = (str(exc).strip().splitlines() or ["error"])[0][:160]
        raise InputError(f"--window {window}: the model cannot run on {window}x{window} "
                         f"windows ({first}); choose a multiple of 32") from None
