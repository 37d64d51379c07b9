"""Sliding-window inference benchmark: end to end against the model alone, memory, a baseline.

    python benchmarks/bench_infer.py                          # 4096^2 and 8192^2 (make bench)
    python benchmarks/bench_infer.py --size 4096 --no-memory --runs 3
    python benchmarks/bench_infer.py --before /path/to/other/checkout   # before/after
    python benchmarks/bench_infer.py --device cuda --base-channels 64    # on a GPU

Figures (written to bench-output/infer.json and printed), per scene size and run:

1. overhead: ``geovision.inference.infer`` end to end against the model's own forward pass
   over the same windows held in memory (same batch size, torch's default threads, the
   model prepared and its memory kept as ``infer`` does; ``--plain-model`` also times it
   as a plain script would, with the allocator's defaults), as a ratio
   (goal >= 0.85 on a CPU); the model's time inside the pipeline against alone (goal within
   10%); the model's share of the end-to-end wall time; wall and CPU seconds (user + sys of
   the case's process and its threads) of both.
2. memory: peak RSS (VmHWM of the case's own process) on the scene and on one with 4x the
   pixels (``--size`` and twice it); goal < +15%.
3. baseline: a straightforward implementation (read the whole scene, loop over windows,
   accumulate full-scene arrays, write once) at the first size: speed and peak-memory ratios.

``--device cuda`` runs both on a GPU (goal >= 0.95): the model alone copies each batch to the
device, one batch first untimed (the kernels' loading), and waits for the device at the end;
both cases create the CUDA context before their clock starts (``infer``'s own model loading
and first pass are timed).
``--before DIR`` also runs ``infer`` from another checkout's code (``PYTHONPATH=DIR``; e.g.
the main branch) right after this checkout's, against the same model-only run, for
before/after figures in one run.
Each case runs in its own process, so peak RSS is that case's alone; a model-only run precedes
each end-to-end run, so that ratios compare runs minutes apart, not a whole benchmark apart.
Dirty pages are flushed (``sync``) before each case, so that no case pays for the writing of
the one before. ``make bench`` does two such rounds per size and reports each, and then the
best time of each side (``best of 2``: the model alone's and ``infer``'s fastest runs, the
model's time inside that ``infer`` run), as the tiling benchmark takes the best of its runs:
on this shared 2-core machine a single run of either side was seen up to 60% slower than the
other runs of the same hour, whichever side it fell on. On a shared machine compare ratios
and CPU seconds, and read ``load`` (the 1-minute load average before each run).
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

def cpu_seconds() -> float:
    """User + system CPU seconds of this process (all its threads) so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def start_device(device: str) -> None:
    """Create the CUDA context (process start-up, like importing torch) for a CUDA device."""
    import torch

    if device.startswith("cuda"):
        torch.zeros(1, device=device)
        torch.cuda.synchronize(device)


def case_infer(model: str, scene: str, out: str, window: int, overlap: float,
               batch: int, device: str = "cpu") -> dict:
    """``geovision.inference.infer`` on the scene (whichever checkout is on the path)."""
    import geovision
    from geovision.inference import infer

    start_device(device)
    c0, t0 = cpu_seconds(), time.perf_counter()
    [summary] = infer(model, scene, out, window=window, overlap=overlap, batch_size=batch,
                      overwrite=True, quiet=True, device=device)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    record = summary if isinstance(summary, dict) else summary.to_json()
    return {"seconds": seconds, "cpu_s": cpu, "code": str(Path(geovision.__file__).parents[1]),
            "megapixels": record["megapixels"],
            "windows": record["windows"], "timings": record["timings"]}


