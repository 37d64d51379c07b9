"""Synthetic scenes: georeferenced rasters and matching vector labels with known answers.

Used by the tests, the demo and the benchmarks. The labels are drawn first, as vectors in a
projected CRS; each raster is then rendered from those vectors on its own grid (any CRS, size,
band count and dtype), so every class is visible in the pixels and a model can learn it:

- ``water``, ``forest`` and ``crop`` regions: large blobs, each with its own spectral signature;
- ``building`` objects: small bright rectangles, usable as detection targets.

Rendering is block by block, so scenes far larger than memory can be written.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize
from rasterio.warp import transform_bounds
from rasterio.windows import Window

#: Class names of the synthetic labels, in the order their ids are given (sorted).
KINDS = ("building", "crop", "forest", "water")
REGION_KINDS = ("crop", "forest", "water")
#: Mean reflectance-like value (0..255 scale) of background and of each kind, 4 bands.
SIGNATURES = {
    "background": (120.0, 110.0, 95.0, 110.0),
    "building": (230.0, 225.0, 220.0, 190.0),
    "crop": (70.0, 150.0, 60.0, 210.0),
    "forest": (40.0, 80.0, 45.0, 150.0),
    "water": (110.0, 70.0, 35.0, 15.0),
}
#: Projected CRS the labels are drawn in, and the origin of the drawing (UTM 33N, Austria).
LABEL_CRS = "EPSG:32633"
ORIGIN = (500_000.0, 5_300_000.0)


@dataclass(frozen=True)
class Sample:
    """Paths of a generated sample: rasters, all labels, and detection objects only."""

    rasters: tuple[str, ...]
    labels: str
    objects: str


def make_labels(
    width_m: float,
    height_m: float,
    *,
    n_regions: int | None = None,
    n_objects: int | None = None,
    object_size_m: tuple[float, float] = (60.0, 160.0),
    seed: int = 0,
) -> gpd.GeoDataFrame:
    """Draw random label polygons over an area west-north of :data:`ORIGIN`.

    Args:
        width_m: extent east-west in metres.
        height_m: extent north-south in metres.
        n_regions: blobs of crop, forest and water (default: one per ~0.6 km²).
        n_objects: building rectangles (default: one per ~0.3 km²).
        object_size_m: range of a building's side length in metres.
        seed: random seed; the same seed draws the same labels.

    Returns:
        Regions then objects, with a ``kind`` field, in :data:`LABEL_CRS`.
    """
    rng = np.random.default_rng(seed)
    area_km2 = width_m * height_m / 1e6
    if n_regions is None:
        n_regions = max(3, round(area_km2 / 0.6))
    if n_objects is None:
        n_objects = max(3, round(area_km2 / 0.3))
    x0, y1 = ORIGIN
    y0 = y1 - height_m
    kinds: list[str] = []
    geoms: list[shapely.Geometry] = []
    scale = math.sqrt(width_m * height_m / max(n_regions, 1))
    for i in range(n_regions):
        cx, cy = x0 + rng.uniform(0, width_m), y0 + rng.uniform(0, height_m)
        radius = scale * rng.uniform(0.25, 0.6)
        blob = shapely.Point(cx, cy).buffer(radius, quad_segs=8)
        blob = shapely.affinity.scale(blob, rng.uniform(0.6, 1.4), rng.uniform(0.6, 1.4))
        blob = shapely.affinity.rotate(blob, rng.uniform(0, 180))
        geoms.append(blob)
        kinds.append(REGION_KINDS[i % len(REGION_KINDS)])
    lo, hi = object_size_m
    for _ in range(n_objects):
        w, h = rng.uniform(lo, hi, size=2)
        cx = x0 + rng.uniform(w, width_m - w)
        cy = y0 + rng.uniform(h, height_m - h)
        geoms.append(shapely.box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        kinds.append("building")
    return gpd.GeoDataFrame({"kind": kinds}, geometry=geoms, crs=LABEL_CRS)


def class_signature(kind: str, bands: int) -> np.ndarray:
    """Per-band mean of a kind on the 0..255 scale, for any band count."""
    base = np.array(SIGNATURES[kind], dtype=np.float64)
    if bands <= len(base):
        return base[:bands]
    seed = sum(ord(c) for c in kind)
    extra = np.random.default_rng(seed).uniform(20, 235, size=bands - len(base))
    return np.concatenate([base, extra])


def dtype_scale(dtype: str) -> tuple[float, float]:
    """Scale and offset that map the 0..255 rendering into a dtype's usual range."""
    return {
        "uint8": (1.0, 0.0),
        "uint16": (40.0, 0.0),
        "int16": (20.0, -1000.0),
        "uint32": (40.0, 0.0),
        "int32": (20.0, -1000.0),
        "float32": (1 / 255.0, 0.0),
        "float64": (1 / 255.0, 0.0),
    }[dtype]


