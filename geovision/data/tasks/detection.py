"""Detection samples: the image and the boxes of its objects, moved together by augmentations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import zarr

from geovision.data.info import TileInfo
from geovision.data.tasks import DataTask, TileSource

if TYPE_CHECKING:
    from geovision.data.transforms import Sample

Boxes = dict[int, tuple[np.ndarray, np.ndarray]]


class Detection(DataTask):
    """``boxes`` float32 ``(n, 4)`` xyxy and ``labels`` int64 ``(n,)`` per item; lists per batch.

    Tiles hold different numbers of boxes, so items are collated one by one.
    """

    name = "detection"
    counted = "class_boxes"

    def preload(self, info: TileInfo) -> Boxes:
        """Every tile's boxes and their classes as model indices (small: read once)."""
        group: Any = zarr.open_group(str(info.path), mode="r")
        if "boxes" not in group:
            return {}
        boxes = np.asarray(group["boxes"][...], dtype=np.float32).reshape(-1, 4)
        labels = np.asarray(group["box_label"][...], dtype=np.int64)
        lut = info.id_lookup
        if lut is not None:
            labels = lut[labels].astype(np.int64)
        tiles = np.asarray(group["box_tile"][...], dtype=np.int64)
        order = np.argsort(tiles, kind="stable")
        unique, starts = np.unique(tiles[order], return_index=True)
        ends = [*starts[1:].tolist(), len(order)]
        return {int(t): (boxes[order[a:b]], labels[order[a:b]])
                for t, a, b in zip(unique.tolist(), starts.tolist(), ends, strict=True)}

    def sample(self, ds: TileSource, tile: int) -> dict[str, torch.Tensor]:
        """The tile's boxes and class ids."""
        b, lab = ds.targets.get(tile, (np.zeros((0, 4), np.float32), np.zeros(0, np.int64)))
        return {"boxes": torch.from_numpy(b.copy()), "box_labels": torch.from_numpy(lab.copy())}

    def item(self, ds: TileSource, sample: Sample, tile: int) -> dict[str, Any]:
        """The (augmented, cleaned) boxes and their class ids."""
        assert sample.boxes is not None and sample.box_labels is not None
        return {"boxes": sample.boxes.reshape(-1, 4).float(),
                "labels": sample.box_labels.long()}

    def class_presence(self, ds: TileSource) -> np.ndarray:
        """Classes of each tile's boxes; background (column 0) for a tile without boxes."""
        out = np.zeros((len(ds.indices), ds.info.num_classes), dtype=bool)
        for i, tile in enumerate(np.asarray(ds.indices).tolist()):
            labels = ds.targets.get(int(tile), (None, np.zeros(0, np.int64)))[1]
            if len(labels):
                out[i, np.asarray(labels, dtype=np.int64)] = True
            else:
                out[i, 0] = True
        return out

    def collate_targets(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Boxes and class ids as per-image lists."""
        return {"boxes": [it["boxes"] for it in items], "labels": [it["labels"] for it in items]}


TASK = Detection()