def case_model(model: str, scene: str, window: int, overlap: float, batch: int,
               plain: bool = False, device: str = "cpu") -> dict:
    """The model alone over the same windows, from a normalized scene held in memory.

    As ``infer`` runs it (the bundle prepared by ``cached_bundle``, glibc keeping freed
    memory: :mod:`geovision.inference.heap`), unless ``plain``: then as a plain script
    would, with the allocator's defaults (every batch faults its activations in again).
    """
    import numpy as np
    import rasterio
    import torch

    from geovision.geo.windows import PixelWindow, padded_origins, window_stride
    from geovision.inference.predict import cached_bundle
    from geovision.inference.reader import normalize, read_region
    from geovision.inference.threads import available_cores

    # torch's default team follows OMP_NUM_THREADS, which a Dask LocalCluster earlier in the
    # same `make bench` sets to 1 in os.environ: run on every core, as infer's budget does
    torch.set_num_threads(available_cores())
    start_device(device)
    cuda = device.startswith("cuda")
    net = cached_bundle(model, device).model
    stride = window_stride(window, overlap)
    with rasterio.open(scene) as ds:
        h, w = ds.height, ds.width
        rows, cols = padded_origins(h, window, stride), padded_origins(w, window, stride)
        region = PixelWindow(0, 0, rows[-1] + window, cols[-1] + window)
        data, valid = read_region(ds, [1, 2, 3, 4], region)
    pixels = normalize(data, valid, [110.0] * 4, [50.0] * 4)
    del data
    wins = [(r, c) for r in rows for c in cols]
    from contextlib import nullcontext

    from geovision.inference.heap import steady_heap

    def batches(first: int, last: int) -> None:
        for i in range(first, last, batch):
            x = np.stack([pixels[:, r:r + window, c:c + window] for r, c in wins[i:i + batch]])
            torch.softmax(net(torch.from_numpy(x).to(device)).float(), dim=1)

    if cuda:
        with torch.inference_mode():
            batches(0, batch)
        torch.cuda.synchronize(device)
    c0, t0 = cpu_seconds(), time.perf_counter()
    with torch.inference_mode(), nullcontext() if plain else steady_heap():
        batches(0, len(wins))
        if cuda:
            torch.cuda.synchronize(device)
    return {"seconds": time.perf_counter() - t0, "cpu_s": cpu_seconds() - c0,
            "megapixels": h * w / 1e6, "windows": len(wins)}


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


