"""Blending a block's windows in place, in reused buffers, and finishing its pieces.

Each window's softmax is weighted by its blend share (:mod:`geovision.inference.blend`) and
added on the model's device, with little memory traffic:

- a window's 2-D share (the outer product of its row and column shares) is computed once per
  distinct pair of 1-D shares, not once per window: interior windows all share one
  (:class:`ShareCache`);
- each window's probabilities are weighted and added into the accumulator in one
  ``addcmul_``, with no temporary (:meth:`Accumulator.add`);
- accumulators come from a pool and go back to it, so a scene reuses the same few buffers
  instead of allocating (and page-faulting) one per block (:class:`BufferPool`);
- pieces are finished in place on the accumulator (:func:`finish_in_place`: argmax, then
  clamp, scale and round in place, nodata by ``masked_fill_``), the only new arrays being
  the stored ones.

A block finishes the pieces it owns alone; its weighted contribution to each seam it shares
with a neighbour is handed out (:class:`SeamPart`), and :class:`Seams` finishes a seam once
every block covering it has given its contribution, summed in the piece's owner order (so a
seam gets the same bits wherever it is finished: in this process, or in a scene's finishing
task from stored contributions).
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from geovision.formats import CLASS_NODATA, PROB_NODATA, PROB_SCALE
from geovision.inference.blend import axis_shares, axis_weights
from geovision.inference.layout import Block, Piece


class BufferPool:
    """Flat tensors reused across blocks, by device and dtype.

    :meth:`take` hands out a view of the smallest free buffer large enough (allocating one
    when none is), :meth:`give` takes it back. A scene's blocks differ in size only at the
    scene's edges, so a pool settles at one buffer per block held at once. Thread-safe: the
    block tasks of a Dask worker's threads share their process's pool.
    """

    def __init__(self, pin: bool = False) -> None:
        """Create an empty pool; ``pin``: allocate CPU buffers in page-locked memory."""
        self.pin = pin
        self._free: dict[tuple[str, torch.dtype], list[torch.Tensor]] = {}
        self._out: dict[int, torch.Tensor] = {}
        self.allocated = 0  # buffers allocated so far (for tests and figures)
        self._lock = threading.Lock()

    def take(self, shape: Sequence[int], dtype: torch.dtype = torch.float32,
             device: str | torch.device = "cpu", *, zero: bool = True) -> torch.Tensor:
        """A tensor of ``shape`` (zeroed unless ``zero=False``) backed by a pooled buffer."""
        n = math.prod(shape)
        key = (str(torch.device(device)), dtype)
        with self._lock:
            free = self._free.setdefault(key, [])
            fits = [b for b in free if b.numel() >= n]
            buf = min(fits, key=lambda b: b.numel()) if fits else None
            if buf is not None:
                del free[next(i for i, b in enumerate(free) if b is buf)]
            else:
                self.allocated += 1
        if buf is None:
            pin = self.pin and torch.device(device).type == "cpu" and torch.cuda.is_available()
            buf = torch.empty(max(n, 1), dtype=dtype, device=device, pin_memory=pin)
        view = buf[:n].view(*shape)
        with self._lock:
            self._out[id(view)] = buf
        if zero:
            view.zero_()
        return view

    def clear(self) -> None:
        """Let the free buffers go (those handed out come back to the pool as usual)."""
        with self._lock:
            self._free.clear()

    def give(self, tensor: torch.Tensor) -> None:
        """Return a tensor from :meth:`take` to the pool (it must not be used afterwards)."""
        with self._lock:
            buf = self._out.pop(id(tensor))
            self._free.setdefault((str(buf.device), buf.dtype), []).append(buf)


_POOL = BufferPool()
_PINNED_POOL = BufferPool(pin=True)


def process_pool(device: str) -> BufferPool:
    """This process's accumulator pool for a device (host buffers pinned for CUDA)."""
    return _PINNED_POOL if device.startswith("cuda") else _POOL


def axis_share_table(origins: Sequence[int], window: int, stride: int, blend: str,
                     ) -> dict[int, np.ndarray]:
    """1-D shares of every window origin along an axis, from all the windows of the axis.

    Equal, to the bit, to the shares a block computes from its neighbourhood
    around it: a pixel's summed weight adds the same windows in the same order.
    """
    return axis_shares(list(origins), axis_weights(window, window - stride, blend))


