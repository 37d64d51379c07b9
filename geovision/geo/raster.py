"""Opening and describing rasters, with the checks that every stage needs."""

from __future__ import annotations

import glob
import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import MaskFlags
from rasterio.errors import NodataShadowWarning, RasterioIOError
from rasterio.windows import Window

from geovision.errors import InputError, InputFileError
from geovision.geo.grid import Grid
from geovision.geo.paths import RASTER_SUFFIXES, gdal_path, is_local, shown_path


@dataclass(frozen=True)
class RasterInfo:
    """What geovision needs to know of a raster, read once from its header.

    Attributes:
        path: the file as given (any GDAL-readable path).
        crs: its coordinate reference system.
        transform: the affine from pixel (col, row) to map (x, y); never rotated or sheared.
        width: pixels per row.
        height: rows.
        count: bands in the file.
        dtype: numpy dtype name of the bands.
        nodata: the nodata value, or None.
        descriptions: band names from the file (None where unnamed).
        all_valid: True when GDAL reports every band valid everywhere (no nodata, no mask,
            no alpha), so masks need not be read.
    """

    path: str
    crs: CRS
    transform: Affine
    width: int
    height: int
    count: int
    dtype: str
    nodata: float | None
    descriptions: tuple[str | None, ...]
    all_valid: bool

    @property
    def res(self) -> tuple[float, float]:
        """Pixel size (x, y) in CRS units, both positive."""
        return (abs(self.transform.a), abs(self.transform.e))

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width)."""
        return (self.height, self.width)

    @property
    def grid(self) -> Grid:
        """The raster's pixel grid (CRS, affine, size) as one value."""
        return Grid(crs=self.crs, transform=self.transform, width=self.width,
                    height=self.height)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        x0, y0 = self.transform @ (0, 0)
        x1, y1 = self.transform @ (self.width, self.height)
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    def describe(self) -> dict:
        """The source record of the tile dataset format (plain values only)."""
        return {
            "path": self.path,
            "crs": self.crs.to_wkt(version="WKT2_2019"),
            "epsg": self.crs.to_epsg(),
            "transform": list(self.transform)[:6],
            "width": self.width,
            "height": self.height,
            "count": self.count,
            "dtype": self.dtype,
            "nodata": _plain_nodata(self.nodata),
            "res": list(self.res),
        }


def _plain_nodata(nodata: float | None) -> float | str | None:
    """Nodata as a JSON value: NaN becomes the string "nan" (JSON has no NaN)."""
    if nodata is None:
        return None
    if np.isnan(nodata):
        return "nan"
    return float(nodata)


def absolute(path: str) -> str:
    """The path as GDAL opens it from any working directory (Dask workers elsewhere too).

    Local paths become absolute; URLs become GDAL paths (``s3://b/k`` -> ``/vsis3/b/k``);
    ``/vsi...`` paths and VRT XML text are kept (see :func:`geovision.geo.paths.gdal_path`).
    """
    return gdal_path(path)