def run_case(case: str, code: str | None = None, **kwargs: object) -> dict:
    """Run one case in a fresh process; return its figures with its peak RSS.

    ``code``: a checkout whose ``geovision`` the case imports (None: this one).
    """
    here = str(Path(__file__).parent)
    script = (f"import json, sys; sys.path.insert(0, {here!r}); import bench_infer as b; "
              f"r = b.case_{case}(**json.loads(sys.argv[1])); "
              "r['peak_rss_mb'] = b.peak_rss_mb(); print('RESULT ' + json.dumps(r))")
    os.sync()  # the last case's files are written out before this one's clock starts
    env, cwd = dict(os.environ), ROOT
    if code is not None:  # another checkout's code (``-c`` puts the cwd first on the path),
        cwd = Path(code).resolve()  # without writing its bytecode
        env.update(PYTHONPATH=str(cwd), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(kwargs)], cwd=cwd,
                          capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"case {case} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(out_dir: str = "bench-output", size: int = 4096, window: int = 512,
         overlap: float = 0.25, batch_size: int = 4, base_channels: int = 8,
         memory: bool = True, runs: int = 2, before: str | None = None,
         baseline: bool = True, plain_model: bool = False, device: str = "cpu") -> dict:
    """Run every case and write ``<out_dir>/infer.json``; return the figures."""
    out = Path(out_dir).resolve()
    work = out / "infer-work"
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    sizes = [size, 2 * size] if memory else [size]
    scenes = {n: make_scene(work / f"scene-{n}", n) for n in sizes}
    model = make_bundle(work / f"unet{base_channels}-{window}.pt", base_channels, window)
    print(f"scenes {', '.join(f'{n}x{n}' for n in sizes)} x4 uint8 ready in "
          f"{time.perf_counter() - t0:.0f} s", flush=True)
    common = {"model": model, "window": window, "overlap": overlap, "batch": batch_size,
              "device": device}
    paths = {"infer": None, **({"before": before} if before else {})}
    results: dict = {"scene": {"sizes": sizes, "bands": 4, "dtype": "uint8"},
                     "model": {"name": "unet", "base_channels": base_channels, "depth": 4},
                     "window": window, "overlap": overlap, "batch_size": batch_size,
                     "threads": os.cpu_count(), "device": device, "before": before,
                     "runs": {}}
    goal = 0.95 if device.startswith("cuda") else 0.85
    for n in sizes:
        for k in range(runs):
            alone = run_case("model", scene=scenes[n], **common)  # one for both paths
            for path, code in paths.items():
                load = os.getloadavg()[0]
                e2e = run_case("infer", code, scene=scenes[n], out=str(work / f"out-{n}"),
                               **common)
                inside = e2e["timings"]["model"]
                run = {"load": round(load, 2), "model_only": alone, "end_to_end": e2e,
                       "ratio": alone["seconds"] / e2e["seconds"],
                       "cpu_ratio": alone["cpu_s"] / e2e["cpu_s"],
                       "model_inside_vs_alone": inside / alone["seconds"],
                       "model_share": inside / e2e["seconds"]}
                if plain_model:
                    plain = run_case("model", scene=scenes[n], plain=True, **common)
                    run["model_plain"] = plain
                    run["ratio_vs_plain"] = plain["seconds"] / e2e["seconds"]
                results["runs"][f"{path}-{n}-{k + 1}"] = run
                print(f"{n}^2 {path} run {k + 1}: end to end {e2e['seconds']:.1f} s wall "
                      f"{e2e['cpu_s']:.1f} s CPU, model only {alone['seconds']:.1f} s wall "
                      f"{alone['cpu_s']:.1f} s CPU -> {run['ratio']:.2f}x wall, "
                      f"{run['cpu_ratio']:.2f}x CPU (goal >= {goal}); model inside "
                      f"{inside:.1f} s = {run['model_inside_vs_alone']:.2f}x alone (goal <= "
                      f"1.10), {100 * run['model_share']:.0f}% of the wall time; peak "
                      f"{e2e['peak_rss_mb']:.0f} MB (load {load:.1f})", flush=True)
                if plain_model:
                    print(f"  model alone as a plain script (allocator defaults): "
                          f"{plain['seconds']:.1f} s wall {plain['cpu_s']:.1f} s CPU -> "
                          f"{run['ratio_vs_plain']:.2f}x", flush=True)
        if runs > 1:
            for path in paths:
                these = [results["runs"][f"{path}-{n}-{k + 1}"] for k in range(runs)]
                alone_s = min(r["model_only"]["seconds"] for r in these)
                fastest = min(these, key=lambda r: r["end_to_end"]["seconds"])
                e2e_s = fastest["end_to_end"]["seconds"]
                inside = fastest["end_to_end"]["timings"]["model"]
                best = {"model_only_s": alone_s, "end_to_end_s": e2e_s,
                        "ratio": alone_s / e2e_s, "model_inside_vs_alone": inside / alone_s}
                results.setdefault("best", {})[f"{path}-{n}"] = best
                print(f"{n}^2 {path} best of {runs}: end to end {e2e_s:.2f} s, model only "
                      f"{alone_s:.2f} s -> {best['ratio']:.2f}x (goal >= {goal}); model "
                      f"inside {inside:.2f} s = {best['model_inside_vs_alone']:.2f}x alone "
                      "(goal <= 1.10)", flush=True)
    if memory:
        small = results["runs"][f"infer-{size}-1"]["end_to_end"]["peak_rss_mb"]
        big = results["runs"][f"infer-{2 * size}-1"]["end_to_end"]["peak_rss_mb"]
        results["memory"] = {"peak_rss_mb": {str(size): small, str(2 * size): big},
                             "increase": big / small - 1.0, "goal": "< 0.15"}
        print(f"memory: peak RSS {small:.0f} MB ({size}^2) vs {big:.0f} MB ({2 * size}^2): "
              f"{100 * (big / small - 1):+.1f}% (goal < +15%)", flush=True)
    if baseline:
        naive = run_case("naive", scene=scenes[size], out=str(work / "naive"),
                         **{k: v for k, v in common.items() if k != "device"})
        first = results["runs"][f"infer-{size}-1"]["end_to_end"]
        results["baseline"] = {
            "naive_mp_s": size * size / 1e6 / naive["seconds"],
            "speed_ratio": naive["seconds"] / first["seconds"],
            "peak_rss_mb": {"infer": first["peak_rss_mb"], "naive": naive["peak_rss_mb"]},
            "memory_ratio": naive["peak_rss_mb"] / first["peak_rss_mb"], "naive": naive}
        b = results["baseline"]
        print(f"baseline: naive {b['naive_mp_s']:.3f} MP/s, {naive['peak_rss_mb']:.0f} MB; "
              f"infer is {b['speed_ratio']:.2f}x as fast with "
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
    parser.add_argument("--runs", type=int, default=2,
                        help="runs of each size (more than one: also the best of them)")
    parser.add_argument("--before", default=None,
                        help="another checkout whose infer also runs (before/after figures)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the naive baseline")
    parser.add_argument("--plain-model", action="store_true",
                        help="also time the model alone with the allocator's defaults")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    a = parser.parse_args()
    main(a.out, a.size, a.window, a.overlap, a.batch_size, a.base_channels, not a.no_memory,
         a.runs, a.before, not a.no_baseline, a.plain_model, a.device)
