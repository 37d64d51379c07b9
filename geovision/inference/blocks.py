"""The work on one block, as plain functions over plain values.

A :class:`Job` holds everything a block needs (scene path, bands, model path, options), so
that a block can run in this process (:mod:`geovision.inference.pipeline` overlaps reading,
the model and writing) or as one task on a Dask worker (:func:`process_block`), which loads
the model once per process through :func:`~geovision.inference.predict.cached_bundle`.
Results go to a scratch directory, one file per piece or block, written atomically, with a
marker per finished block: an interrupted run resumes from the blocks already done.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import rasterio
import torch

from geovision.geo.windows import PixelWindow
from geovision.inference import detections
from geovision.inference.blend import axis_shares, profile
from geovision.inference.grid import Block, Piece, intersect
from geovision.inference.predict import cached_bundle, classify, detect, segment
from geovision.inference.reader import normalize, read_region
from geovision.inference.writers import NODATA, PROB_SCALE, finish, save_array


@dataclass(frozen=True)
class Job:
    """What every block of one scene needs to know (plain, picklable values).

    Attributes:
        scene: the scene's path.
        bands: 1-based scene bands, in the model's order.
        model: the bundle's path.
        device: torch device.
        task: segmentation, classification or detection.
        window: window side in pixels.
        stride: pixels between window origins.
        blend: blending profile (segmentation).
        batch_size: windows per model call.
        tta: average flips and a rotation (segmentation, classification).
        prob_dtype: ``uint8`` (compact) or ``float32`` stored probabilities.
        probabilities: store probabilities at all.
        score_threshold: lowest detection score kept.
        mean: per-band normalization mean.
        std: per-band normalization std.
        height: scene rows.
        width: scene columns.
        n_rows: windows along rows.
        n_cols: windows along columns.
        num_classes: classes, background included.
        scratch: directory of the block results.
    """

    scene: str
    bands: tuple[int, ...]
    model: str
    device: str
    task: str
    window: int
    stride: int
    blend: str
    batch_size: int
    tta: bool
    prob_dtype: str
    probabilities: bool
    score_threshold: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    height: int
    width: int
    n_rows: int
    n_cols: int
    num_classes: int
    scratch: str


@dataclass
class BlockData:
    """A block's normalized pixels and validity, as read."""

    block: Block
    pixels: np.ndarray
    valid: np.ndarray
    seconds: float


@dataclass
class Timings:
    """Seconds spent per stage."""

    read: float = 0.0
    model: float = 0.0
    write: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    def add(self, other: Timings) -> None:
        """Accumulate another block's timings."""
        self.read += other.read
        self.model += other.model
        self.write += other.write


def marker(scratch: str | Path, block: Block) -> Path:
    """The file whose presence says a block is finished."""
    return Path(scratch) / f"b{block.index[0]}_{block.index[1]}.done"


def piece_path(scratch: str | Path, piece: Piece, what: str) -> Path:
    """Stored array ``what`` (``class`` or ``prob``) of a finished piece."""
    return Path(scratch) / f"p{piece.index[0]}_{piece.index[1]}.{what}.npy"


def seam_path(scratch: str | Path, piece: Piece, block: tuple[int, int] | None) -> Path:
    """A block's weighted contribution to a seam piece (``block=None``: its validity)."""
    tail = "valid" if block is None else f"b{block[0]}_{block[1]}"
    return Path(scratch) / f"s{piece.index[0]}_{piece.index[1]}.{tail}.npy"


def block_result(scratch: str | Path, block: Block, what: str) -> Path:
    """Stored result ``what`` (``det`` or ``cells``) of a block."""
    return Path(scratch) / f"b{block.index[0]}_{block.index[1]}.{what}.npy"


def read_block(job: Job, block: Block) -> BlockData:
    """Read and normalize a block's region (mirrored past the scene's edges)."""
    t0 = time.perf_counter()
    with rasterio.open(job.scene) as ds:
        data, valid = read_region(ds, job.bands, block.region)
    pixels = normalize(data, valid, job.mean, job.std)
    return BlockData(block, pixels, valid, time.perf_counter() - t0)


def window_batches(job: Job, data: BlockData,
                   ) -> Iterator[tuple[list[tuple[int, int]], np.ndarray]]:
    """The block's windows in batches: (origins, ``(N, bands, window, window)`` float32)."""
    region, w = data.block.region, job.window
    wins = list(data.block.windows)
    for i in range(0, len(wins), job.batch_size):
        chunk = wins[i:i + job.batch_size]
        batch = np.stack([
            data.pixels[:, r - region.row:r - region.row + w, c - region.col:c - region.col + w]
            for r, c in chunk])
        yield chunk, batch