class ShareCache:
    """2-D shares of windows on the model's device, one tensor per distinct pair of 1-D shares."""

    def __init__(self, row_origins: Sequence[int], col_origins: Sequence[int], window: int,
                 stride: int, blend: str, device: str | torch.device) -> None:
        """Compute the 1-D shares of both axes and group the origins that share them."""
        self.device = device
        self._row_key, self._rows = self._group(
            axis_share_table(row_origins, window, stride, blend), device)
        self._col_key, self._cols = self._group(
            axis_share_table(col_origins, window, stride, blend), device)
        self._pairs: dict[tuple[int, int], torch.Tensor] = {}

    @staticmethod
    def _group(table: dict[int, np.ndarray], device: str | torch.device,
               ) -> tuple[dict[int, int], list[torch.Tensor]]:
        keys: dict[bytes, int] = {}
        by_origin: dict[int, int] = {}
        tensors: list[torch.Tensor] = []
        for origin, share in table.items():
            raw = share.tobytes()
            if raw not in keys:
                keys[raw] = len(tensors)
                tensors.append(torch.from_numpy(share).to(device))
            by_origin[origin] = keys[raw]
        return by_origin, tensors

    def window(self, row: int, col: int) -> torch.Tensor:
        """The ``(window, window)`` share of the window at origin (row, col)."""
        key = (self._row_key[row], self._col_key[col])
        share = self._pairs.get(key)
        if share is None:
            share = self._pairs[key] = torch.outer(self._rows[key[0]], self._cols[key[1]])
        return share

    @property
    def distinct(self) -> int:
        """How many 2-D shares have been computed."""
        return len(self._pairs)


@functools.lru_cache(maxsize=8)
def share_cache(row_origins: tuple[int, ...], col_origins: tuple[int, ...], window: int,
                stride: int, blend: str, device: str) -> ShareCache:
    """The :class:`ShareCache` of a scene's windows, made once per process."""
    return ShareCache(row_origins, col_origins, window, stride, blend, device)


@dataclass
class Finished:
    """A finished piece: its classes ``(1, rows, cols)`` and stored probabilities."""

    piece: Piece
    classes: np.ndarray
    probs: np.ndarray | None


@dataclass
class SeamPart:
    """A block's weighted contribution to a seam piece, and the seam's validity."""

    piece: Piece
    owner: tuple[int, int]
    total: np.ndarray
    valid: np.ndarray


class Accumulator:
    """Collects one block's window probabilities, weighted, into a pooled buffer."""

    def __init__(self, block: Block, valid: np.ndarray, pieces: Sequence[Piece],
                 num_classes: int, window: int, shares: ShareCache, pool: BufferPool,
                 *, prob_dtype: str = "uint8", probabilities: bool = True) -> None:
        """Take a zeroed accumulator ``(classes, region rows, region cols)`` from ``pool``."""
        self.block, self.valid, self.pieces = block, valid, list(pieces)
        self.window, self.shares, self.pool = window, shares, pool
        self.prob_dtype, self.probabilities = prob_dtype, probabilities
        region = block.region
        self.acc: torch.Tensor | None = pool.take(
            (num_classes, region.height, region.width), torch.float32, shares.device)

    @torch.inference_mode()
    def add(self, origins: Sequence[tuple[int, int]], probs: torch.Tensor) -> None:
        """Add a batch ``(N, classes, window, window)`` of window probabilities, weighted."""
        assert self.acc is not None, "finish() was called already"
        region, w = self.block.region, self.window
        for (r, c), p in zip(origins, probs, strict=True):
            dr, dc = r - region.row, c - region.col
            self.acc[:, dr:dr + w, dc:dc + w].addcmul_(p, self.shares.window(r, c))

    def _slices(self, piece: Piece) -> tuple[slice, slice]:
        region, pw = self.block.region, piece.window
        return (slice(pw.row - region.row, pw.row - region.row + pw.height),
                slice(pw.col - region.col, pw.col - region.col + pw.width))

    @torch.inference_mode()
    def finish(self) -> tuple[list[Finished], list[SeamPart]]:
        """Finish the pieces this block owns alone; hand out its share of the seams.

        The accumulator goes back to the pool: this is the last call.

        Returns:
            (finished pieces, seam contributions), in the order of ``pieces``.
        """
        acc = self.acc
        assert acc is not None, "finish() was called already"
        done, seams = [], []
        for piece in self.pieces:  # seams first: finishing works in place on the buffer
            if piece.is_seam:
                rows, cols = self._slices(piece)
                part = acc[:, rows, cols]
                total = part.cpu().numpy()
                if part.device.type == "cpu":  # a view of the pooled buffer: keep a copy
                    total = total.copy()
                seams.append(SeamPart(piece, self.block.index, total,
                                      self.valid[rows, cols].copy()))
        invalid_all = torch.from_numpy(~self.valid).to(acc.device)
        for piece in self.pieces:
            if piece.is_seam:
                continue
            rows, cols = self._slices(piece)
            classes, probs = finish_in_place(acc[:, rows, cols], invalid_all[rows, cols],
                                             self.prob_dtype, self.probabilities)
            done.append(Finished(piece, classes, probs))
        self.pool.give(acc)
        self.acc = None
        return done, seams


