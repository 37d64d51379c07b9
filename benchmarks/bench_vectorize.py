"""Vectorizing a class raster: `geovision vectorize` against one whole-raster polygonization.

A generated N x N uint8 class raster (tiled 512, deflate, 5 classes in smooth regions of
~50-pixel scale with speckle, a nodata corner: many regions cross block edges) is
polygonized two ways, each in its own process so that peak memory is its own:

- geovision: ``vectorize()`` to a GeoPackage (blocks in worker processes, seams stitched,
  attributes computed, features written);
- baseline: the whole raster read into memory and one ``rasterio.features.shapes`` call
  (4-connectivity, nodata masked) consumed into a list, nothing written.

Reported: wall and CPU seconds (the process and its workers), the time ratio, peak RSS (VmHWM
of the process plus, for geovision, of each worker), and the same for a raster 2x wider and
higher (4x the pixels) to show how peak memory grows. The load average says how busy the
shared machine was.

    python benchmarks/bench_vectorize.py [--size 8192] [--out bench-output]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import peak_rss_mb, run_child, write_report  # noqa: E402

CLASSES = 5
CELL = 48


def make_raster(out_dir: Path, size: int, seed: int = 7) -> str:
    """Generate (or reuse) the benchmark class raster, strip by strip."""
    import numpy as np
    import rasterio
    from affine import Affine

    path = out_dir / f"classes-{size}.tif"
    if path.exists():
        return str(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    grid = rng.random((CLASSES, size // CELL + 2, size // CELL + 2), dtype=np.float32)
    xs = np.arange(size) / CELL
    x0 = xs.astype(int)
    fx = (xs - x0).astype(np.float32)
    profile = {"driver": "GTiff", "height": size, "width": size, "count": 1, "dtype": "uint8",
               "crs": "EPSG:32631", "transform": Affine(0.5, 0, 500000.0, 0, -0.5, 5500000.0),
               "nodata": 255, "tiled": True, "blockxsize": 512, "blockysize": 512,
               "compress": "deflate"}
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        for r0 in range(0, size, 512):
            ys = np.arange(r0, min(size, r0 + 512)) / CELL
            y0 = ys.astype(int)
            fy = (ys - y0).astype(np.float32)[:, None]
            top = grid[:, y0][:, :, x0] * (1 - fx) + grid[:, y0][:, :, x0 + 1] * fx
            bot = grid[:, y0 + 1][:, :, x0] * (1 - fx) + grid[:, y0 + 1][:, :, x0 + 1] * fx
            field = top * (1 - fy) + bot * fy
            field += rng.random(field.shape, dtype=np.float32) * 0.02
            classes = field.argmax(0).astype(np.uint8)
            rows = np.arange(r0, r0 + len(ys))[:, None]
            classes[rows + np.arange(size)[None, :] < size // 8] = 255  # nodata corner
            dst.write(classes, 1, window=rasterio.windows.Window(0, r0, size, len(ys)))
    os.replace(tmp, path)
    return str(path)


def _cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def child_geovision(raster: str, out: str, workers: int) -> dict:
    from geovision.geo.polygons import PolygonOptions
    from geovision.geo.vectorize import vectorize

    cpu0, start = _cpu_seconds(), time.perf_counter()
    every_class = tuple(str(c) for c in range(CLASSES))  # the baseline traces them all too
    summary = vectorize(raster, out, PolygonOptions(classes=every_class), workers=workers,
                        overwrite=True)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_s": _cpu_seconds() - cpu0, "features": summary.features,
            "stitched": summary.stitched, "blocks": summary.blocks,
            "block_shape": list(summary.block_shape), "workers": summary.workers,
            "worker_peak_rss_mb": summary.worker_peak_rss_mb}


def child_shapes(raster: str) -> dict:
    import rasterio
    from rasterio.features import shapes

    cpu0, start = _cpu_seconds(), time.perf_counter()
    with rasterio.open(raster) as ds:
        classes = ds.read(1)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    features = list(shapes(classes, mask=classes != 255, connectivity=4))
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "read_s": read_s, "cpu_s": _cpu_seconds() - cpu0,
            "features": len(features)}


def main(out_dir: str = "bench-output", size: int = 8192, memory_scale: bool = True,
         workers: int | None = None) -> dict:
    """Run the benchmark; print the figures and write ``<out_dir>/vectorize.json``."""
    out = Path(out_dir)
    work = out / "work"
    workers = workers or os.cpu_count() or 2
    raster = make_raster(work, size)
    me = str(Path(__file__).resolve())
    load_before = os.getloadavg()
    base = run_child([me, "--child", "shapes", raster])
    ours = run_child([me, "--child", "geovision", raster, str(work / "vectorize.gpkg"),
                      str(workers)])
    ours["peak_rss_total_mb"] = ours["peak_rss_mb"] + ours["worker_peak_rss_mb"]
    report: dict = {
        "raster": {"size": size, "dtype": "uint8", "classes": CLASSES, "tile": 512},
        "workers": workers, "cpus": os.cpu_count(),
        "geovision": ours, "shapes_whole_raster": base,
        "time_ratio": ours["seconds"] / base["seconds"],
        "cpu_ratio": ours["cpu_s"] / base["cpu_s"],
        "features_equal": ours["features"] == base["features"],
    }
    if memory_scale:
        big_raster = make_raster(work, size * 2)
        big = run_child([me, "--child", "geovision", big_raster,
                         str(work / "vectorize-4x.gpkg"), str(workers)])
        big["peak_rss_total_mb"] = big["peak_rss_mb"] + big["worker_peak_rss_mb"]
        report["geovision_4x_pixels"] = big
        report["peak_rss_ratio_4x"] = big["peak_rss_total_mb"] / ours["peak_rss_total_mb"]
        (work / "vectorize-4x.gpkg").unlink(missing_ok=True)
    report["load_average"] = {"before": load_before, "after": os.getloadavg()}
    path = write_report(out, "vectorize", report)
    print(f"vectorize {size}x{size} uint8 classes, {workers} workers, "
          f"load average {load_before[0]:.1f} -> {report['load_average']['after'][0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    print(f"  geovision vectorize : {ours['seconds']:.2f} s wall, {ours['cpu_s']:.2f} s CPU, "
          f"{ours['features']} features ({ours['stitched']} stitched, {ours['blocks']} blocks), "
          f"peak RSS {ours['peak_rss_mb']:.0f} MB + workers "
          f"{ours['worker_peak_rss_mb']:.0f} MB")
    print(f"  whole-raster shapes : {base['seconds']:.2f} s wall (+{base['read_s']:.2f} s read), "
          f"{base['cpu_s']:.2f} s CPU, {base['features']} features, "
          f"peak RSS {base['peak_rss_mb']:.0f} MB")
    print(f"  time ratio          : {report['time_ratio']:.2f}x wall (goal <= 1.5x), "
          f"{report['cpu_ratio']:.2f}x CPU; same feature count: {report['features_equal']}")
    if memory_scale:
        b = report["geovision_4x_pixels"]
        print(f"  4x pixels           : {b['seconds']:.2f} s wall, {b['cpu_s']:.2f} s CPU, "
              f"peak RSS {b['peak_rss_total_mb']:.0f} MB total "
              f"({report['peak_rss_ratio_4x']:.2f}x of the {size}^2 run)")
    print(f"  -> {path}")
    return report


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, args = sys.argv[2], sys.argv[3:]
        if kind == "shapes":
            result = child_shapes(*args)
        else:
            result = child_geovision(args[0], args[1], int(args[2]))
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--out", default="bench-output")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--no-memory-scale", action="store_true")
    a = parser.parse_args()
    main(a.out, a.size, not a.no_memory_scale, a.workers)
