"""Segmentation inference: blended class probabilities, a class raster and a probability raster.

Each window's softmax is weighted by its blend share (:mod:`geovision.inference.blend`) and
added on the model's device; a block stores the pieces it finishes alone and its
contribution to the seams it shares with its neighbours, which :meth:`merge_blocks` adds up.
Class ids and stored probabilities come from the blended probabilities in one function,
:func:`class_and_probabilities`, wherever they are made.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
import torch

from geovision.formats import CLASS_NODATA, PROB_NODATA, PROB_SCALE
from geovision.inference.blend import axis_shares, axis_weights
from geovision.inference.predict import dihedral
from geovision.inference.tasks import BlockAccumulator, InferenceTask
from geovision.inference.work import BlockData, SceneWork, Timings, piece_path, seam_path
from geovision.inference.writers import (
    assemble,
    describe_classes,
    describe_probabilities,
    save_array,
    tiled_profile,
    to_cog,
)

if TYPE_CHECKING:
    from geovision.geo.raster import RasterInfo
    from geovision.inference.layout import Layout, Piece
    from geovision.models.bundle import Bundle
    from geovision.options.infer import InferOptions


def class_and_probabilities(probs: torch.Tensor, valid: torch.Tensor, prob_dtype: str,
                            ) -> tuple[np.ndarray, np.ndarray]:
    """Class ids and stored probabilities of blended probabilities ``(K, rows, cols)``.

    Runs on the tensors' device (the model's, for pieces a block finishes; the CPU, for
    seams).

    Returns:
        ``(classes, probabilities)``: uint8 argmax with :data:`CLASS_NODATA` where invalid,
        and compact uint8 (``round(p * 254)``, :data:`PROB_NODATA` where invalid) or float32
        (NaN where invalid) probabilities.
    """
    classes = probs.argmax(0).to(torch.uint8)
    classes[~valid] = CLASS_NODATA
    if prob_dtype == "uint8":
        stored = (probs.clamp(0.0, 1.0) * PROB_SCALE).round().to(torch.uint8)
        stored[:, ~valid] = PROB_NODATA
    else:
        stored = probs.clone()
        stored[:, ~valid] = float("nan")
    return classes.cpu().numpy(), stored.cpu().numpy()


def _shares(work: SceneWork, origins: list[int], count: int) -> dict[int, np.ndarray]:
    """Blend shares of a block's origins along one axis, from the windows around them."""
    s, w = work.stride, work.window
    reach = math.ceil(w / s)
    k0 = max(0, min(origins) // s - reach)
    k1 = min(count, max(origins) // s + reach + 1)
    weights = axis_weights(w, w - s, work.options.blend)
    return axis_shares([k * s for k in range(k0, k1)], weights)


class _Blender(BlockAccumulator):
    """Blends a block's window probabilities on the model's device."""

    def __init__(self, work: SceneWork, data: BlockData, pieces: list[Piece]) -> None:
        self.work, self.block, self.valid, self.pieces = work, data.block, data.valid, pieces
        region, dev = data.block.region, work.device
        self.acc = torch.zeros((work.num_classes, region.height, region.width),
                               dtype=torch.float32, device=dev)
        self.row_shares = {k: torch.from_numpy(v).to(dev) for k, v in _shares(
            work, sorted({r for r, _ in self.block.windows}), work.n_rows).items()}
        self.col_shares = {k: torch.from_numpy(v).to(dev) for k, v in _shares(
            work, sorted({c for _, c in self.block.windows}), work.n_cols).items()}

    @torch.inference_mode()
    def add(self, origins: list[tuple[int, int]], output: Any) -> None:
        region, w = self.block.region, self.work.window
        probs = output if isinstance(output, torch.Tensor) else torch.as_tensor(output)
        for (r, c), p in zip(origins, probs, strict=True):
            share = torch.outer(self.row_shares[r], self.col_shares[c])
            dr, dc = r - region.row, c - region.col
            self.acc[:, dr:dr + w, dc:dc + w].addcmul_(p, share)

    @torch.inference_mode()
    def results(self) -> list[tuple[Path, np.ndarray]]:
        """Finished pieces (classes, probabilities) and contributions to seams."""
        scratch, opts = Path(self.work.scratch), self.work.options
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
            classes, probs = class_and_probabilities(self.acc[:, rows, cols], valid[rows, cols],
                                                     opts.prob_dtype)
            if opts.probabilities:
                out.append((piece_path(scratch, piece, "prob"), probs))
            out.append((piece_path(scratch, piece, "class"), classes[None]))
        return out


def merge_seam(work: SceneWork, piece: Piece) -> None:
    """Add up the contributions of a seam's blocks and store its classes and probabilities."""
    scratch = Path(work.scratch)
    if piece_path(scratch, piece, "class").exists():
        return
    parts = [np.load(seam_path(scratch, piece, owner)) for owner in piece.owners]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    valid = np.load(seam_path(scratch, piece, None))
    classes, probs = class_and_probabilities(torch.from_numpy(total), torch.from_numpy(valid),
                                             work.options.prob_dtype)
    if work.options.probabilities:
        save_array(piece_path(scratch, piece, "prob"), probs)
    save_array(piece_path(scratch, piece, "class"), classes[None])
    for owner in piece.owners:
        seam_path(scratch, piece, owner).unlink(missing_ok=True)
    seam_path(scratch, piece, None).unlink(missing_ok=True)


class Segmentation(InferenceTask):
    """``<stem>.class.tif`` and ``<stem>.prob.tif`` on the scene's exact grid."""

    name = "segmentation"

    @torch.inference_mode()
    def predict(self, model: torch.nn.Module, batch: np.ndarray, device: str,
                tta: bool = False) -> torch.Tensor:
        """Class probabilities ``(N, K, H, W)`` float32 on ``device`` (averaged under TTA)."""
        x = torch.from_numpy(batch).to(device)
        transforms = dihedral(tta)
        probs = None
        for fwd, inv in transforms:
            p = inv(torch.softmax(model(fwd(x)).float(), dim=1))
            probs = p if probs is None else probs + p
        assert probs is not None
        return probs / len(transforms)

    def output_problem(self, output: Any, window: int) -> str | None:
        """The model must return outputs of the window's size."""
        if tuple(output.shape[-2:]) != (window, window):
            return f"the model returns {output.shape[-2:]} outputs for this window"
        return None

    def accumulator(self, work: SceneWork, data: BlockData,
                    pieces: list[Piece]) -> BlockAccumulator:
        """Blends window probabilities into the block's pieces and seams."""
        return _Blender(work, data, pieces)

    def merge_blocks(self, work: SceneWork, layout: Layout) -> None:
        """Finish every seam from the contributions of its blocks."""
        for piece in layout.pieces:
            if piece.is_seam:
                merge_seam(work, piece)

    def output_names(self, stem: str, options: InferOptions) -> list[str]:
        """``<stem>.class.tif``, and ``<stem>.prob.tif`` unless probabilities are off."""
        return [f"{stem}.class.tif"] + ([f"{stem}.prob.tif"] if options.probabilities else [])

    def write(self, work: SceneWork, layout: Layout, bundle: Bundle, info: RasterInfo,
              out: Path, stem: str, timings: Timings) -> dict[str, Any]:
        """Assemble the pieces into tiled GeoTIFFs, then convert them to COGs."""
        scratch, opts = Path(work.scratch), work.options

        def loader(what: str) -> Any:
            def load(piece: Piece) -> np.ndarray:
                return np.load(piece_path(scratch, piece, what), mmap_mode="r")
            return load

        t0 = time.perf_counter()
        tif = scratch / "class.tif"
        with rasterio.open(tif, "w", **tiled_profile(work.grid, count=1, dtype="uint8",
                                                      nodata=CLASS_NODATA)) as dst:
            describe_classes(dst, bundle.classes)
            assemble(dst, layout.pieces, loader("class"), CLASS_NODATA)
        prob_tif = scratch / "prob.tif"
        if opts.probabilities:
            compact = opts.prob_dtype == "uint8"
            nodata = PROB_NODATA if compact else float("nan")
            with rasterio.open(prob_tif, "w", **tiled_profile(
                    work.grid, count=work.num_classes, dtype=opts.prob_dtype,
                    nodata=nodata)) as dst:
                describe_probabilities(dst, bundle.classes, compact)
                assemble(dst, layout.pieces, loader("prob"), nodata)
        t1 = time.perf_counter()
        to_cog(tif, out / f"{stem}.class.tif", resampling="MODE")
        if opts.probabilities:
            to_cog(prob_tif, out / f"{stem}.prob.tif", resampling="AVERAGE")
        timings.extra["assemble"] = t1 - t0
        timings.extra["cog"] = time.perf_counter() - t1
        return {}


TASK = Segmentation()
