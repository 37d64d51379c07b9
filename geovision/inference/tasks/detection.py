"""Detection inference: boxes of every window mapped to the scene, merged across seams.

Output: ``<stem>.detections.geojson``, one polygon per object (see
:mod:`geovision.inference.detections` for the merge).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from geovision.formats import class_ids
from geovision.inference.detections import MergeRule, empty, merge, to_scene
from geovision.inference.geojson import pixel_boxes, to_target, write_features
from geovision.inference.tasks import BlockAccumulator, BlockResult, WrittenAtEndTask
from geovision.inference.work import BlockData, SceneWork, Timings, block_result
from geovision.inference.writers import load_array

if TYPE_CHECKING:
    from geovision.inference.layout import Layout, Piece
    from geovision.models.bundle import Bundle
    from geovision.options.infer import InferOptions


class _Boxes(BlockAccumulator):
    """The block's detection table (scene pixels), boxes centred on nodata dropped."""

    def __init__(self, work: SceneWork, data: BlockData) -> None:
        self.work, self.block, self.valid = work, data.block, data.valid
        self.rows: list[np.ndarray] = []

    def add(self, origins: list[tuple[int, int]], output: Any) -> None:
        w, (height, width) = self.work.window, self.work.grid.shape
        for (r, c), (boxes, scores, labels) in zip(origins, output, strict=True):
            keep = scores >= self.work.options.score_threshold
            table = to_scene(boxes[keep], scores[keep], labels[keep], (r, c), w, height,
                             width)
            self.rows.append(self._on_data(table))

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

    def results(self) -> BlockResult:
        table = np.concatenate(self.rows) if self.rows else empty()
        return BlockResult([(block_result(self.work.scratch, self.block, "det"), table)])


class Detection(WrittenAtEndTask):
    """One box per object, whole boxes winning over boxes cut by a window edge."""

    name = "detection"
    tta = False
    skips_empty = True  # boxes are kept only where their centre is valid

    @torch.inference_mode()
    def predict(self, model: torch.nn.Module, x: torch.Tensor, tta: bool = False,
                ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Boxes (xyxy, window pixels), scores and labels for each normalized window."""
        images = list(x)
        out = []
        for d in model(images):
            out.append((d["boxes"].float().cpu().numpy(), d["scores"].float().cpu().numpy(),
                        d["labels"].cpu().numpy().astype(np.int64)))
        return out

    def accumulator(self, work: SceneWork, data: BlockData,
                    pieces: list[Piece]) -> BlockAccumulator:
        """The detection table of the block's windows."""
        return _Boxes(work, data)

    def output_names(self, stem: str, options: InferOptions) -> list[str]:
        """``<stem>.detections.geojson``."""
        return [f"{stem}.detections.geojson"]

    def preview_layers(self, out: Path, stem: str) -> dict[str, Path]:
        """The boxes, drawn over the scene."""
        return {"detections": out / f"{stem}.detections.geojson"}

    def write(self, work: SceneWork, layout: Layout, bundle: Bundle, out: Path, stem: str,
              timings: Timings) -> dict[str, Any]:
        """Merge every block's boxes and write them as GeoJSON; counts the detections."""
        opts = work.options
        tables = [load_array(block_result(work.scratch, b, "det")) for b in layout.blocks]
        table = np.concatenate(tables) if tables else empty()
        merged = merge(table, MergeRule(iou=opts.nms_iou, ios=opts.ios),
                       cell=float(work.window))
        geoms = to_target(pixel_boxes(merged[:, :4], work.grid.transform), work.grid.crs,
                          opts.crs)
        names = bundle.class_names
        ids = class_ids(bundle.classes)  # model indices -> class ids (None: the same)

        def class_id(index: int) -> int:
            return ids[index] if ids is not None and 0 <= index < len(ids) else index

        props = [{"class": names[int(r[5])] if int(r[5]) < len(names) else str(int(r[5])),
                  "class_id": class_id(int(r[5])), "score": round(float(r[4]), 4)}
                 for r in merged]
        write_features(out / f"{stem}.detections.geojson", geoms, props, crs=work.grid.crs,
                       target=opts.crs)
        return {"detections": len(merged)}


TASK = Detection()
