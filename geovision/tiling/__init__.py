"""Rasters + vector labels -> a Zarr tile dataset, built by a Dask graph."""

from geovision.tiling.api import TileOptions, tile

__all__ = ["TileOptions", "tile"]
