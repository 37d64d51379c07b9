"""A raster grid as one value: CRS, affine transform and size (what a window is cut from).

Every stage that places pixels on the map passes a :class:`Grid` (rasterio's ``DatasetReader``
attributes ``crs``, ``transform``, ``width``, ``height`` as one frozen value).
"""

from __future__ import annotations

from dataclasses import dataclass

import rasterio
from affine import Affine
from rasterio.crs import CRS

from geovision.geo.windows import PixelWindow, window_bounds


@dataclass(frozen=True)
class Grid:
    """Pixels of a north-up raster: ``height`` rows of ``width`` pixels placed by ``transform``.

    Attributes:
        crs: the coordinate reference system of the map coordinates.
        transform: affine from pixel (col, row) to map (x, y).
        width: pixels per row.
        height: rows.
    """

    crs: CRS
    transform: Affine
    width: int
    height: int

    @classmethod
    def of(cls, ds: rasterio.io.DatasetReader) -> Grid:
        """The grid of an open dataset."""
        return cls(crs=ds.crs, transform=ds.transform, width=ds.width, height=ds.height)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.height, self.width)

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        return window_bounds(PixelWindow(0, 0, self.height, self.width), self.transform)

    def coarsened(self, factor: int) -> Grid:
        """The grid of ``factor x factor`` pixel cells, aligned with this one's origin.

        It has ``ceil(height / factor)`` rows and ``ceil(width / factor)`` columns; a last
        cell may reach past the raster.
        """
        return Grid(crs=self.crs, transform=self.transform @ Affine.scale(factor, factor),
                    width=-(-self.width // factor), height=-(-self.height // factor))

    def window(self, window: PixelWindow) -> Grid:
        """The grid of a window of this grid (it may reach past the edges)."""
        return Grid(crs=self.crs, transform=window.transform(self.transform),
                    width=window.width, height=window.height)
