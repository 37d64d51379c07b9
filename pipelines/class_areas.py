"""Area of each class of a class raster, as CSV: an example of a job's `command` step.

    python class_areas.py predictions/scene.class.tif areas.csv

Reads the raster block by block; pixels equal to the raster's nodata are left out. Class
names come from the raster's `classes` tag (written by `geovision infer`). Areas are in the
units of the raster's CRS, squared (m² for a projected CRS in metres).
"""

from __future__ import annotations

import csv
import json
import sys

import numpy as np
import rasterio


def main(raster: str, out: str) -> None:
    """Count the pixels of each class and write ``class_id,class,pixels,area``."""
    counts = np.zeros(256, dtype=np.int64)
    with rasterio.open(raster) as ds:
        names = {int(c["id"]): c["name"] for c in json.loads(ds.tags().get("classes", "[]"))}
        pixel = abs(ds.transform.a * ds.transform.e - ds.transform.b * ds.transform.d)
        for _, window in ds.block_windows(1):
            block = ds.read(1, window=window)
            if ds.nodata is not None:
                block = block[block != ds.nodata]
            counts += np.bincount(block.ravel().astype(np.int64), minlength=256)[:256]
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class_id", "class", "pixels", "area"])
        for value in np.flatnonzero(counts):
            writer.writerow([int(value), names.get(int(value), ""), int(counts[value]),
                             float(counts[value] * pixel)])
    print(f"{out}: {int(np.count_nonzero(counts))} classes, {int(counts.sum())} pixels")


if __name__ == "__main__":
    main(*sys.argv[1:3])