def run_model(job: Job, batch: np.ndarray) -> object:
    """The model's output for one batch (probabilities, or detections per window)."""
    bundle = cached_bundle(job.model, job.device)
    if job.task == "segmentation":
        return segment(bundle.model, batch, job.device, job.tta)
    if job.task == "classification":
        return classify(bundle.model, batch, job.device, job.tta)
    return detect(bundle.model, batch, job.device)


def _shares(job: Job, origins: list[int], count: int) -> dict[int, np.ndarray]:
    """Blend shares of a block's origins along one axis, from the windows around them."""
    s, w = job.stride, job.window
    reach = math.ceil(w / s)
    k0 = max(0, min(origins) // s - reach)
    k1 = min(count, max(origins) // s + reach + 1)
    prof = profile(w, w - s, job.blend)
    return axis_shares([k * s for k in range(k0, k1)], prof)


def _finish_torch(probs: torch.Tensor, valid: torch.Tensor, prob_dtype: str,
                  ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~geovision.inference.writers.finish` on the model's device."""
    classes = probs.argmax(0).to(torch.uint8)
    classes[~valid] = NODATA
    if prob_dtype == "uint8":
        stored = (probs.clamp(0.0, 1.0) * PROB_SCALE).round().to(torch.uint8)
        stored[:, ~valid] = NODATA
    else:
        stored = probs.clone()
        stored[:, ~valid] = float("nan")
    return classes.cpu().numpy(), stored.cpu().numpy()


class BlockWriter:
    """Collects a block's model outputs (blending on the model's device) into its results.

    :meth:`add` and :meth:`results` run beside the model (torch, same device and threads);
    :func:`store` writes the results and may run in another thread.
    """

    def __init__(self, job: Job, data: BlockData, pieces: list[Piece]) -> None:
        """Start collecting the outputs of ``data.block``'s windows."""
        self.job, self.block, self.valid, self.pieces = job, data.block, data.valid, pieces
        region = data.block.region
        self.rows: list[np.ndarray] = []
        if job.task == "segmentation":
            dev = job.device
            self.acc = torch.zeros((job.num_classes, region.height, region.width),
                                   dtype=torch.float32, device=dev)
            self.row_shares = {k: torch.from_numpy(v).to(dev) for k, v in _shares(
                job, sorted({r for r, _ in self.block.windows}), job.n_rows).items()}
            self.col_shares = {k: torch.from_numpy(v).to(dev) for k, v in _shares(
                job, sorted({c for _, c in self.block.windows}), job.n_cols).items()}

    @torch.inference_mode()
    def add(self, origins: list[tuple[int, int]], output: object) -> None:
        """Add the outputs of a batch of windows."""
        region, w = self.block.region, self.job.window
        if self.job.task == "segmentation":
            probs = output if isinstance(output, torch.Tensor) else torch.as_tensor(output)
            for (r, c), p in zip(origins, probs, strict=True):
                share = torch.outer(self.row_shares[r], self.col_shares[c])
                dr, dc = r - region.row, c - region.col
                self.acc[:, dr:dr + w, dc:dc + w].addcmul_(p, share)
        elif self.job.task == "classification":
            for (r, c), p in zip(origins, np.asarray(output), strict=True):
                self.rows.append(self._cell(r, c, p))
        else:
            for (r, c), (boxes, scores, labels) in zip(origins, output, strict=True):  # type: ignore[call-overload]
                keep = scores >= self.job.score_threshold
                table = detections.to_scene(boxes[keep], scores[keep], labels[keep], (r, c),
                                            w, self.job.height, self.job.width)
                self.rows.append(self._on_data(table))

    def _cell(self, r: int, c: int, probs: np.ndarray) -> np.ndarray:
        """Row of the cell table: cell row, cell col, valid share, probabilities."""
        s, w = self.job.stride, self.job.window
        shift = s // 2 - w // 2
        i, j = (r - shift) // s, (c - shift) // s
        cell = intersect(PixelWindow(i * s, j * s, s, s),
                         PixelWindow(0, 0, self.job.height, self.job.width))
        share = 0.0
        if cell is not None:
            region = self.block.region
            part = self.valid[cell.row - region.row:cell.row - region.row + cell.height,
                              cell.col - region.col:cell.col - region.col + cell.width]
            share = float(part.mean()) if part.size else 0.0
        return np.concatenate([[i, j, share], probs]).astype(np.float64)[None, :]

    def _on_data(self, table: np.ndarray) -> np.ndarray:
        """Drop boxes centred on nodata pixels."""
        if len(table) == 0:
            return table
        region = self.block.region
        cy = np.clip(((table[:, 1] + table[:, 3]) / 2).astype(int) - region.row, 0,
                     region.height - 1)
        cx = np.clip(((table[:, 0] + table[:, 2]) / 2).astype(int) - region.col, 0,
                     region.width - 1)
        return table[self.valid[cy, cx]]

    @torch.inference_mode()
    def results(self) -> list[tuple[Path, np.ndarray]]:
        """The block's files to store: finished pieces, seam contributions, or tables."""
        scratch = Path(self.job.scratch)
        if self.job.task == "classification":
            cells = np.concatenate(self.rows) if self.rows else np.zeros(
                (0, 3 + self.job.num_classes))
            return [(block_result(scratch, self.block, "cells"), cells)]
        if self.job.task == "detection":
            table = np.concatenate(self.rows) if self.rows else detections.empty()
            return [(block_result(scratch, self.block, "det"), table)]
        out: list[tuple[Path, np.ndarray]] = []
        region = self.block.region
        valid = torch.from_numpy(self.valid).to(self.acc.device)
        for piece in self.pieces:
            rows = slice(piece.window.row - region.row,
                         piece.window.row - region.row + piece.window.height)
            cols = slice(piece.window.col - region.col,
                         piece.window.col - region.col + piece.window.width)
            if piece.is_seam:
                out.append((seam_path(scratch, piece, self.block.index),
                            self.acc[:, rows, cols].cpu().numpy()))
                out.append((seam_path(scratch, piece, None), self.valid[rows, cols]))
                continue
            classes, probs = _finish_torch(self.acc[:, rows, cols], valid[rows, cols],
                                           self.job.prob_dtype)
            if self.job.probabilities:
                out.append((piece_path(scratch, piece, "prob"), probs))
            out.append((piece_path(scratch, piece, "class"), classes[None]))
        return out


def store(job: Job, block: Block, results: list[tuple[Path, np.ndarray]],
          seconds: dict[str, float]) -> None:
    """Write a block's results, then its marker (so a marker means every file is there)."""
    for path, array in results:
        save_array(path, array)
    marker(job.scratch, block).write_text(json.dumps(seconds))


def block_pieces(block: Block, pieces: tuple[Piece, ...]) -> list[Piece]:
    """The pieces a block's windows reach."""
    return [p for p in pieces if block.index in p.owners]


def finish_seam(job: Job, piece: Piece) -> None:
    """Add up the contributions of a seam's blocks and store its classes and probabilities."""
    scratch = Path(job.scratch)
    if piece_path(scratch, piece, "class").exists():
        return
    total = None
    for owner in piece.owners:
        part = np.load(seam_path(scratch, piece, owner))
        total = part if total is None else total + part
    valid = np.load(seam_path(scratch, piece, None))
    assert total is not None
    classes, probs = finish(total, valid, job.prob_dtype)
    if job.probabilities:
        save_array(piece_path(scratch, piece, "prob"), probs)
    save_array(piece_path(scratch, piece, "class"), classes[None])
    for owner in piece.owners:
        seam_path(scratch, piece, owner).unlink(missing_ok=True)
    seam_path(scratch, piece, None).unlink(missing_ok=True)


def predict_block(job: Job, data: BlockData, pieces: list[Piece],
                  on_batch: Callable[[int], None] | None = None,
                  ) -> tuple[list[tuple[Path, np.ndarray]], float, float]:
    """Run the model over a block's windows and blend them into its results (not yet stored).

    Args:
        job: the scene's job.
        data: the block's pixels, read and normalized.
        pieces: the pieces its windows reach.
        on_batch: called with the number of windows after each batch.

    Returns:
        (the files to store, seconds in the model, seconds blending).
    """
    writer = BlockWriter(job, data, pieces)
    model = blend = 0.0
    for origins, batch in window_batches(job, data):
        t0 = time.perf_counter()
        out = run_model(job, batch)
        t1 = time.perf_counter()
        writer.add(origins, out)
        model += t1 - t0
        blend += time.perf_counter() - t1
        if on_batch is not None:
            on_batch(len(origins))
    t2 = time.perf_counter()
    results = writer.results()
    return results, model, blend + time.perf_counter() - t2


def process_block(job: Job, block: Block, pieces: list[Piece]) -> dict[str, float]:
    """Read, predict and store one block in turn (one task on a Dask worker).

    Returns:
        Seconds spent reading, in the model and writing.
    """
    data = read_block(job, block)
    results, model, blend = predict_block(job, data, pieces)
    t0 = time.perf_counter()
    seconds = {"read": data.seconds, "model": model, "write": blend}
    store(job, block, results, seconds)
    seconds["write"] += time.perf_counter() - t0
    return seconds
