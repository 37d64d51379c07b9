"""Sliding-window inference benchmark: overhead, memory, and a straightforward baseline.

    python benchmarks/bench_infer.py                      # 4096^2 and 8192^2, today and prototype
    python benchmarks/bench_infer.py --size 4096 --no-memory --paths today
    python benchmarks/bench_infer.py --paths prototype --deflate-level 1

Figures (written to bench-output/infer.json and printed), per path (``today``:
``geovision.inference.infer``; ``prototype``: ``geovision.inference.fastpath.infer_fast``, the
design of issue 15) and per scene size:

1. overhead: end-to-end seconds against the model's own forward pass over the same windows held
   in memory (same batch size and thread count), as a ratio (goal >= 0.85 on a CPU); the
   model's time inside the pipeline against alone (goal within 10%); the model's share of the
   end-to-end wall time.
2. memory: peak RSS (VmHWM of the case's own process) on the scene and on one with 4x the
   pixels (``--size`` and twice it); goal < +15%.
3. baseline: a straightforward implementation (read the whole scene, loop over windows,
   accumulate full-scene arrays, write once) at the first size: speed and peak-memory ratios.

Each case runs in its own process, so peak RSS is that case's alone; a model-only run precedes
each end-to-end run, so that ratios compare runs minutes apart, not a whole benchmark apart. On
a shared machine compare ratios, and read ``load`` (the 1-minute load average before each run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["background", "building", "crop", "forest", "water"]


def peak_rss_mb() -> float:
    """Peak resident set of this process since its exec (see ``_common.peak_rss_mb``)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import peak_rss_mb as peak

    return peak()


def make_scene(path: Path, size: int) -> str:
    from geovision.synthetic import make_sample

    if (path / "scene.tif").exists():
        return str(path / "scene.tif")
    n = max(3, size * size // 2_000_000)
    sample = make_sample(path, size=size, n_regions=n * 4, n_objects=n * 16, seed=0,
                         nodata_corner=0.05)
    return sample.rasters[0]


def make_bundle(path: Path, base_channels: int, window: int) -> str:
    import torch

    from geovision.models.bundle import save_bundle
    from geovision.models.registry import build_model

    if path.exists():
        return str(path)
    torch.manual_seed(0)
    params = {"base_channels": base_channels, "depth": 4}
    model = build_model("segmentation", "unet", in_channels=4, num_classes=len(CLASSES),
                        params=params)
    save_bundle(path, model=model, task="segmentation",
                classes=[{"id": i, "name": n, "color": "#%06x" % (i * 3355443)}
                         for i, n in enumerate(CLASSES)],
                ignore_index=255,
                bands=[{"index": i + 1, "name": f"b{i + 1}", "dtype": "uint8"}
                       for i in range(4)],
                architecture={"name": "unet", "params": params},
                normalization={"mean": [110.0] * 4, "std": [50.0] * 4}, tile_size=window,
                resolution=[10.0, 10.0], train={})
    return str(path)


# --- cases (each in a subprocess) ---------------------------------------------------------

def case_infer(model: str, scene: str, out: str, window: int, overlap: float,
               batch: int) -> dict:
    from geovision.inference import infer

    t0 = time.perf_counter()
    [summary] = infer(model, scene, out, window=window, overlap=overlap, batch_size=batch,
                      overwrite=True, quiet=True)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "megapixels": summary["megapixels"],
            "windows": summary["windows"], "timings": summary["timings"]}


def case_prototype(model: str, scene: str, out: str, window: int, overlap: float, batch: int,
                   strategy: str | None = None, deflate_level: int = 6) -> dict:
    """The prototype of issue 15 (``fastpath.infer_fast``) on the scene."""
    from geovision.inference.fastpath import infer_fast

    t0 = time.perf_counter()
    summary = infer_fast(model, scene, out, window=window, overlap=overlap, batch_size=batch,
                         strategy=strategy, deflate_level=deflate_level)
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "megapixels": summary["megapixels"],
            "windows": summary["windows"], "timings": summary["timings"],
            "threads": summary["threads"]}


