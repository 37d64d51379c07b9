"""Writing an output raster as a Cloud Optimized GeoTIFF while its rows are being predicted.

:class:`CogWriter` takes the raster's full-resolution rows top to bottom, in any amounts:

- every strip of :data:`~geovision.inference.writers.TILE` rows is encoded once, with the
  output's final compression, into a small tiled GeoTIFF of its own (GDAL writes it; the
  caller picks the thread and GDAL's thread count);
- the rows also feed the overview levels (:class:`~geovision.inference.overviews.Pyramid`:
  ``MODE`` for classes, ``AVERAGE`` for probabilities, as GDAL's COG driver computes them),
  whose strips are encoded the same way as soon as they are complete;
- :meth:`CogWriter.close` lays the already compressed tiles out as a COG
  (:func:`~geovision.inference.cogfile.assemble`): no pixel is decoded or encoded again.

A *template* GeoTIFF, written first, holds the output's size and every tag of the full
resolution image (georeferencing, colour table, class names, band descriptions, scales,
nodata): the caller's ``describe`` writes them exactly as it would on any rasterio dataset.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.windows import Window

from geovision.inference.cogfile import assemble
from geovision.inference.overviews import Pyramid, overview_shapes
from geovision.inference.spare import CALLER, NoSpareTime, SpareTime, Ticket
from geovision.inference.writers import TILE

#: DEFLATE level of class rasters: 6, GDAL's default.
DEFLATE_LEVEL = 6
#: DEFLATE level of probability rasters: level 1 encodes them about 3x faster than level 6
#: (on a 2-core CPU, level 6 alone would cost about a fifth of the model's time) for files
#: about 1.35x larger; the pixels are the same.
PROB_DEFLATE_LEVEL = 1
#: Placeholder georeferencing of the strip files (not the identity, flipped or not: rasterio
#: warns about those).
_STRIP_TRANSFORM = Affine(1.0, 0.0, 0.0, 0.0, -1.0, 1.0)
#: Strips whose encoding may wait for spare time (each holds its rows in memory meanwhile).
STRIPS_AHEAD = 6


def storage_options(dtype: str, count: int, *, level: int = DEFLATE_LEVEL,
                    tile: int = TILE) -> dict[str, Any]:
    """Creation options shared by the template and every strip: the COG's tile storage.

    DEFLATE, pixel-interleaved tiles; floats with the floating-point predictor (GDAL's COG
    driver's ``PREDICTOR=YES``), integers without one (its default, ``PREDICTOR=NO``): class
    ids are not quantities, and a trained model's uint8 probabilities sit mostly at 0 and 254,
    so horizontal differencing made both files larger (demo model: 0.267 against 0.253 MB of
    probabilities, 4 against 3 KB of classes) and cost a third of the encoding time
    (``benchmarks/bench_infer.py`` 4096^2 probabilities at level 1: 0.49 against 0.33 s).
    """
    floating = np.issubdtype(np.dtype(dtype), np.floating)
    return {"driver": "GTiff", "dtype": dtype, "count": count, "tiled": True,
            "blockxsize": tile, "blockysize": tile, "compress": "deflate",
            "predictor": 3 if floating else 1, "zlevel": level, "interleave": "pixel"}


class CogWriter:
    """One output raster, written strip by strip into a COG with its overviews."""

    def __init__(self, path: str | os.PathLike[str], *, height: int, width: int, count: int,
                 dtype: str, nodata: float | None, crs: CRS | None, transform: Affine,
                 resampling: str, workdir: str | os.PathLike[str],
                 describe: Callable[[Any], None] | None = None, level: int = DEFLATE_LEVEL,
                 tile: int = TILE, threads: int = 1,
                 spare: SpareTime | NoSpareTime | None = None) -> None:
        """Write the template and plan the levels.

        Args:
            path: the COG to write; it appears only when :meth:`close` has finished.
            height: rows of the raster.
            width: columns.
            count: bands.
            dtype: numpy dtype name of the bands.
            nodata: nodata value (NaN for floats), or None.
            crs: coordinate reference system.
            transform: the raster's affine.
            resampling: ``MODE`` or ``AVERAGE`` (see :mod:`geovision.inference.overviews`).
            workdir: folder of the template and strip files (emptied by :meth:`close`).
            describe: writes tags, descriptions, colour table ... on the open template.
            level: DEFLATE level.
            tile: tile side.
            threads: cores the model's thread may use to compress a strip (GDAL threads) and
                to compute its overview levels.
            spare: where strips are encoded ahead, in the cores' spare time
                (:mod:`geovision.inference.spare`); None: each when it is complete.
        """
        self.path = Path(path)
        self.height, self.width, self.count, self.dtype = height, width, count, dtype
        self.nodata, self.tile, self.threads = nodata, tile, threads
        self.spare = spare or NoSpareTime()
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._options = storage_options(dtype, count, level=level, tile=tile)
        self.template = self.workdir / f"{self.path.name}.template.tif"
        with rasterio.open(self.template, "w", height=height, width=width, crs=crs,
                           transform=transform, nodata=nodata, sparse_ok=True,
                           bigtiff="if_safer", **self._options) as dst:
            if describe is not None:
                describe(dst)
        self.shapes = [(height, width), *overview_shapes(height, width, tile)]
        self.pyramid = Pyramid(height, width, tile, resampling, nodata, threads)
        self._pending: list[list[np.ndarray]] = [[] for _ in self.shapes]
        self._written = [0] * len(self.shapes)  # rows of each level in strip files
        self._held = [0] * len(self.shapes)  # rows of each level waiting for a full strip
        self.strips: list[list[Path]] = [[] for _ in self.shapes]
        self._encoding: list[tuple[int, Ticket[Path]]] = []  # (level, strip) not claimed yet
        self._started = [0] * len(self.shapes)  # strips of each level queued or written
        self.by_spare = 0  # strips the spare-time helper encoded

    @property
    def rows_done(self) -> int:
        """Full-resolution rows taken so far."""
        return self._written[0] + self._held[0]

    def write(self, rows: np.ndarray) -> None:
        """Take the next full-resolution rows ``(count, n, width)`` (top to bottom)."""
        if rows.shape[0] != self.count or rows.shape[2] != self.width:
            raise ValueError(f"rows of shape {rows.shape} for a {self.count}-band raster "
                             f"{self.width} wide")
        if self.rows_done + rows.shape[1] > self.height:
            raise ValueError(f"{self.rows_done + rows.shape[1]} rows for a raster of "
                             f"{self.height}")
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        self._add(0, rows)
        if len(self.shapes) > 1:
            for k, out in enumerate(self.pyramid.push(rows), start=1):
                if out.shape[1]:
                    self._add(k, out)

    def _add(self, k: int, rows: np.ndarray) -> None:
        self._pending[k].append(rows)
        self._held[k] += rows.shape[1]
        height = self.shapes[k][0]
        while self._held[k] >= self.tile or (
                self._held[k] and self._written[k] + self._held[k] == height):
            block = np.concatenate(self._pending[k], axis=1) if len(
                self._pending[k]) > 1 else self._pending[k][0]
            n = min(self.tile, block.shape[1])
            self._write_strip(k, block[:, :n])
            rest = block[:, n:]
            self._pending[k] = [rest] if rest.shape[1] else []
            self._held[k] -= n
            self._written[k] += n

    def _write_strip(self, k: int, data: np.ndarray) -> None:
        """Encode a strip now, or queue it for spare time (claimed :data:`STRIPS_AHEAD` later)."""
        stem = f"{self.path.name}.L{k}.S{self._started[k]}"
        self._started[k] += 1

        def encode(who: str) -> Path:
            path = self.workdir / f"{stem}.{who}.tif"  # each writer its own file
            # only the strip's tiles are used (the template has the georeferencing); a
            # transform of its own keeps rasterio from warning, which a catch_warnings block
            # could not stop thread-safely (strips are written on two threads)
            with rasterio.open(path, "w", height=data.shape[1], width=data.shape[2],
                               nodata=self.nodata, transform=_STRIP_TRANSFORM,
                               num_threads=self.threads if who == CALLER else 1,
                               **self._options) as dst:
                dst.write(data, window=Window(0, 0, data.shape[2], data.shape[1]))
            return path

        self._encoding.append((k, self.spare.submit(encode, _unlink)))
        while len(self._encoding) > STRIPS_AHEAD:
            self._claim()

    def _claim(self) -> None:
        """Take the oldest queued strip's file (encoding it here unless the helper has)."""
        k, ticket = self._encoding.pop(0)
        self._keep(k, ticket, ticket.claim())

    def _keep(self, k: int, ticket: Ticket[Path], path: Path) -> None:
        """Record level ``k``'s next strip file, and who encoded it."""
        self.strips[k].append(path)
        self.by_spare += ticket.by != CALLER

    def close(self) -> Path:
        """Assemble the COG from the strips (all rows must have been written); tidy up.

        Raises:
            ValueError: rows are missing.
        """
        if self.rows_done != self.height:
            raise ValueError(f"{self.path.name}: {self.rows_done} of {self.height} rows "
                             "written")
        # the strips still queued: encoded here from the last back while the helper goes on
        # from the first; where the two meet, the one the helper is on is waited for
        queued, self._encoding = self._encoding, []
        files = [ticket.claim(wait=True) for _, ticket in reversed(queued)][::-1]
        for (k, ticket), path in zip(queued, files, strict=True):
            self._keep(k, ticket, path)
        missing = [k for k, (h, _) in enumerate(self.shapes) if self._written[k] != h]
        if missing:
            raise ValueError(f"{self.path.name}: overview levels {missing} are incomplete")
        assemble(self.path, self.template, self.strips, self.shapes)
        self.discard()
        return self.path

    def discard(self) -> None:
        """Remove the template and strip files (after :meth:`close`, or to give up)."""
        for _, ticket in self._encoding:
            ticket.cancel()
        self._encoding.clear()
        for files in self.strips:
            for p in files:
                p.unlink(missing_ok=True)
        self.template.unlink(missing_ok=True)
        if self.workdir.exists() and not any(self.workdir.iterdir()):
            shutil.rmtree(self.workdir, ignore_errors=True)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


def level_count(height: int, width: int, tile: int = TILE) -> int:
    """Overview levels of a ``height x width`` output (as GDAL's COG driver makes them)."""
    return len(overview_shapes(height, width, tile))
