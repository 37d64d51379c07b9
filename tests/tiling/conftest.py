from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import rasterio
from rasterio.features import rasterize


def _full_mask(raster: str, labels: str, field: str | None = "kind", layer=None) -> np.ndarray:
    """The reference answer: labels rasterized on the whole raster, nodata -> 255."""
    frame = gpd.read_file(labels, layer=layer)
    with rasterio.open(raster) as ds:
        local = frame.to_crs(ds.crs.to_wkt())
        if field is None:
            ids = np.ones(len(local), dtype=int)
        else:
            names = sorted(set(local[field].astype(str)))
            ids = local[field].astype(str).map({n: i + 1 for i, n in enumerate(names)}).to_numpy()
        shapes = zip(local.geometry, ids.tolist(), strict=True)
        mask = rasterize(shapes, out_shape=(ds.height, ds.width), transform=ds.transform,
                         fill=0, dtype="uint8")
        valid = ds.dataset_mask() > 0
    mask[~valid] = 255
    return mask


@pytest.fixture(scope="session")
def full_mask():
    """The reference rasterize, as a function (see ``_full_mask``)."""
    return _full_mask
