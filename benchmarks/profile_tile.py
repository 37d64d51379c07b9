"""Where the CPU seconds of a tiling run go, stage by stage (classic `tile` or `tile_fast`).

The run uses Dask's synchronous scheduler, so every task runs in this thread and the process
CPU time (user + sys, every thread: zarr's and numcodecs' helpers included) spent inside a
call is that call's cost. Stages are measured by wrapping the functions that do them;
nested wrapped calls are subtracted from their caller. Needs the scene of bench_tile.py.

    python benchmarks/profile_tile.py [--path classic|fast] [--size 8192] [--out bench-output]
"""

from __future__ import annotations

import argparse
import collections
import functools
import resource
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ACC: collections.Counter[str] = collections.Counter()
_STACK: list[float] = []


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def timed(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = cpu()
        _STACK.append(0.0)
        try:
            return fn(*args, **kwargs)
        finally:
            spent = cpu() - start
            inner = _STACK.pop()
            ACC[name] += spent - inner
            if _STACK:
                _STACK[-1] += spent
    return wrapper


class _Reader:
    """A dataset whose reads are timed under ``tag``."""

    def __init__(self, ds: Any, tag: str) -> None:
        self._ds, self._tag = ds, tag

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ds, name)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        return timed(f"decode: GDAL read ({self._tag})", self._ds.read)(*args, **kwargs)

    def read_masks(self, *args: Any, **kwargs: Any) -> Any:
        return timed(f"decode: GDAL read_masks ({self._tag})", self._ds.read_masks)(
            *args, **kwargs)


def instrument() -> None:
    import dask

    import geovision.cluster as cluster
    import geovision.geo.raster as raster
    import geovision.tiling.api as api
    import geovision.tiling.fastpass as fp
    import geovision.tiling.onepass as op
    import geovision.tiling.plan as plan
    import geovision.tiling.stats as stats
    import geovision.tiling.work as work

    cluster.dask = SimpleNamespace(  # type: ignore[assignment]
        compute=lambda *t, **k: dask.compute(*t, scheduler="sync"))
    opened = raster.cached_open
    plan.cached_open = lambda p: _Reader(opened(p), "scan")
    work.cached_open = lambda p: _Reader(opened(p), "shard pass")
    op.cached_open = lambda p: _Reader(opened(p), "one pass")
    for mod in (plan, work, op):
        mod.valid_mask = timed("valid mask", mod.valid_mask)
    stats.BandStats.of = timed("stats", stats.BandStats.of)
    stats.BandStats.merge = timed("stats", stats.BandStats.merge)
    # classic path
    plan._valid_fractions = timed("scan: other python/numpy", plan._valid_fractions)
    work.build_shard = timed("shard pass: other python/numpy", work.build_shard)
    work._burn = timed("labels: rasterize", work._burn)
    work.open_group = timed("zarr: open group", work.open_group)
    import zarr.core.array as za
    za.Array.__setitem__ = timed("zarr: encode + write", za.Array.__setitem__)
    api._features = timed("labels: geojson + select per task", api._features)
    api._plan = timed("plan: split + scan graph", api._plan)
    api.create_store = timed("store: create + finish", api.create_store)
    api._summarize = timed("summarize markers", api._summarize)
    # both
    for mod in (api, fp):
        mod.read_labels = timed("labels: read", mod.read_labels)
        mod._place_labels = timed("labels: reproject + tree", mod._place_labels)
        mod.finish_store = timed("store: create + finish", mod.finish_store)
        mod.open_raster = timed("open rasters", mod.open_raster)
    # one-pass path
    fp.run_block = timed("pass: other python/numpy", fp.run_block)
    op.burn = timed("labels: rasterize", op.burn)
    op.encode_chunk = timed("encode chunks (numcodecs)", op.encode_chunk)
    op.class_counts = timed("class counts", op.class_counts)
    op._write_atomic = timed("write: spill files", op._write_atomic)
    op._save_marker = timed("write: markers", op._save_marker)
    fp.run_shards = timed("shards: read spill + other", fp.run_shards)
    op.write_shard = timed("write: shards", op.write_shard)
    op._shard_marker = timed("shards: stats replay + markers", op._shard_marker)
    fp._block_jobs = timed("labels: geojson + select per task", fp._block_jobs)
    fp._select = timed("plan: selection + splits", fp._select)
    fp._make_arrays = timed("store: create + finish", fp._make_arrays)
    fp._layouts = timed("store: create + finish", fp._layouts)
    fp._summarize = timed("summarize markers", fp._summarize)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=("classic", "fast"), default="fast")
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--out", default="bench-output")
    a = parser.parse_args()
    instrument()
    from bench_tile import make_scene

    from geovision.tiling import TileOptions, tile
    from geovision.tiling.fastpass import tile_fast

    raster, labels = make_scene(Path(a.out) / "work", a.size)
    out = Path(a.out) / "work" / f"profile-{a.path}.zarr"
    shutil.rmtree(out, ignore_errors=True)
    run = tile if a.path == "classic" else tile_fast
    start, wall = cpu(), time.perf_counter()
    run([raster], labels, out, TileOptions(class_field="kind", tile_size=256, min_valid=0.0),
        workers=1, overwrite=True, quiet=True)
    total, wall = cpu() - start, time.perf_counter() - wall
    load = Path("/proc/loadavg").read_text().split()[:3]
    print(f"{a.path}: {total:.2f} CPU s in one thread (wall {wall:.2f} s; load {' '.join(load)})")
    for name, value in sorted(ACC.items(), key=lambda kv: -kv[1]):
        print(f"  {value:6.2f} s {100 * value / total:5.1f}%  {name}")
    print(f"  {total - sum(ACC.values()):6.2f} s {100 * (total - sum(ACC.values())) / total:5.1f}%"
          "  rest (dask, Python glue)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
