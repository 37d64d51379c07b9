"""Whole-scene scoring throughput and memory: `geovision.evaluation.score` of a class raster.

A generated N x N uint8 class raster (EPSG:32633, 10 m, tiled 512, deflate; the synthetic
label polygons burned with 10% of the pixels changed at random) is scored against the same
labels (~3,000 polygons per 8192^2) with the default options (1,024-pixel windows, 256-pixel
bootstrap blocks, 1,000 replicates). Each run is its own process, so its peak RSS is its own;
a second raster 2x wider and higher (4x the pixels) shows how peak memory changes with scene
size.

    python benchmarks/bench_score.py [--size 8192] [--out bench-output]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import peak_rss_mb, run_child, write_report  # noqa: E402


def make_scene(out_dir: Path, size: int) -> tuple[str, str]:
    """Generate (or reuse) the class raster and its labels, tile by tile."""
    import numpy as np
    import rasterio
    import shapely
    from affine import Affine
    from rasterio.features import rasterize

    from geovision.formats import ClassInfo
    from geovision.inference.writers import describe_classes
    from geovision.synthetic import KINDS, ORIGIN, make_labels

    folder = out_dir / f"score-scene-{size}"
    raster, labels = folder / "scene.class.tif", folder / "labels.gpkg"
    if raster.exists() and labels.exists():
        return str(raster), str(labels)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    scale = (size / 8192) ** 2
    frame = make_labels(size * 10.0, size * 10.0, n_regions=round(1500 * scale),
                        n_objects=round(1500 * scale), seed=1)
    frame.to_file(labels)
    names = ["background", *KINDS]
    ids = {n: i for i, n in enumerate(names)}
    transform = Affine(10.0, 0, ORIGIN[0], 0, -10.0, ORIGIN[1])
    geoms = np.asarray(frame.geometry.values)
    values = np.array([ids[k] for k in frame["kind"]])
    tree = shapely.STRtree(geoms)
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "width": size, "height": size, "count": 1, "dtype": "uint8",
               "crs": "EPSG:32633", "transform": transform, "nodata": 255, "tiled": True,
               "blockxsize": 512, "blockysize": 512, "compress": "deflate"}
    with rasterio.open(raster, "w", **profile) as dst:
        describe_classes(dst, [ClassInfo(i, n) for i, n in enumerate(names)])
        for r in range(0, size, 512):
            for c in range(0, size, 512):
                win = rasterio.windows.Window(c, r, 512, 512)
                wt = dst.window_transform(win)
                hits = np.sort(tree.query(shapely.box(*rasterio.windows.bounds(win,
                                                                               transform))))
                block = (rasterize(zip(geoms[hits], values[hits].tolist(), strict=True),
                                   out_shape=(512, 512), transform=wt, fill=0, dtype="uint8")
                         if len(hits) else np.zeros((512, 512), np.uint8))
                noise = rng.random((512, 512)) < 0.1
                block[noise] = rng.integers(0, len(names), int(noise.sum()))
                dst.write(block, 1, window=win)
    return str(raster), str(labels)


def child(raster: str, labels: str, out: str) -> dict:
    from geovision.evaluation import ScoreOptions, score

    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    result = score(raster, labels, out, ScoreOptions(class_field="kind"))
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return {"seconds": time.perf_counter() - start,
            "cpu_s": (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime),
            "pixels": result.document["pixels"],
            "overall_accuracy": result.document["overall_accuracy"],
            "blocks": result.document["area_adjusted"]["bootstrap"]["blocks"]}


def main(out_dir: str = "bench-output", size: int = 8192, memory_scale: bool = True) -> dict:
    """Run the benchmark; print the figures and write ``<out_dir>/score.json``."""
    out = Path(out_dir)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    me = str(Path(__file__).resolve())
    raster, labels = make_scene(work, size)
    ours = run_child([me, "--child", raster, labels, str(work / "score")])
    report = {"raster": {"size": size, "dtype": "uint8", "classes": 5},
              "score": {**ours, "megapixels_per_cpu_s": ours["pixels"] / 1e6 / ours["cpu_s"]}}
    if memory_scale:
        big_raster, big_labels = make_scene(work, size * 2)
        big = run_child([me, "--child", big_raster, big_labels, str(work / "score-4x")])
        report["score_4x_pixels"] = big
        report["peak_rss_ratio_4x"] = big["peak_rss_mb"] / ours["peak_rss_mb"]
    path = write_report(out, "score", report)
    s = report["score"]
    print(f"score {size}x{size} uint8 class raster, {s['blocks']} bootstrap blocks")
    print(f"  score          : {s['seconds']:.2f} s wall, {s['cpu_s']:.2f} s CPU, "
          f"{s['megapixels_per_cpu_s']:.1f} MP per CPU s, peak RSS {s['peak_rss_mb']:.0f} MB")
    if memory_scale:
        b = report["score_4x_pixels"]
        print(f"  4x pixels      : {b['cpu_s']:.2f} s CPU, peak RSS {b['peak_rss_mb']:.0f} MB "
              f"({report['peak_rss_ratio_4x']:.2f}x of the {size}^2 run)")
    print(f"  -> {path}")
    return report


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        result = child(*sys.argv[2:5])
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--out", default="bench-output")
    parser.add_argument("--no-memory-scale", action="store_true")
    a = parser.parse_args()
    main(a.out, a.size, not a.no_memory_scale)
