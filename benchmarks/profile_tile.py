"""Where the CPU seconds of a tiling run go, stage by stage (`tile`, ordered or spill pass).

By default the run uses Dask's synchronous scheduler, so every task runs in this thread and
the process CPU time (user + sys, every thread: zarr's and numcodecs' helpers included) spent
inside a call is that call's cost. With ``--threads N`` tasks run on N threads as in a real
run, and each call is charged the CPU time of its own thread (right for the pass, whose tasks
do all their work in their thread; zarr's helper threads go uncounted). Stages
are measured by wrapping the functions that do them; nested wrapped calls are subtracted from
their caller. Needs the scene of bench_tile.py.

    python benchmarks/profile_tile.py [--path ordered|spill] [--threads N] [--size 8192]
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
    import geovision.tiling.burn as burn_mod
    import geovision.tiling.encode as enc
    import geovision.tiling.labels as labels_mod
    import geovision.tiling.ordered as ordered
    import geovision.tiling.spill as spill

    if threads:
        _PER_THREAD[0] = True
    else:
        cluster.dask = SimpleNamespace(  # type: ignore[assignment]
            compute=lambda *t, **k: dask.compute(*t, scheduler="sync"))
    opened = raster.cached_open
    labels_mod.read_labels = timed("labels: read", labels_mod.read_labels)
    labels_mod.place_labels = timed("labels: reproject", labels_mod.place_labels)
    labels_mod.read_placed = timed("labels: other (trees)", labels_mod.read_placed)
    api.read_placed = labels_mod.read_placed
    api.commit_store = timed("store: create + finish", api.commit_store)
    api.open_raster = timed("open rasters", api.open_raster)
    enc.cached_open = lambda p: _Reader(opened(p), "one pass")
    enc.valid_mask = timed("valid mask", enc.valid_mask)
    enc.encode_block = timed("pass: other python/numpy", enc.encode_block)
    ordered.encode_block = enc.encode_block
    spill.encode_block = enc.encode_block
    enc.burn_counted = timed("labels: rasterize", enc.burn_counted)
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
    burn_mod.SourceLabels.select = timed("labels: geojson + select per block",
                                         burn_mod.SourceLabels.select)
    api._select = timed("plan: selection + splits", api._select)
    api._make_arrays = timed("store: create + finish", api._make_arrays)
    api._layouts = timed("store: create + finish", api._layouts)
    api._plan = timed("plan: blocks", api._plan)
    api.summarize = timed("summarize", api.summarize)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", choices=("ordered", "spill"), default="ordered",
                        help="ordered: the pass chosen for local runs; spill: the cluster's")
    parser.add_argument("--threads", type=int, default=0, help="0: synchronous")
    parser.add_argument("--labels", default=None, help="another label file for the scene")
    parser.add_argument("--size", type=int, default=8192)
    parser.add_argument("--out", default="bench-output")
    a = parser.parse_args()
    instrument(a.threads)
    from bench_tile import make_scene

    from geovision.tiling import TileOptions, tile

    raster, labels = make_scene(Path(a.out) / "work", a.size)
    labels = a.labels or labels
    out = Path(a.out) / "work" / f"profile-{a.path}.zarr"
    shutil.rmtree(out, ignore_errors=True)
    run: Any = functools.partial(tile, ordered=None if a.path == "ordered" else False)
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
