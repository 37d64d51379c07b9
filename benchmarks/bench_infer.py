"""Sliding-window inference benchmark: overhead, memory, and a straightforward baseline.

    python benchmarks/bench_infer.py                 # 8192 x 8192 x 4 uint8 (and 16384^2)
    python benchmarks/bench_infer.py --size 2048     # a quick run

Figures (written to bench-output/infer.json and printed):

1. overhead: end-to-end megapixels/s of ``geovision.inference.infer`` (read, model, blend,
   write, COG) against the model's own forward pass over the same windows held in memory
   (same batch size and thread count); goal >= 0.85.
2. memory: peak RSS of ``infer`` on the scene and on one with 4x the pixels; goal < +15%.
3. baseline: a straightforward implementation (read the whole scene, loop over windows,
   accumulate full-scene arrays, write once): speed and peak-memory ratios.

Each case runs in its own process, so peak RSS is that case's alone.
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


def main(out_dir: str = "bench-output", size: int = 8192, window: int = 512,
         overlap: float = 0.25, batch_size: int = 4, base_channels: int = 8,
         memory: bool = True) -> dict:
    """Run every case and write ``<out_dir>/infer.json``; return the figures."""
    out = Path(out_dir)
    work = out / "infer-work"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    scene = make_scene(work / f"scene-{size}", size)
    model = make_bundle(work / f"unet{base_channels}-{window}.pt", base_channels, window)
    print(f"scene {size}x{size}x4 uint8 ready in {time.perf_counter() - t0:.0f} s",
          flush=True)
    common = {"model": model, "window": window, "overlap": overlap, "batch": batch_size}
    results: dict = {"scene": {"size": size, "bands": 4, "dtype": "uint8"},
                     "model": {"name": "unet", "base_channels": base_channels, "depth": 4},
                     "window": window, "overlap": overlap, "batch_size": batch_size,
                     "threads": os.cpu_count(), "device": "cpu"}
    model_only = run_case("model", scene=scene, **common)
    print(f"model only: {model_only['seconds']:.1f} s", flush=True)
    e2e = run_case("infer", scene=scene, out=str(work / "out"), **common)
    print(f"end to end: {e2e['seconds']:.1f} s", flush=True)
    naive = run_case("naive", scene=scene, out=str(work / "naive"), **common)
    print(f"naive: {naive['seconds']:.1f} s", flush=True)
    mp = e2e["megapixels"]
    results["overhead"] = {
        "model_only_mp_s": mp / model_only["seconds"], "end_to_end_mp_s": mp / e2e["seconds"],
        "ratio": model_only["seconds"] / e2e["seconds"], "goal": ">= 0.85",
        "model_only": model_only, "end_to_end": e2e}
    results["baseline"] = {
        "naive_mp_s": mp / naive["seconds"], "speed_ratio": naive["seconds"] / e2e["seconds"],
        "peak_rss_mb": {"geovision": e2e["peak_rss_mb"], "naive": naive["peak_rss_mb"]},
        "memory_ratio": naive["peak_rss_mb"] / e2e["peak_rss_mb"], "naive": naive}
    if memory:
        big_scene = make_scene(work / f"scene-{2 * size}", 2 * size)
        big = run_case("infer", scene=big_scene, out=str(work / "out-big"), **common)
        print(f"end to end, 4x pixels: {big['seconds']:.1f} s", flush=True)
        results["memory"] = {
            "peak_rss_mb": {f"{size}": e2e["peak_rss_mb"], f"{2 * size}": big["peak_rss_mb"]},
            "increase": big["peak_rss_mb"] / e2e["peak_rss_mb"] - 1.0, "goal": "< 0.15",
            "big": big}
    (out / "infer.json").write_text(json.dumps(results, indent=2))
    o, b = results["overhead"], results["baseline"]
    print(f"1. overhead: end-to-end {o['end_to_end_mp_s']:.3f} MP/s vs model-only "
          f"{o['model_only_mp_s']:.3f} MP/s -> {o['ratio']:.2f}x (goal >= 0.85)")
    if memory:
        m = results["memory"]
        print(f"2. memory: peak RSS {e2e['peak_rss_mb']:.0f} MB ({size}^2) vs "
              f"{m['peak_rss_mb'][str(2 * size)]:.0f} MB ({2 * size}^2): "
              f"{100 * m['increase']:+.1f}% (goal < +15%)")
    print(f"3. baseline: naive {b['naive_mp_s']:.3f} MP/s, {naive['peak_rss_mb']:.0f} MB; "
          f"geovision is {b['speed_ratio']:.2f}x as fast with {1 / b['memory_ratio']:.2f}x "
          "the peak memory")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-output")
    parser.add_argument("--size", type=int, default=8192, help="scene side in pixels")
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--base-channels", type=int, default=8,
                        help="U-Net width (32 is the registry default; 8 keeps CPU runs short)")
    parser.add_argument("--no-memory", action="store_true", help="skip the 4x larger scene")
    a = parser.parse_args()
    main(a.out, a.size, a.window, a.overlap, a.batch_size, a.base_channels, not a.no_memory)