def case_model(model: str, scene: str, window: int, overlap: float, batch: int) -> dict:
    """The model alone over the same windows, from a normalized scene held in memory."""
    import numpy as np
    import rasterio

    from geovision.geo.windows import PixelWindow, padded_origins, window_stride
    from geovision.inference.predict import cached_bundle
    from geovision.inference.reader import normalize, read_region
    from geovision.inference.tasks import for_task

    bundle = cached_bundle(model, "cpu")
    stride = window_stride(window, overlap)
    with rasterio.open(scene) as ds:
        h, w = ds.height, ds.width
        rows, cols = padded_origins(h, window, stride), padded_origins(w, window, stride)
        region = PixelWindow(0, 0, rows[-1] + window, cols[-1] + window)
        data, valid = read_region(ds, [1, 2, 3, 4], region)
    pixels = normalize(data, valid, [110.0] * 4, [50.0] * 4)
    del data
    wins = [(r, c) for r in rows for c in cols]
    t0 = time.perf_counter()
    for i in range(0, len(wins), batch):
        x = np.stack([pixels[:, r:r + window, c:c + window] for r, c in wins[i:i + batch]])
        for_task("segmentation").predict(bundle.model, x, "cpu")
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "megapixels": h * w / 1e6, "windows": len(wins)}


def case_naive(model: str, scene: str, out: str, window: int, overlap: float,
               batch: int) -> dict:
    """Read everything, loop over windows, accumulate full-scene arrays, write once."""
    import numpy as np
    import rasterio
    import torch

    from geovision.geo.windows import padded_origins, window_stride
    from geovision.models.bundle import load_bundle

    t0 = time.perf_counter()
    bundle = load_bundle(model)
    with rasterio.open(scene) as ds:
        profile = ds.profile
        x = ds.read().astype(np.float32)
        valid = ds.read_masks(1) > 0
    x = (x - 110.0) / 50.0
    k, (_, h, w) = len(bundle.classes), x.shape
    stride = window_stride(window, overlap)
    pad_h = padded_origins(h, window, stride)[-1] + window - h
    pad_w = padded_origins(w, window, stride)[-1] + window - w
    x = np.pad(x, ((0, 0), (0, pad_h), (0, pad_w)), mode="reflect")
    acc = np.zeros((k, h + pad_h, w + pad_w), np.float32)
    weight = np.zeros((h + pad_h, w + pad_w), np.float32)
    wins = [(r, c) for r in padded_origins(h, window, stride)
            for c in padded_origins(w, window, stride)]
    with torch.inference_mode():
        for i in range(0, len(wins), batch):
            chunk = wins[i:i + batch]
            xb = torch.from_numpy(np.stack([x[:, r:r + window, c:c + window] for r, c in chunk]))
            probs = torch.softmax(bundle.model(xb), 1).numpy()
            for (r, c), p in zip(chunk, probs, strict=True):
                acc[:, r:r + window, c:c + window] += p
                weight[r:r + window, c:c + window] += 1
    probs = acc[:, :h, :w] / weight[:h, :w]
    classes = np.argmax(probs, 0).astype(np.uint8)
    classes[~valid] = 255
    profile.update(count=1, dtype="uint8", nodata=255, compress="deflate")
    Path(out).mkdir(parents=True, exist_ok=True)
    with rasterio.open(Path(out) / "naive.class.tif", "w", **profile) as dst:
        dst.write(classes, 1)
    compact = np.rint(probs * 254).astype(np.uint8)
    compact[:, ~valid] = 255
    profile.update(count=k)
    with rasterio.open(Path(out) / "naive.prob.tif", "w", **profile) as dst:
        dst.write(compact)
    return {"seconds": time.perf_counter() - t0, "megapixels": h * w / 1e6,
            "windows": len(wins)}


def run_case(case: str, **kwargs: object) -> dict:
    """Run one case in a fresh process; return its figures with its peak RSS."""
    here = str(Path(__file__).parent)
    code = (f"import json, sys; sys.path.insert(0, {here!r}); import bench_infer as b; "
            f"r = b.case_{case}(**json.loads(sys.argv[1])); r['peak_rss_mb'] = b.peak_rss_mb(); "
            "print('RESULT ' + json.dumps(r))")
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(kwargs)], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


PATHS = {"today": "infer", "prototype": "prototype"}


def _path_case(path: str, scene: str, out: Path, common: dict, strategy: str | None,
               deflate_level: int) -> dict:
    if path == "today":
        return run_case("infer", scene=scene, out=str(out), **common)
    return run_case("prototype", scene=scene, out=str(out), strategy=strategy,
                    deflate_level=deflate_level, **common)