def default_nodata(dtype: str) -> float:
    """Nodata value used for generated rasters of a dtype."""
    return {"uint8": 0, "uint16": 0, "uint32": 0}.get(dtype, -9999.0)


def render_scene(
    path: str | os.PathLike[str],
    labels: gpd.GeoDataFrame,
    *,
    crs: str | CRS,
    transform: Affine,
    width: int,
    height: int,
    bands: int = 4,
    dtype: str = "uint8",
    nodata: float | None = 0.0,
    nodata_corner: float = 0.15,
    noise: float = 10.0,
    seed: int = 0,
    block: int = 1024,
) -> str:
    """Render a GeoTIFF from label polygons, block by block.

    Pixels get the signature of the kind covering them (background elsewhere; later features
    cover earlier ones, as in a burn) plus Gaussian noise. With ``nodata`` set, a triangle in the
    top-left corner (a fraction ``nodata_corner`` of the diagonal) holds the nodata value, and
    valid pixels never equal it.

    Returns:
        The path written (tiled 512, deflate, with the band descriptions set).
    """
    crs = CRS.from_user_input(crs)
    local = labels.to_crs(crs.to_wkt())
    kind_ids = {k: i for i, k in enumerate(("background", *KINDS))}
    shapes = list(zip(local.geometry.values, [kind_ids[k] for k in local["kind"]], strict=True))
    tree = shapely.STRtree(local.geometry.values)
    table = np.stack(
        [class_signature(k, bands) for k in ("background", *KINDS)]
    )  # (kinds, bands)
    scale, offset = dtype_scale(dtype)
    np_dtype = np.dtype(dtype)
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": bands, "dtype": dtype,
        "crs": crs, "transform": transform, "nodata": nodata, "tiled": True,
        "blockxsize": 512, "blockysize": 512, "compress": "deflate",
        "interleave": "pixel", "photometric": "MINISBLACK",
    }
    if width < 512 or height < 512:
        profile.update(tiled=False, blockxsize=None, blockysize=None)
        profile = {k: v for k, v in profile.items() if v is not None}
    if np_dtype.kind in "iu":
        info = np.iinfo(np_dtype)
        lo_val, hi_val = float(info.min), float(info.max)
    else:
        lo_val, hi_val = -np.inf, np.inf
    names = ["blue", "green", "red", "nir"] + [f"band{i}" for i in range(5, bands + 1)]
    path = str(path)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", **profile) as dst:
        for i in range(bands):
            dst.set_band_description(i + 1, names[i])
        for r in range(0, height, block):
            for c in range(0, width, block):
                win = Window(c, r, min(block, width - c), min(block, height - r))
                h, w = int(win.height), int(win.width)
                wt = transform @ Affine.translation(c, r)
                bx0, by0 = wt @ (0, 0)
                bx1, by1 = wt @ (w, h)
                hits = tree.query(shapely.box(min(bx0, bx1), min(by0, by1),
                                              max(bx0, bx1), max(by0, by1)))
                picked = [shapes[j] for j in sorted(hits)]
                if picked:
                    kinds = rasterize(picked, out_shape=(h, w), transform=wt, fill=0,
                                      dtype="uint8")
                else:
                    kinds = np.zeros((h, w), dtype=np.uint8)
                rng = np.random.default_rng([seed, r, c])
                values = table[kinds].transpose(2, 0, 1)  # (bands, h, w)
                values = values + rng.normal(0.0, noise, size=values.shape)
                values = values * scale + offset
                if np_dtype.kind in "iu":
                    values = np.rint(values)
                    floor = lo_val if nodata is None or nodata != lo_val else lo_val + 1
                    values = np.clip(values, floor, hi_val)
                    if nodata is not None:
                        values[values == nodata] = nodata + 1
                out = values.astype(np_dtype)
                if nodata is not None and nodata_corner > 0:
                    rows = np.arange(r, r + h)[:, None]
                    cols = np.arange(c, c + w)[None, :]
                    corner = rows / height + cols / width < 2 * nodata_corner
                    out[:, corner] = nodata
                dst.write(out, window=win)
    return path