def finish_in_place(probs: torch.Tensor, invalid: torch.Tensor, prob_dtype: str,
                    keep_probs: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Class ids and stored probabilities of blended probabilities (which are clobbered).

    Returns:
        (classes ``(1, rows, cols)`` uint8 with :data:`CLASS_NODATA` where invalid, stored
        probabilities: compact uint8 or float32 with NaN where invalid; None unless
        ``keep_probs``).
    """
    # max(0).indices is argmax(0) (the first of equal maxima), about 5x faster on a CPU
    classes = probs.max(0).indices.to(torch.uint8)
    holes = bool(invalid.any())  # most pieces have none: no pass to fill them
    if holes:
        classes.masked_fill_(invalid, CLASS_NODATA)
    stored = None
    if keep_probs:
        if prob_dtype == "uint8":
            stored_t = quantize_(probs)
            if holes:
                stored_t.masked_fill_(invalid, PROB_NODATA)
        else:
            stored_t = probs.clone()
            if holes:
                stored_t.masked_fill_(invalid, float("nan"))
        stored = stored_t.cpu().numpy()
    return classes.cpu().numpy()[None], stored


#: 1.5 * 2**23: a float32 in [2**23, 2**24) has a spacing of exactly 1, so adding this to a value
#: in [0, 2**22) rounds it to the nearest integer (ties to even, as ``round_``), which then
#: sits in the sum's low mantissa bits.
_ROUNDER = 12582912.0


def quantize_(probs: torch.Tensor) -> torch.Tensor:
    """``round(p * PROB_SCALE)`` as uint8 of float32 probabilities (which are clobbered).

    Blended probabilities lie in [0, 1] up to float rounding (softmax outputs weighted by
    shares that sum to one), so no clamp is needed: ``p * 254`` rounds to 0..254. Two passes
    (scale and round in place, then the low byte of the sum's bits) instead of four (clamp,
    scale, round, convert), with the same bits as ``round_()``.
    """
    return probs.mul_(PROB_SCALE).add_(_ROUNDER).view(torch.int32).to(torch.uint8)


class Seams:
    """Seam pieces waiting for the contributions of every block that covers them."""

    def __init__(self, prob_dtype: str = "uint8", probabilities: bool = True) -> None:
        """Hold no seam yet."""
        self.prob_dtype, self.probabilities = prob_dtype, probabilities
        self._parts: dict[tuple[int, int], dict[tuple[int, int], SeamPart]] = {}

    def add(self, part: SeamPart) -> Finished | None:
        """Take a contribution; return the finished piece once all its owners gave theirs."""
        parts = self._parts.setdefault(part.piece.index, {})
        parts[part.owner] = part
        if len(parts) < len(part.piece.owners):
            return None
        del self._parts[part.piece.index]
        total = None
        for owner in part.piece.owners:  # the piece's owner order, wherever it is finished
            p = parts[owner].total
            total = p if total is None else total + p
        assert total is not None
        classes, probs = finish_in_place(torch.from_numpy(total),
                                         torch.from_numpy(~part.valid), self.prob_dtype,
                                         self.probabilities)
        return Finished(part.piece, classes, probs)

    @property
    def waiting(self) -> int:
        """Seams still waiting for a block."""
        return len(self._parts)

    @property
    def held_bytes(self) -> int:
        """Bytes of the contributions held."""
        return sum(p.total.nbytes + p.valid.nbytes for d in self._parts.values()
                   for p in d.values())
