"""Fixtures of the scoring tests: the real Luxembourg sample as a map and its reference."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.features import rasterize

from geovision.formats import CLASS_NODATA as NODATA
from geovision.formats import ClassInfo
from geovision.inference.writers import describe_classes


@dataclass(frozen=True)
class Scene:
    """A class raster on the grid of elev.tif and what it was made from.

    Attributes:
        labels: lux.shp (12 cantons, field NAME_1 holds 3 districts).
        prediction: the class raster written as geovision infer writes it.
        names: class names by value of ``prediction`` (0 background).
        truth: the districts burned on the whole grid at once (value = index in ``names``).
        predicted: the array written (``NODATA`` where elev.tif is nodata).
    """

    labels: Path
    prediction: Path
    crs: CRS
    transform: Affine
    names: dict[int, str]
    truth: np.ndarray
    predicted: np.ndarray


def write_class_raster(path: Path, data: np.ndarray, crs: Any, transform: Affine,
                       names: dict[int, str] | None, nodata: int | None = NODATA) -> Path:
    """A uint8 class raster; with ``names``, they go in its metadata as infer writes them."""
    profile = {"driver": "GTiff", "height": data.shape[0], "width": data.shape[1], "count": 1,
               "dtype": "uint8", "crs": crs, "transform": transform, "nodata": nodata}
    with rasterio.open(path, "w", **profile) as dst:
        if names is not None:
            describe_classes(dst, [ClassInfo(k, v) for k, v in sorted(names.items())])
        dst.write(data, 1)
    return path


def burn_districts(labels: Path, shape: tuple[int, int], transform: Affine,
                   names: dict[int, str], crs: Any = None) -> np.ndarray:
    """NAME_1 burned on a whole grid in one call (pixel-centre rule, file order)."""
    frame = gpd.read_file(labels)
    if crs is not None:
        frame = frame.to_crs(crs)
    value = {n: v for v, n in names.items()}
    return rasterize(zip(frame.geometry, frame["NAME_1"].map(value), strict=True),
                     out_shape=shape, transform=transform, fill=0, dtype="uint8")


def confusion_by_name(reference: np.ndarray, ref_names: dict[int, str], predicted: np.ndarray,
                      pred_names: dict[int, str], scored: np.ndarray,
                      order: list[str]) -> np.ndarray:
    """The confusion matrix (rows reference) of whole arrays, classes in ``order``."""
    index = {n: i for i, n in enumerate(order)}
    k = len(order)
    r = np.array([index[ref_names[int(v)]] for v in reference[scored]], dtype=np.int64)
    p = np.array([index[pred_names[int(v)]] for v in predicted[scored]], dtype=np.int64)
    return np.bincount(r * k + p, minlength=k * k).reshape(k, k)


def lux_map(luxembourg: Path, out: Path) -> Scene:
    """A perturbed district map of Luxembourg: 20% of the pixels get a random class.

    ``luxembourg`` is the real sample's folder (elev.tif, lux.shp); the map is written to
    ``out/lux.class.tif`` on elev.tif's grid, nodata where elev.tif is.
    """
    labels = luxembourg / "lux.shp"
    with rasterio.open(luxembourg / "elev.tif") as ds:
        crs, transform, shape = ds.crs, ds.transform, ds.shape
        valid = ds.read_masks(1) > 0
    names = {0: "background", 1: "Diekirch", 2: "Grevenmacher", 3: "Luxembourg"}
    truth = burn_districts(labels, shape, transform, names)
    rng = np.random.default_rng(0)
    predicted = truth.copy()
    flip = rng.random(shape) < 0.2
    predicted[flip] = rng.integers(0, 4, int(flip.sum()))
    predicted[~valid] = NODATA
    path = write_class_raster(out / "lux.class.tif", predicted, crs, transform, names)
    return Scene(labels, path, crs, transform, names, truth, predicted)
