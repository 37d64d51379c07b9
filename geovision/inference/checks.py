"""Does a scene fit a model? Bands, value type and resolution against the bundle."""

from __future__ import annotations

import logging
import math

import numpy as np
from pyproj import Transformer

from geovision.errors import InputError
from geovision.geo.raster import RasterInfo
from geovision.models.bundle import Bundle

log = logging.getLogger(__name__)

#: Relative difference in pixel size above which a warning is given.
RESOLUTION_TOLERANCE = 0.05


def scene_bands(bundle: Bundle) -> list[int]:
    """1-based scene bands the model reads, in its order (the bundle's band indices)."""
    return [b.index for b in bundle.bands]


def metric_resolution(info: RasterInfo) -> tuple[float, float]:
    """The scene's pixel size in metres (geographic CRSs: at the scene's centre)."""
    rx, ry = info.res
    if not info.crs.is_geographic:
        factor = info.crs.linear_units_factor[1] if info.crs.linear_units_factor else 1.0
        return rx * factor, ry * factor
    left, bottom, right, top = info.bounds
    lat = math.radians((bottom + top) / 2)
    if info.crs.to_epsg() != 4326:
        tr = Transformer.from_crs(info.crs.to_wkt(), "EPSG:4326", always_xy=True)
        lat = math.radians(tr.transform((left + right) / 2, (bottom + top) / 2)[1])
    return rx * 111_320.0 * math.cos(lat), ry * 110_540.0


def resolution_factor(info: RasterInfo, model_res: list[float] | None) -> float | None:
    """Scene pixel size divided by the model's (x axis), or None when unknown."""
    if not model_res or model_res[0] <= 0:
        return None
    try:
        scene = metric_resolution(info)
    except Exception:  # an exotic CRS: no opinion
        return None
    return scene[0] / float(model_res[0])


def check_scene(info: RasterInfo, bundle: Bundle) -> None:
    """Refuse a scene the model cannot read; warn where it may predict badly.

    Raises:
        InputError: the scene lacks bands the model needs.
    """
    bands = scene_bands(bundle)
    missing = [b for b in bands if b > info.count]
    if missing:
        names = ", ".join(f"{b.index}:{b.name or '?'}" for b in bundle.bands)
        raise InputError(f"{info.path}: has {info.count} band(s) but the model reads "
                         f"{len(bands)} ({names}); give a scene with the bands it was "
                         "trained on")
    trained = {b.dtype for b in bundle.bands if b.dtype}
    if trained and info.dtype not in trained:
        kind = np.dtype(info.dtype).kind
        same_kind = all(np.dtype(t).kind == kind for t in trained)
        log.warning("%s: pixels are %s but the model was trained on %s%s", info.path,
                    info.dtype, "/".join(sorted(trained)),
                    "" if same_kind else "; the value range likely differs, so predictions "
                    "will be wrong unless the scene is rescaled to the training range")
    factor = resolution_factor(info, bundle.resolution)
    if factor is not None and abs(factor - 1.0) > RESOLUTION_TOLERANCE:
        log.warning("%s: pixel size is %.3gx the model's (%.3g vs %.3g m); objects look "
                    "%s than in training; resample the scene to the model's resolution "
                    "(gdalwarp -tr) for best results", info.path, factor,
                    metric_resolution(info)[0], float(bundle.resolution[0]),  # type: ignore[index]
                    "smaller" if factor > 1 else "larger")
