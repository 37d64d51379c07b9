"""Reading a multi-file scene through its VRT vs reading the band files one by one.

Four uint16 band files (three 10 m bands of ``--size`` pixels, one 20 m band of half that,
tiled 256 and deflate-compressed, as Sentinel-2 COGs are) are read in 256 x 256 windows over
the whole scene, three ways, timed in CPU seconds (user + sys of this process, best of
``--rounds``) so that other load on the machine weighs little:

* ``vrt``: the scene :func:`geovision.geo.scenes.stack_scene` makes (VRT XML text opened by
  rasterio), every band in one ``read``;
* ``files``: each 10 m file read at the window, the 20 m file read at the half-size window
  and resampled by rasterio (``out_shape``): what one would write by hand;
* ``multiband``: one 4-band pixel-interleaved GeoTIFF holding the same pixels (resampled
  beforehand): the floor.

for nearest, bilinear and average resampling.

    python benchmarks/bench_vrt.py [--size 2048] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_report

WINDOW = 256


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _best(fn: Any, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = _cpu()
        fn()
        best = min(best, _cpu() - start)
    return best


def main(out_dir: str = "bench-output", size: int = 2048, rounds: int = 2) -> dict[str, Any]:
    from geovision.geo.scenes import stack_scene

    work = Path(tempfile.mkdtemp(prefix="gv-bench-vrt-"))
    rng = np.random.default_rng(0)
    profile = {"driver": "GTiff", "crs": "EPSG:32633", "dtype": "uint16", "count": 1,
               "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
    files = []
    for name, res, n in (("B02", 10, size), ("B03", 10, size), ("B04", 10, size),
                         ("B08", 20, size // 2)):
        path = work / f"{name}.tif"
        with rasterio.open(path, "w", width=n, height=n,
                           transform=Affine(res, 0, 5e5, 0, -res, 5.3e6), **profile) as dst:
            dst.write(rng.integers(0, 10_000, (1, n, n)).astype("uint16"))
        files.append(str(path))
    windows = [Window(c, r, WINDOW, WINDOW) for r in range(0, size, WINDOW)
               for c in range(0, size, WINDOW)]
    report: dict[str, Any] = {"size": size, "windows": len(windows), "window": WINDOW,
                              "cpu_s": {}}
    try:
        for rs in ("nearest", "bilinear", "average"):
            scene = stack_scene(files, resampling=rs)
            multi = work / f"multi-{rs}.tif"
            with rasterio.open(scene.path) as vrt, rasterio.open(
                    multi, "w", **{**profile, "count": 4, "width": size, "height": size,
                                   "transform": vrt.transform, "interleave": "pixel"}) as dst:
                dst.write(vrt.read())

            def read_vrt(path: str = scene.path) -> None:
                with rasterio.open(path) as ds:
                    for w in windows:
                        ds.read(window=w)

            def read_files(method: str = rs) -> None:
                handles = [rasterio.open(f) for f in files]
                for w in windows:
                    for h in handles[:3]:
                        h.read(1, window=w)
                    half = Window(w.col_off / 2, w.row_off / 2, WINDOW / 2, WINDOW / 2)
                    handles[3].read(1, window=half, out_shape=(WINDOW, WINDOW),
                                    resampling=Resampling[method])
                for h in handles:
                    h.close()

            def read_multi(path: Path = multi) -> None:
                with rasterio.open(path) as ds:
                    for w in windows:
                        ds.read(window=w)

            report["cpu_s"][rs] = {name: round(_best(fn, rounds), 3) for name, fn in (
                ("vrt", read_vrt), ("files", read_files), ("multiband", read_multi))}
            print(f"{rs:9s} " + "  ".join(f"{k} {v:.3f} s" for k, v in
                                          report["cpu_s"][rs].items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    write_report(out_dir, "vrt", report)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-output")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(json.dumps(main(args.out, args.size, args.rounds)))