def open_raster(path: str | os.PathLike[str], *, check_read: bool = True) -> RasterInfo:
    """Read and check a raster's header.

    Args:
        path: any path GDAL opens.
        check_read: also decode the first and the last block, so that a truncated file
            fails here rather than half-way through a job.

    Returns:
        The raster's description.

    Raises:
        InputFileError: the file is missing, not a raster, or cannot be decoded.
        InputError: the raster has no CRS, or a rotated or sheared geotransform.
    """
    spath = os.fspath(path)
    shown = shown_path(spath)
    if is_local(spath) and not os.path.exists(spath):
        raise InputFileError(f"{spath}: file not found")
    try:
        with rasterio.open(spath) as ds:
            info = RasterInfo(
                path=spath,
                crs=ds.crs,
                transform=ds.transform,
                width=ds.width,
                height=ds.height,
                count=ds.count,
                dtype=ds.dtypes[0],
                nodata=ds.nodata,
                descriptions=tuple(ds.descriptions),
                all_valid=all(flags == [MaskFlags.all_valid] for flags in ds.mask_flag_enums),
            )
            if check_read:
                _check_decodes(ds)
    except RasterioIOError as exc:
        raise InputFileError(
            f"{shown}: not a readable raster ({_first_line(exc)}); check the file is complete "
            "and in a format GDAL reads"
        ) from exc
    if info.crs is None:
        raise InputError(
            f"{shown}: raster has no CRS; assign one first "
            "(e.g. gdal_edit.py -a_srs EPSG:XXXX) so labels can be placed on it"
        )
    t = info.transform
    if t.b != 0 or t.d != 0:
        raise InputError(
            f"{shown}: rotated or sheared geotransform {tuple(t)[:6]} is not supported; "
            "warp it to a north-up grid first (gdalwarp)"
        )
    if t.a == 0 or t.e == 0:
        raise InputError(f"{shown}: geotransform has a zero pixel size {tuple(t)[:6]}")
    if info.transform.is_identity:
        raise InputError(f"{shown}: raster has no geotransform; georeference it first")
    return info


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _check_decodes(ds: rasterio.io.DatasetReader) -> None:
    """Decode the first and last block of band 1, which a truncated file fails to give."""
    bh, bw = ds.block_shapes[0]
    last = Window(
        max(0, (ds.width - 1) // bw * bw), max(0, (ds.height - 1) // bh * bh),
        min(bw, ds.width), min(bh, ds.height),
    )
    last = last.intersection(Window(0, 0, ds.width, ds.height))
    for window in (Window(0, 0, min(bw, ds.width), min(bh, ds.height)), last):
        ds.read(1, window=window)


class _HandleCache(threading.local):
    """Open datasets of one thread, most recently used last."""

    def __init__(self) -> None:
        self.handles: OrderedDict[str, rasterio.io.DatasetReader] = OrderedDict()


_HANDLES = _HandleCache()
_ALL_HANDLES: list[OrderedDict[str, rasterio.io.DatasetReader]] = []
_ALL_LOCK = threading.Lock()
#: Open datasets kept per thread.
HANDLES_PER_THREAD = 4


def cached_open(path: str) -> rasterio.io.DatasetReader:
    """Open a raster for reading, reusing this thread's handle when it has one.

    Dataset handles are not shared between threads (GDAL handles are not thread-safe), but a
    thread keeps its last few open, so consecutive tasks on one raster reuse GDAL's block cache
    instead of decoding the same blocks again. :func:`close_cached` closes them all.
    """
    cache = _HANDLES.handles
    if not cache:
        with _ALL_LOCK:
            if not any(c is cache for c in _ALL_HANDLES):
                _ALL_HANDLES.append(cache)
    ds = cache.get(path)
    if ds is not None and not ds.closed:
        cache.move_to_end(path)
        return ds
    ds = rasterio.open(path)
    cache[path] = ds
    while len(cache) > HANDLES_PER_THREAD:
        _, old = cache.popitem(last=False)
        old.close()
    return ds


def close_cached() -> None:
    """Close every dataset opened by :func:`cached_open` in any thread of this process."""
    with _ALL_LOCK:
        for cache in _ALL_HANDLES:
            while cache:
                _, ds = cache.popitem()
                ds.close()


def find_rasters(inputs: Iterable[str | os.PathLike[str]]) -> list[str]:
    """Expand files, globs and directories into a sorted list of raster paths.

    Raises:
        InputFileError: an input matches nothing, or a directory holds no raster.
    """
    found: list[str] = []
    for item in inputs:
        spath = os.fspath(item)
        if is_local(spath) and os.path.isdir(spath):
            inside = sorted(
                str(p) for p in Path(spath).iterdir()
                if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES
            )
            if not inside:
                raise InputFileError(
                    f"{spath}: no rasters in this directory (looked for "
                    f"{', '.join(RASTER_SUFFIXES)})"
                )
            found.extend(inside)
        elif is_local(spath) and any(ch in spath for ch in "*?["):
            matches = sorted(glob.glob(spath, recursive=True))
            if not matches:
                raise InputFileError(f"{spath}: pattern matches no file")
            found.extend(matches)
        else:
            if is_local(spath) and not os.path.exists(spath):
                raise InputFileError(f"{spath}: file not found")
            found.append(spath)
    unique = list(dict.fromkeys(found))
    return unique


def select_bands(info: RasterInfo, bands: Sequence[int] | None) -> list[int]:
    """Check a 1-based band selection against a raster; None selects every band.

    Raises:
        InputError: a band index is out of range.
    """
    if bands is None:
        return list(range(1, info.count + 1))
    picked = list(bands)
    if not picked:
        raise InputError("--bands: select at least one band")
    bad = [b for b in picked if b < 1 or b > info.count]
    if bad:
        raise InputError(
            f"{info.path}: band(s) {bad} do not exist; the raster has bands 1..{info.count} "
            "(--bands takes 1-based indices)"
        )
    return picked


def valid_mask(
    ds: rasterio.io.DatasetReader, bands: Sequence[int], window: Window, data: np.ndarray | None
) -> np.ndarray:
    """Boolean mask of pixels valid in every selected band (nodata, internal mask, alpha, NaN).

    Args:
        ds: the open raster.
        bands: 1-based band indices.
        window: the window read.
        data: the pixels already read for that window (bands, rows, cols), to find NaNs.

    Returns:
        A (rows, cols) boolean array, True where the pixel holds data.
    """
    rows, cols = int(window.height), int(window.width)
    flags = [ds.mask_flag_enums[b - 1] for b in bands]
    if all(f == [MaskFlags.all_valid] for f in flags):
        mask = np.ones((rows, cols), dtype=bool)
    elif (
        data is not None and ds.nodata is not None and not np.isnan(ds.nodata)
        and all(f == [MaskFlags.nodata] for f in flags)
    ):
        # The mask GDAL would compute from the nodata value, without decoding the data again
        # (band by band: no (bands, rows, cols) temporary).
        nodata = np.asarray(ds.nodata).astype(data.dtype)
        if nodata == 0 and np.issubdtype(data.dtype, np.unsignedinteger) and len(data) > 1:
            # unsigned with nodata 0: valid in every band where the smallest band is above 0
            # (one pass per band instead of a comparison and an AND: half the time)
            low = np.minimum(data[0], data[1])
            for band in data[2:]:
                np.minimum(low, band, out=low)
            return low != 0
        mask = data[0] != nodata
        other = np.empty_like(mask)
        for band in data[1:]:
            np.not_equal(band, nodata, out=other)
            mask &= other
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NodataShadowWarning)
            masks = ds.read_masks(list(bands), window=window, boundless=False)
        mask = np.all(masks > 0, axis=0)
    if data is not None and np.issubdtype(data.dtype, np.floating):
        mask &= np.all(np.isfinite(data), axis=0)
    return mask
