"""Model inputs and outputs between host and device: reused, pinned, non-blocking.

:class:`BatchStager` copies a block's windows into a reused host buffer (no new batch array per
call). On CUDA the buffers are page-locked (pinned) and used in turn, and the copy to the device
is ``non_blocking``: it overlaps the model's work on the previous batch and the host's work
beside it; an event recorded after each copy says when its buffer may be filled again.

:func:`forward` gives a segmentation model's class probabilities of a batch already on the
device; without test-time augmentation it skips the division by one (a full copy of the
batch).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from geovision.inference.predict import dihedral


class BatchStager:
    """Batches of windows from a block's normalized pixels, on the model's device."""

    def __init__(self, batch_size: int, bands: int, window: int,
                 device: str | torch.device = "cpu") -> None:
        """Allocate the host buffers: one on a CPU, two pinned ones on CUDA."""
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        shape = (batch_size, bands, window, window)
        n = 2 if self.cuda else 1
        self._host = [torch.empty(shape, dtype=torch.float32, pin_memory=self.cuda)
                      for _ in range(n)]
        self._ready: list[torch.cuda.Event | None] = [None] * n
        self._turn = 0
        self.window = window

    def batches(self, pixels: np.ndarray, region_origin: tuple[int, int],
                windows: Sequence[tuple[int, int]],
                ) -> Iterator[tuple[list[tuple[int, int]], torch.Tensor]]:
        """Yield (origins, ``(n, bands, window, window)`` tensor on the device) per batch.

        Args:
            pixels: the block's normalized pixels ``(bands, rows, cols)``.
            region_origin: scene (row, col) of ``pixels[:, 0, 0]``.
            windows: window origins (scene pixels), in order.

        The tensor yielded is valid until the next one is asked for (its buffer is reused).
        """
        w, size = self.window, self._host[0].shape[0]
        r0, c0 = region_origin
        for i in range(0, len(windows), size):
            chunk = list(windows[i:i + size])
            k = self._turn
            self._turn = (self._turn + 1) % len(self._host)
            ready = self._ready[k]
            if ready is not None:
                ready.synchronize()  # the copy that last read this buffer has finished
            host = self._host[k][:len(chunk)]
            for j, (r, c) in enumerate(chunk):  # torch's copy runs on torch's threads
                host[j].copy_(torch.from_numpy(pixels[:, r - r0:r - r0 + w, c - c0:c - c0 + w]))
            if self.cuda:
                x = host.to(self.device, non_blocking=True)
                event = torch.cuda.Event()
                event.record()
                self._ready[k] = event
            else:
                x = host
            yield chunk, x


@torch.inference_mode()
def forward(model: torch.nn.Module, x: torch.Tensor, tta: bool = False) -> torch.Tensor:
    """Class probabilities ``(N, K, H, W)`` of a batch on the model's device.

    The softmax of each transform, inverted, summed in order, divided by their count;
    without test-time augmentation the division by one is skipped, which changes no bit.
    """
    transforms = dihedral(tta)
    probs = None
    for fwd, inv in transforms:
        p = inv(torch.softmax(model(fwd(x)).float(), dim=1))
        probs = p if probs is None else probs + p
    assert probs is not None
    return probs / len(transforms) if len(transforms) > 1 else probs
