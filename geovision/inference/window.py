"""The window infer runs a model on, when ``--window`` is not given.

A segmentation model is fully convolutional: it takes any window that is a multiple of its
tile size, and a larger window means fewer seams where windows meet and less context lost at
window edges. Its default window is therefore the largest multiple of the tile size whose
memory fits ``--window-memory`` (a batch of windows through the model, plus the block's
accumulators), raised to at least :data:`MIN_WINDOW` pixels, and never larger than the
scene needs (its longer side, rounded up to the tile size). Other models (classification,
detection) run at their tile size, the scale they were trained on.

The model's memory per pixel is measured, not guessed: one forward pass over a tile with
hooks that add up every module's output (an upper bound of what inference holds at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from geovision.geo.windows import window_stride
from geovision.models.bundle import Bundle
from geovision.options.infer import InferOptions

#: The smallest default window of a fully convolutional model, in pixels.
MIN_WINDOW = 256
#: Tasks whose models are fully convolutional (per-pixel output of any multiple of the tile).
FULLY_CONVOLUTIONAL = ("segmentation",)


@dataclass(frozen=True)
class WindowChoice:
    """The window of a scene and why.

    Attributes:
        window: side in pixels.
        reason: why, in words (logged and recorded in the run summary).
    """

    window: int
    reason: str


def activation_bytes(bundle: Bundle, device: str) -> float:
    """Bytes of activations per window pixel: every module's output over one tile, summed."""
    model = bundle.model
    t = bundle.tile_size
    total = 0

    def hook(_module: torch.nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel() * output.element_size()

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.zeros((1, len(bundle.bands), t, t), device=device))
    finally:
        for h in handles:
            h.remove()
    return max(total / (t * t), 1.0)


def window_memory(window: int, *, per_pixel: float, classes: int, opts: InferOptions) -> float:
    """Bytes of one batch of windows through the model plus one block's accumulators."""
    stride = window_stride(window, opts.overlap)
    side = window + (opts.block_windows - 1) * stride
    batch = opts.batch_size * window * window * per_pixel
    block = side * side * (classes + 1) * 4  # float32 sums per class and weights
    return batch + block


def choose_window(bundle: Bundle, opts: InferOptions, height: int, width: int, device: str,
                  per_pixel: float | None = None) -> WindowChoice:
    """The window of a ``height x width`` scene (see the module's description).

    Args:
        bundle: the model.
        opts: ``window``, ``window_memory``, ``batch_size``, ``overlap``, ``block_windows``.
        height: the scene's height in pixels.
        width: the scene's width in pixels.
        device: where the model runs (for the measurement of its memory).
        per_pixel: the model's activation bytes per pixel (None: measured).
    """
    t = bundle.tile_size
    if opts.window is not None:
        return WindowChoice(opts.window, "--window")
    if bundle.task not in FULLY_CONVOLUTIONAL:
        return WindowChoice(t, f"the model's tile size ({bundle.task} models run at the "
                               "scale they were trained on)")
    if per_pixel is None:
        per_pixel = activation_bytes(bundle, device)
    budget = opts.window_memory * 2**20
    classes = len(bundle.classes)
    fits = t
    while window_memory(fits + t, per_pixel=per_pixel, classes=classes,
                        opts=opts) <= budget:
        fits += t
    floor = math.ceil(MIN_WINDOW / t) * t
    needed = max(math.ceil(max(height, width) / t) * t, t)
    window = min(max(fits, floor), needed)
    why = (f"fully convolutional model: the largest multiple of its {t} px tile within "
           f"--window-memory {opts.window_memory} MB is {fits} px "
           f"({per_pixel / 1024:.1f} KiB per pixel, batch {opts.batch_size})")
    if window == needed and needed < max(fits, floor):
        why += f"; the scene needs no more than {needed} px"
    elif fits < floor:
        why += f"; raised to the {floor} px minimum"
    return WindowChoice(window, why)
