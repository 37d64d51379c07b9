"""What a training run needs to know about a tile store, read from its attributes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from geovision.errors import InputError, InputFileError
from geovision.formats import (
    IGNORE_INDEX,
    SPLITS,
    BandInfo,
    ClassInfo,
    bands_from_json,
    class_ids,
    classes_from_json,
    id_lookup,
)
from geovision.geo.resolution import PixelSize


@dataclass(frozen=True)
class TileInfo:
    """What a training run needs to know about a tile store, read from its attributes.

    Attributes:
        path: the store.
        task: segmentation, classification or detection.
        classes: the classes, background first.
        ignore_index: mask value of unlabeled pixels.
        bands: the bands of ``image``, in order.
        tile_size: tile side in pixels.
        mean: per-band mean of valid training pixels.
        std: per-band standard deviation (zeros replaced by 1).
        resolution: ``[x, y]`` pixel size of the first source, or None.
        splits: tile indices per split name.
        pixel_size: the first source's pixel size with its CRS (None without one).
        counts: the store's ``counts`` attribute as tiling wrote it (``tiles`` per split,
            ``class_tiles`` and ``class_pixels`` or ``class_boxes`` per class id, over every
            split); empty for a store without one.
    """

    path: Path
    task: str
    classes: tuple[ClassInfo, ...]
    ignore_index: int
    bands: tuple[BandInfo, ...]
    tile_size: int
    mean: list[float]
    std: list[float]
    resolution: list[float] | None
    splits: dict[str, np.ndarray]
    pixel_size: PixelSize | None = None
    counts: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        """Class count, background included."""
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        """Class names by model index (``classes`` order, background first)."""
        return [c.name for c in self.classes]

    @property
    def class_ids(self) -> tuple[int, ...] | None:
        """The class id of each model index, or None when ids are ``0 .. K-1`` already."""
        return class_ids(self.classes)

    @property
    def id_lookup(self) -> np.ndarray | None:
        """Stored class id -> model index (uint8, 256 entries), or None when ids are dense.

        The model is trained on indices ``0 .. K-1``; a store made with ``--class-map`` may
        keep the user's codes (``0, 2, 10``) as ids. :data:`ignore_index` stays ignored.
        """
        return id_lookup(self.classes, self.ignore_index)


def read_info(path: str | os.PathLike[str]) -> TileInfo:
    """Read a tile store's attributes and split array.

    Raises:
        InputFileError: the store does not exist.
        InputError: it is not a finished geovision tile store.
    """
    p = Path(path)
    meta = p / "zarr.json"
    if not meta.is_file():
        raise InputFileError(f"{p}: tile dataset not found (make one with `geovision tile`)")
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError) as exc:
        raise InputError(f"{p}: cannot read zarr.json ({exc})") from exc
    if (attrs.get("geovision") or {}).get("format") != "tiles":
        raise InputError(f"{p}: not a geovision tile dataset (unfinished, or not written by "
                         "`geovision tile`)")
    group: Any = zarr.open_group(str(p), mode="r")
    split = np.asarray(group["split"][...]) if "split" in group else np.zeros(0, np.uint8)
    stats = attrs.get("stats") or {}
    n_bands = len(attrs["bands"])
    mean = [float(v) for v in stats.get("mean") or [0.0] * n_bands]
    std = [float(v) if v and np.isfinite(v) and v > 0 else 1.0
           for v in stats.get("std") or [1.0] * n_bands]
    sources = attrs.get("sources") or []
    res = sources[0].get("res") if sources else None
    return TileInfo(
        path=p, task=attrs["task"], classes=classes_from_json(attrs["classes"]),
        ignore_index=int(attrs.get("ignore_index", IGNORE_INDEX)),
        bands=bands_from_json(attrs["bands"]),
        tile_size=int(attrs["tile_size"]), mean=mean, std=std,
        resolution=[float(v) for v in res] if res else None,
        splits={name: np.flatnonzero(split == code) for code, name in enumerate(SPLITS)},
        pixel_size=(PixelSize(float(res[0]), float(res[1]), str(sources[0]["crs"]))
                    if res and sources[0].get("crs") else None),
        counts=dict(attrs.get("counts") or {}),
    )
