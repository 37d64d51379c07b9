"""Where the time of ``infer`` goes: the model alone and end to end, alternated in one process.

    python benchmarks/profile_infer.py --size 4096 --rounds 2                     # infer's
    python benchmarks/profile_infer.py --size 4096 --rounds 3 --path inline,split  # alternated

Paths: ``infer`` (``geovision.inference.infer`` with its default thread budget), or ``infer``
with a thread strategy forced: ``inline``, ``split``, ``overlap`` (see
``geovision.inference.threads``).

Each round runs the model alone over the scene's windows (normalized scene in memory, same
batches and threads) and then the end-to-end path, in this one process, so that both see the
same machine load. Reported per run: wall seconds, CPU seconds per thread group (main, pool =
torch's OpenMP and GDAL workers, the pipeline's named threads), seconds threads waited for a
CPU, the pipeline's own stage timings, and the model's calls inside the pipeline (wall and
CPU of the main thread + its workers) against the same calls alone. The machine's load
(``uptime``) is printed with each run: on a shared machine, compare CPU seconds and ratios
within a round, not wall seconds across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _threadclock as tc
import bench_infer

tc.name_os_threads()


class ModelCalls:
    """Wall and model-thread CPU seconds of each model call, wrapped around a function."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.wait = 0.0
        self.calls = 0

    def wrap(self, fn: Any) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            c0, w0 = tc.model_threads(tc.snapshot())
            t0 = time.perf_counter()
            out = fn(*args, **kwargs)
            self.wall += time.perf_counter() - t0
            c1, w1 = tc.model_threads(tc.snapshot())
            self.cpu += c1 - c0
            self.wait += w1 - w0
            self.calls += 1
            return out

        return timed

    def figures(self) -> dict[str, float]:
        return {"calls": self.calls, "wall": round(self.wall, 3), "cpu": round(self.cpu, 3),
                "wait": round(self.wait, 3)}


def usage() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def model_alone(model: str, scene: str, window: int, overlap: float,
                batch: int) -> dict[str, Any]:
    """The model over the scene's windows from memory (as ``bench_infer.case_model``)."""
    import numpy as np
    import rasterio
    import torch

    from geovision.geo.windows import PixelWindow, padded_origins, window_stride
    from geovision.inference.predict import cached_bundle
    from geovision.inference.reader import normalize, read_region
    from geovision.inference.staging import forward

    bundle = cached_bundle(model, "cpu")
    stride = window_stride(window, overlap)
    with rasterio.open(scene) as ds:
        rows = padded_origins(ds.height, window, stride)
        cols = padded_origins(ds.width, window, stride)
        region = PixelWindow(0, 0, rows[-1] + window, cols[-1] + window)
        data, valid = read_region(ds, [1, 2, 3, 4], region)
    pixels = normalize(data, valid, [110.0] * 4, [50.0] * 4)
    del data
    wins = [(r, c) for r in rows for c in cols]
    calls = ModelCalls()
    run = calls.wrap(lambda x: forward(bundle.model, torch.from_numpy(x)))
    from geovision.inference.heap import steady_heap

    cpu0, t0 = usage(), time.perf_counter()
    with tc.Sampler() as threads, steady_heap():  # as the pipeline runs the model
        for i in range(0, len(wins), batch):
            x = np.stack([pixels[:, r:r + window, c:c + window] for r, c in wins[i:i + batch]])
            run(x)
    return {"wall": round(time.perf_counter() - t0, 3), "cpu": round(usage() - cpu0, 3),
            "threads": threads.result, "model_calls": calls.figures(),
            "torch_threads": _torch_threads()}


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def end_to_end(path: str, model: str, scene: str, out: str, window: int, overlap: float,
               batch: int) -> dict[str, Any]:
    """``infer`` with its default budget (``path='infer'``) or thread strategy ``path``."""
    from geovision.inference import api, infer
    from geovision.inference.tasks import segmentation
    from geovision.inference.threads import plan

    calls = ModelCalls()
    original, original_plan = segmentation.forward, api.thread_plan
    segmentation.forward = calls.wrap(original)
    if path != "infer":
        api.thread_plan = lambda device, cores=None: plan(device, cores, path)
    try:
        cpu0, t0 = usage(), time.perf_counter()
        with tc.Sampler() as threads:
            [summary] = infer(model, scene, out, window=window, overlap=overlap,
                              batch_size=batch, overwrite=True, quiet=True)
        wall = time.perf_counter() - t0
    finally:
        segmentation.forward, api.thread_plan = original, original_plan
    return {"wall": round(wall, 3), "cpu": round(usage() - cpu0, 3),
            "threads": threads.result, "model_calls": calls.figures(),
            "timings": summary.timings, "torch_threads": _torch_threads()}


def e2e_share(e2e: dict[str, Any]) -> float:
    """The model's share of the end-to-end wall time."""
    return round(e2e["model_calls"]["wall"] / e2e["wall"], 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-output")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--path", default="infer",
                        help="comma-separated, run in turn: infer, inline, split, overlap")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--base-channels", type=int, default=8)
    a = parser.parse_args()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    work = Path(a.out) / "infer-work"
    work.mkdir(parents=True, exist_ok=True)
    scene = bench_infer.make_scene(work / f"scene-{a.size}", a.size)
    model = bench_infer.make_bundle(work / f"unet{a.base_channels}-{a.window}.pt",
                                    a.base_channels, a.window)
    common = {"model": model, "scene": scene, "window": a.window, "overlap": a.overlap,
              "batch": a.batch_size}
    paths = a.path.split(",")
    runs = []
    model_alone(**common)  # warm up: first calls of oneDNN, GDAL's cache of the scene
    for r in range(a.rounds):
        for path in paths:
            load0 = tc.load()
            alone = model_alone(**common)
            e2e = end_to_end(path, out=str(work / f"profile-{path}"), **common)
            e2e["model_share"] = e2e_share(e2e)
            run = {"round": r, "path": path, "load_before": load0, "load_after": tc.load(),
                   "alone": alone, "end_to_end": e2e,
                   "ratio": round(alone["wall"] / e2e["wall"], 3),
                   "model_inside_vs_alone": round(
                       e2e["model_calls"]["wall"] / alone["model_calls"]["wall"], 3)}
            runs.append(run)
            print(json.dumps(run), flush=True)
    name = a.path.replace(",", "+")
    (Path(a.out) / f"profile-{name}-{a.size}.json").write_text(json.dumps(runs, indent=2))


if __name__ == "__main__":
    main()