def main(out_dir: str = "bench-output", size: int = 4096, window: int = 512,
         overlap: float = 0.25, batch_size: int = 4, base_channels: int = 8,
         memory: bool = True, paths: tuple[str, ...] = ("today", "prototype"),
         strategy: str | None = None, deflate_level: int = 6, baseline: bool = True) -> dict:
    """Run every case and write ``<out_dir>/infer.json``; return the figures."""
    out = Path(out_dir)
    work = out / "infer-work"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sizes = [size, 2 * size] if memory else [size]
    scenes = {n: make_scene(work / f"scene-{n}", n) for n in sizes}
    model = make_bundle(work / f"unet{base_channels}-{window}.pt", base_channels, window)
    print(f"scenes {', '.join(f'{n}x{n}' for n in sizes)} x4 uint8 ready in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    common = {"model": model, "window": window, "overlap": overlap, "batch": batch_size}
    results: dict = {"scene": {"sizes": sizes, "bands": 4, "dtype": "uint8"},
                     "model": {"name": "unet", "base_channels": base_channels, "depth": 4},
                     "window": window, "overlap": overlap, "batch_size": batch_size,
                     "threads": os.cpu_count(), "device": "cpu", "paths": list(paths),
                     "strategy": strategy, "deflate_level": deflate_level, "runs": {}}
    for n in sizes:
        for path in paths:
            load = os.getloadavg()[0]
            alone = run_case("model", scene=scenes[n], **common)
            e2e = _path_case(path, scenes[n], work / f"out-{path}-{n}", common, strategy,
                             deflate_level)
            inside = e2e["timings"]["model"]
            run = {"load": round(load, 2), "model_only": alone, "end_to_end": e2e,
                   "ratio": alone["seconds"] / e2e["seconds"],
                   "model_inside_vs_alone": inside / alone["seconds"],
                   "model_share": inside / e2e["seconds"]}
            results["runs"][f"{path}-{n}"] = run
            print(f"{n}^2 {path}: end to end {e2e['seconds']:.1f} s, model only "
                  f"{alone['seconds']:.1f} s -> {run['ratio']:.2f}x (goal >= 0.85); model "
                  f"inside {inside:.1f} s = {run['model_inside_vs_alone']:.2f}x alone "
                  f"(goal <= 1.10), {100 * run['model_share']:.0f}% of the wall time; peak "
                  f"{e2e['peak_rss_mb']:.0f} MB (load {load:.1f})", flush=True)
    if memory:
        results["memory"] = {}
        for path in paths:
            small = results["runs"][f"{path}-{size}"]["end_to_end"]["peak_rss_mb"]
            big = results["runs"][f"{path}-{2 * size}"]["end_to_end"]["peak_rss_mb"]
            results["memory"][path] = {"peak_rss_mb": {str(size): small, str(2 * size): big},
                                       "increase": big / small - 1.0, "goal": "< 0.15"}
            print(f"memory, {path}: peak RSS {small:.0f} MB ({size}^2) vs {big:.0f} MB "
                  f"({2 * size}^2): {100 * (big / small - 1):+.1f}% (goal < +15%)", flush=True)
    if baseline:
        naive = run_case("naive", scene=scenes[size], out=str(work / "naive"), **common)
        first = results["runs"][f"{paths[0]}-{size}"]["end_to_end"]
        results["baseline"] = {
            "path": paths[0], "naive_mp_s": size * size / 1e6 / naive["seconds"],
            "speed_ratio": naive["seconds"] / first["seconds"],
            "peak_rss_mb": {paths[0]: first["peak_rss_mb"], "naive": naive["peak_rss_mb"]},
            "memory_ratio": naive["peak_rss_mb"] / first["peak_rss_mb"], "naive": naive}
        b = results["baseline"]
        print(f"baseline: naive {b['naive_mp_s']:.3f} MP/s, {naive['peak_rss_mb']:.0f} MB; "
              f"{paths[0]} is {b['speed_ratio']:.2f}x as fast with "
              f"{1 / b['memory_ratio']:.2f}x the peak memory")
    (out / "infer.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-output")
    parser.add_argument("--size", type=int, default=4096,
                        help="scene side in pixels (the memory case doubles it)")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--base-channels", type=int, default=8,
                        help="U-Net width (32 is the registry default; 8 keeps CPU runs short)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 4x larger scene")
    parser.add_argument("--paths", default="today,prototype",
                        help="comma-separated: today (infer), prototype (issue 15's design)")
    parser.add_argument("--strategy", default=None, choices=["inline", "split", "overlap"],
                        help="the prototype's thread strategy (default: the device's)")
    parser.add_argument("--deflate-level", type=int, default=6,
                        help="the prototype's DEFLATE level (6: as today)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    a = parser.parse_args()
    wanted = tuple(p for p in a.paths.split(",") if p)
    unknown = sorted(set(wanted) - set(PATHS))
    if unknown:
        parser.error(f"--paths: unknown {', '.join(unknown)}; choose from {', '.join(PATHS)}")
    main(a.out, a.size, a.window, a.overlap, a.batch_size, a.base_channels, not a.no_memory,
         wanted, a.strategy, a.deflate_level, not a.no_baseline)
