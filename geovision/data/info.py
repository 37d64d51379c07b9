"""What a training run needs to know about a tile store, read from its attributes."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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
    classes_from_json,
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

    @property
    def num_classes(self) -> int:
        """Class count, background included."""
        return len(self.classes)

    @property
    def class_names(self) -> list[str]:
        """Class names by id."""
        return [c.name for c in self.classes]


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
    )
