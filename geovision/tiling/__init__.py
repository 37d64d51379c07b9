"""Rasters + labels -> a Zarr tile dataset, in one pass over the rasters."""

from __future__ import annotations

from typing import TYPE_CHECKING

from geovision.lazy import exports

if TYPE_CHECKING:
    from geovision.options.tile import TileOptions
    from geovision.tiling.api import tile

__all__ = ["TileOptions", "tile"]
__getattr__ = exports(__name__, {"TileOptions": "geovision.options.tile",
                                 "tile": "geovision.tiling.api"})
