"""Classification inference: one window centred on each stride cell, a coarse class grid.

Outputs: ``<stem>.class.tif``, one pixel per cell on the scene's grid coarsened by the stride,
and ``<stem>.classes.geojson``, one polygon per cell holding data.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from geovision.formats import CLASS_NODATA, class_ids, ids_of
from geovision.geo.windows import PixelWindow, intersect
from geovision.inference.cogwriter import CogWriter
from geovision.inference.geojson import pixel_boxes, to_target, write_features
from geovision.inference.overviews import MODE
from geovision.inference.predict import dihedral
from geovision.inference.tasks import BlockAccumulator, BlockResult, WrittenAtEndTask
from geovision.inference.work import BlockData, SceneWork, Timings, block_result
from geovision.inference.writers import describe_classes, load_array, write_class_legend

if TYPE_CHECKING:
    from geovision.inference.layout import Layout, Piece
    from geovision.models.bundle import Bundle
    from geovision.options.infer import InferOptions


class _Cells(BlockAccumulator):
    """Rows of the block's cell table: cell row, cell col, valid share, probabilities."""

    def __init__(self, work: SceneWork, data: BlockData) -> None:
        self.work, self.block, self.valid = work, data.block, data.valid
        self.rows: list[np.ndarray] = []

    def add(self, origins: list[tuple[int, int]], output: Any) -> None:
        for (r, c), p in zip(origins, np.asarray(output), strict=True):
            self.rows.append(self._cell(r, c, p))

    def _cell(self, r: int, c: int, probs: np.ndarray) -> np.ndarray:
        s, w = self.work.stride, self.work.window
        shift = s // 2 - w // 2
        i, j = (r - shift) // s, (c - shift) // s
        cell = intersect(PixelWindow(i * s, j * s, s, s),
                         PixelWindow(0, 0, self.work.grid.height, self.work.grid.width))
        share = 0.0
        if cell is not None:
            region = self.block.region
            part = self.valid[cell.row - region.row:cell.row - region.row + cell.height,
                              cell.col - region.col:cell.col - region.col + cell.width]
            share = float(part.mean()) if part.size else 0.0
        return np.concatenate([[i, j, share], probs]).astype(np.float64)[None, :]

    def results(self) -> BlockResult:
        cells = np.concatenate(self.rows) if self.rows else np.zeros(
            (0, 3 + self.work.num_classes))
        return BlockResult([(block_result(self.work.scratch, self.block, "cells"), cells)])


class Classification(WrittenAtEndTask):
    """A class and its score per stride cell."""

    name = "classification"
    cells = True

    @torch.inference_mode()
    def predict(self, model: torch.nn.Module, x: torch.Tensor, tta: bool = False,
                ) -> np.ndarray:
        """Class probabilities ``(N, K)`` float32 (averaged under TTA)."""
        transforms = dihedral(tta)
        probs = sum(torch.softmax(model(fwd(x)).float(), dim=1) for fwd, _ in transforms)
        assert isinstance(probs, torch.Tensor)
        return (probs / len(transforms)).cpu().numpy()

    def accumulator(self, work: SceneWork, data: BlockData,
                    pieces: list[Piece]) -> BlockAccumulator:
        """The cell table of the block's windows."""
        return _Cells(work, data)

    def output_names(self, stem: str, options: InferOptions) -> list[str]:
        """``<stem>.class.tif`` (coarse) and ``<stem>.classes.geojson``."""
        return [f"{stem}.class.tif", f"{stem}.classes.geojson"]

    def write(self, work: SceneWork, layout: Layout, bundle: Bundle, out: Path, stem: str,
              timings: Timings) -> dict[str, Any]:
        """The coarse class COG and the cells GeoJSON; counts the cells written."""
        scratch = Path(work.scratch)
        cells = np.concatenate([load_array(block_result(scratch, b, "cells"))
                                for b in layout.blocks])
        coarse = work.grid.coarsened(work.stride)
        grid = np.full((1, *coarse.shape), CLASS_NODATA, dtype=np.uint8)
        probs = cells[:, 3:]
        valid = cells[:, 2] > 0
        ids = np.argmax(probs, axis=1)
        rows, cols = cells[:, 0].astype(int), cells[:, 1].astype(int)
        user_ids = ids_of(ids, class_ids(bundle.classes))  # model indices -> class ids
        grid[0, rows[valid], cols[valid]] = user_ids[valid]
        cog = CogWriter(out / f"{stem}.class.tif", height=coarse.height, width=coarse.width,
                        count=1, dtype="uint8", nodata=CLASS_NODATA, crs=coarse.crs,
                        transform=coarse.transform, resampling=MODE, workdir=scratch / "cog",
                        describe=lambda d: describe_classes(d, bundle.classes))
        cog.write(grid)
        cog.close()
        write_class_legend(out / f"{stem}.class.tif", bundle.classes)
        s, (height, width) = work.stride, work.grid.shape
        boxes = np.column_stack([cols * s, rows * s, (cols + 1) * s, (rows + 1) * s]).astype(float)
        boxes[:, 2] = np.minimum(boxes[:, 2], width)
        boxes[:, 3] = np.minimum(boxes[:, 3], height)
        keep = valid
        transform, crs = work.grid.transform, work.grid.crs
        geoms = to_target(pixel_boxes(boxes[keep], transform), crs, work.options.crs,
                          segment=abs(transform.a) * s / 8)
        names = bundle.class_names
        props = [{"class": names[int(i)], "class_id": int(u),
                  "score": round(float(p.max()), 4),
                  "row": int(r), "col": int(c), "valid": round(float(v), 4)}
                 for i, u, p, r, c, v in zip(ids[keep], user_ids[keep], probs[keep], rows[keep],
                                             cols[keep], cells[keep, 2], strict=True)]
        write_features(out / f"{stem}.classes.geojson", geoms, props, crs=crs,
                       target=work.options.crs)
        return {"cells": int(keep.sum())}


TASK = Classification()
