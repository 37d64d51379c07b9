"""Where the CPU seconds of a tiling run go, stage by stage (classic `tile` or `tile_fast`).

By default the run uses Dask's synchronous scheduler, so every task runs in this thread and
the process CPU time (user + sys, every thread: zarr's and numcodecs' helpers included) spent
inside a call is that call's cost. With ``--threads N`` tasks run on N threads as in a real
run, and each call is charged the CPU time of its own thread (right for the one-pass path,
whose tasks do all their work in their thread; zarr's helper threads go uncounted). Stages
are measured by wrapping the functions that do them; nested wrapped calls are subtracted from
their caller. Needs the scene of bench_tile.py.

    python benchmarks/profile_tile.py [--path classic|fast] [--threads N] [--size 8192]
"""

from __future__ import annotations

import argparse
import collections
import functools
import resource
import shutil
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

ACC: collections.Counter[str] = collections.Counter()
_LOCAL = threading.local()
_LOCK = threading.Lock()
_PER_THREAD = [False]


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _clock() -> float:
    return time.thread_time() if _PER_THREAD[0] else cpu()


def timed(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        stack = _LOCAL.__dict__.setdefault("stack", [])
        start = _clock()
        stack.append(0.0)
        try:
            return fn(*args, **kwargs)
        finally:
            spent = _clock() - start
            inner = stack.pop()
            with _LOCK:
                ACC[name] += spent - inner
            if stack:
                stack[-1] += spent
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


def instrument(threads: int) -> None:
    import dask

    import geovision.cluster as cluster
    import geovision.geo.raster as raster
    import geovision.tiling.api as api
    import geovision.tiling.encode as enc
    import geovision.tiling.fastpass as fp
    import geovision.tiling.ordered as ordered
    import geovision.tiling.plan as plan
    import geovision.tiling.spill as spill
    import geovision.tiling.stats as stats
    import geovision.tiling.work as work

    if threads:
        _PER_THREAD[0] = True
    else:
        cluster.dask = SimpleNamespace(  # type: ignore[assignment]
            compute=lambda *t, **k: dask.compute(*t, scheduler="sync"))
    opened = raster.cached_open
    plan.cached_open = lambda p: _Reader(opened(p), "scan")
    work.cached_open = lambda p: _Reader(opened(p), "shard pass")
    for mod in (plan, work):
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
    enc.cached_open = lambda p: _Reader(opened(p), "one pass")
    enc.valid_mask = timed("valid mask", enc.valid_mask)
    enc.encode_block = timed("pass: other python/numpy", enc.encode_block)
    ordered.encode_block = enc.encode_block
    spill.encode_block = enc.encode_block
    enc.burn = timed("labels: rasterize", enc.burn)
    enc.encode_chunk = timed("encode chunks (numcodecs)", enc.encode_chunk)
    enc.class_counts = timed("class counts", enc.class_counts)
    enc.tile_stats = timed("stats", enc.tile_stats)
    enc.save_npz = timed("write: markers", enc.save_npz)
    ordered.save_npz = enc.save_npz
    spill.save_npz = enc.save_npz
    spill.write_all = timed("write: spill files", spill.write_all)
    ordered.write_shard = timed("write: shards", ordered.write_shard)
    spill.write_shard = timed("write: shards", spill.write_shard)
    ordered.merge_results = timed("pass: commit (merge, markers)", ordered.merge_results)
    import geovision.tiling.burn as burn_mod
    burn_mod.SourceLabels.select = timed("labels: geojson + select per task",
                                         burn_mod.SourceLabels.select)
    fp._read_labels = timed("labels: other", fp._read_labels)
    fp._select = timed("plan: selection + splits", fp._select)
    fp._make_arrays = timed("store: create + finish", fp._make_arrays)
    fp._layouts = timed("store: create + finish", fp._layouts)
    fp._plan = timed("plan: blocks", fp._plan)
    fp.summarize = timed("summarize", fp.summarize)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=("classic", "fast", "spill"), default="fast")
    parser.add_argument("--threads", type=int, default=0, help="0: synchronous")
    parser.add_argument("--labels", default=None, help="another label file for the scene")
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--out", default="bench-output")
    a = parser.parse_args()
    instrument(a.threads)
    from bench_tile import make_scene

    from geovision.tiling import TileOptions, tile
    from geovision.tiling.fastpass import tile_fast

    raster, labels = make_scene(Path(a.out) / "work", a.size)
    labels = a.labels or labels
    out = Path(a.out) / "work" / f"profile-{a.path}.zarr"
    shutil.rmtree(out, ignore_errors=True)
    run: Any = tile if a.path == "classic" else functools.partial(
        tile_fast, ordered=None if a.path == "fast" else False)
    start, wall = cpu(), time.perf_counter()
    run([raster], labels, out, TileOptions(class_field="kind", tile_size=256, min_valid=0.0),
        workers=a.threads or 1, overwrite=True, quiet=True)
    total, wall = cpu() - start, time.perf_counter() - wall
    load = Path("/proc/loadavg").read_text().split()[:3]
    how = f"{a.threads} threads" if a.threads else "one thread"
    print(f"{a.path}: {total:.2f} CPU s, {how} (wall {wall:.2f} s; load {' '.join(load)})")
    for name, value in sorted(ACC.items(), key=lambda kv: -kv[1]):
        print(f"  {value:6.2f} s {100 * value / total:5.1f}%  {name}")
    print(f"  {total - sum(ACC.values()):6.2f} s {100 * (total - sum(ACC.values())) / total:5.1f}%"
          "  rest (dask, Python glue)")
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