def grid_for(
    bounds: tuple[float, float, float, float], crs: str | CRS, width: int, height: int
) -> Affine:
    """A north-up affine mapping a width x height grid onto bounds in a CRS."""
    left, bottom, right, top = transform_bounds(LABEL_CRS, crs, *bounds)
    return Affine((right - left) / width, 0.0, left, 0.0, -(top - bottom) / height, top)


def make_sample(
    out_dir: str | os.PathLike[str],
    *,
    size: int | tuple[int, int] = 512,
    crss: Sequence[str] = ("EPSG:32633",),
    res: float = 10.0,
    bands: int = 4,
    dtype: str = "uint8",
    nodata: float | str | None = "auto",
    labels_crs: str = "EPSG:4326",
    seed: int = 0,
    n_regions: int | None = None,
    n_objects: int | None = None,
    nodata_corner: float = 0.15,
    stem: str = "scene",
) -> Sample:
    """Generate labels and one raster per CRS in ``crss`` over neighbouring areas.

    The label area is ``len(crss)`` scenes wide; raster ``i`` covers strip ``i`` of it, on a
    grid in ``crss[i]`` of ``size`` pixels (about ``res`` metres each). Labels are written as
    GeoPackages in ``labels_crs``: ``labels.gpkg`` (every kind) and ``objects.gpkg``
    (buildings only, for detection).

    Returns:
        The paths written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    w, h = (size, size) if isinstance(size, int) else size
    strip_w, strip_h = w * res, h * res
    labels = make_labels(strip_w * len(crss), strip_h, n_regions=n_regions,
                         n_objects=n_objects, seed=seed)
    if nodata == "auto":
        nodata = default_nodata(dtype)
    rasters = []
    x0, y1 = ORIGIN
    for i, crs in enumerate(crss):
        bounds = (x0 + i * strip_w, y1 - strip_h, x0 + (i + 1) * strip_w, y1)
        transform = grid_for(bounds, crs, w, h)
        name = f"{stem}.tif" if len(crss) == 1 else f"{stem}_{i + 1}.tif"
        rasters.append(render_scene(
            out / name, labels, crs=crs, transform=transform, width=w, height=h, bands=bands,
            dtype=dtype, nodata=nodata if isinstance(nodata, (int, float)) else None,
            nodata_corner=nodata_corner, seed=seed + i,
        ))
    written = labels.to_crs(labels_crs)
    labels_path = out / "labels.gpkg"
    objects_path = out / "objects.gpkg"
    for p in (labels_path, objects_path):
        if p.exists():
            p.unlink()
    written.to_file(labels_path, layer="landcover", driver="GPKG", engine="pyogrio")
    written[written["kind"] == "building"].reset_index(drop=True).to_file(
        objects_path, layer="objects", driver="GPKG", engine="pyogrio")
    return Sample(rasters=tuple(rasters), labels=str(labels_path), objects=str(objects_path))


def is_complete(out_dir: str | os.PathLike[str]) -> bool:
    """True when ``out_dir`` holds a whole sample (its label files are written last)."""
    folder = Path(out_dir)
    return (folder / "labels.gpkg").exists() and (folder / "objects.gpkg").exists()
