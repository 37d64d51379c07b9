"""Tiling throughput and memory: `geovision tile` against GDAL's own Zarr conversion.

A generated N x N, 4-band uint8 GeoTIFF (tiled 512, deflate, nodata corner) with ~5,000 label
polygons is tiled into 256-pixel segmentation tiles; in the same run GDAL converts the same
raster to Zarr V3 (no labels) with rasterio.shutil.copy. Each job runs in its own process so
that its peak RSS is its own. A second raster 2x wider and higher (4x the pixels) shows how
peak memory changes with scene size.

    python benchmarks/bench_tile.py [--size 8192] [--out bench-output]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import peak_rss_mb, run_child, write_report  # noqa: E402


def make_scene(out_dir: Path, size: int) -> tuple[str, str]:
    """Generate (or reuse) the benchmark raster and its labels."""
    from geovision.synthetic import make_sample

    folder = out_dir / f"tile-scene-{size}"
    raster, labels = folder / "scene.tif", folder / "labels.gpkg"
    if not (raster.exists() and labels.exists()):
        shutil.rmtree(folder, ignore_errors=True)
        scale = (size / 8192) ** 2
        make_sample(folder, size=size, n_regions=round(3000 * scale),
                    n_objects=round(2000 * scale), seed=1)
    return str(raster), str(labels)


def child_geovision(raster: str, labels: str, out: str, workers: int) -> dict:
    from geovision.tiling import TileOptions, tile

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    tile([raster], labels, out, TileOptions(class_field="kind", tile_size=256, min_valid=0.0),
         workers=workers, overwrite=True, quiet=True)
    seconds = time.perf_counter() - start
    import zarr

    n = zarr.open_group(out, mode="r")["image"].shape[0]
    return {"seconds": seconds, "tiles": n}


def child_gdal(raster: str, out: str) -> dict:
    import rasterio
    import rasterio.shutil

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    with rasterio.Env(GDAL_NUM_THREADS="ALL_CPUS"):
        rasterio.shutil.copy(raster, out, driver="Zarr", FORMAT="ZARR_V3", COMPRESS="BLOSC",
                             BLOCKSIZE="256,256", SINGLE_ARRAY="NO")
    return {"seconds": time.perf_counter() - start}


def main(out_dir: str = "bench-output", size: int = 8192, memory_scale: bool = True) -> dict:
    """Run the benchmark; print the figures and write ``<out_dir>/tile.json``."""
    out = Path(out_dir)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    workers = os.cpu_count() or 2
    raster, labels = make_scene(work, size)
    me = str(Path(__file__).resolve())
    gdal = run_child([me, "--child", "gdal", raster, str(work / "gdal.zarr")])
    ours = run_child([me, "--child", "geovision", raster, labels, str(work / "tiles.zarr"),
                      str(workers)])
    mb = size * size * 4 / 1e6
    report = {
        "raster": {"size": size, "bands": 4, "dtype": "uint8", "megabytes": mb},
        "workers": workers,
        "geovision": {**ours, "tiles_per_s": ours["tiles"] / ours["seconds"],
                      "mb_per_s": mb / ours["seconds"]},
        "gdal_zarr": {**gdal, "mb_per_s": mb / gdal["seconds"]},
        "speed_ratio_vs_gdal": gdal["seconds"] / ours["seconds"],
    }
    if memory_scale:
        big_raster, big_labels = make_scene(work, size * 2)
        big = run_child([me, "--child", "geovision", big_raster, big_labels,
                         str(work / "tiles-4x.zarr"), str(workers)])
        report["geovision_4x_pixels"] = big
        report["peak_rss_ratio_4x"] = big["peak_rss_mb"] / ours["peak_rss_mb"]
        shutil.rmtree(work / "tiles-4x.zarr", ignore_errors=True)
    path = write_report(out, "tile", report)
    g = report["geovision"]
    print(f"tile {size}x{size}x4 uint8, 256-px segmentation tiles, {workers} workers")
    print(f"  geovision tile : {g['seconds']:.2f} s, {g['tiles_per_s']:.1f} tiles/s, "
          f"{g['mb_per_s']:.1f} MB/s, peak RSS {g['peak_rss_mb']:.0f} MB")
    print(f"  GDAL -> Zarr   : {gdal['seconds']:.2f} s, {report['gdal_zarr']['mb_per_s']:.1f} "
          f"MB/s, peak RSS {gdal['peak_rss_mb']:.0f} MB (no labels)")
    print(f"  speed vs GDAL  : {report['speed_ratio_vs_gdal']:.2f}x (goal >= 0.7x)")
    if memory_scale:
        print(f"  4x pixels      : peak RSS {report['geovision_4x_pixels']['peak_rss_mb']:.0f} MB "
              f"({report['peak_rss_ratio_4x']:.2f}x of the {size}^2 run)")
    print(f"  -> {path}")
    return report


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, args = sys.argv[2], sys.argv[3:]
        if kind == "gdal":
            result = child_gdal(*args)
        else:
            result = child_geovision(args[0], args[1], args[2], int(args[3]))
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--out", default="bench-output")
    parser.add_argument("--no-memory-scale", action="store_true")
    a = parser.parse_args()
    main(a.out, a.size, not a.no_memory_scale)
