"""Training checkpoints: full state for exact resume, written atomically."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from geovision.errors import InputFileError, ModelFileError
from geovision.models.bundle import save_atomic


def rng_state() -> dict[str, Any]:
    """RNG states of torch (CPU and CUDA), numpy and Python, as tensors and plain values."""
    np_state: Any = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"key": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]),
                  "gauss": float(np_state[4])},
        "python": _py_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state(("MT19937", n["key"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (temporary file, then rename)."""
    save_atomic(state, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``.

    Raises:
        InputFileError: no checkpoint there.
        ModelFileError: the file is not a readable geovision checkpoint.
    """
    if not path.is_file():
        raise InputFileError(f"{path}: no checkpoint to resume from (the run wrote none yet; "
                             "start it again without --resume)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelFileError(f"{path}: not a readable checkpoint ({first})") from None
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise ModelFileError(f"{path}: not a geovision training checkpoint")
    return state
