"""Inference on a scene with a rotated footprint: windows without data skipped, or all run.

    python benchmarks/empty_windows.py [--size 4096] [--angle 13] [--rounds 2]

The benchmark's scene (``bench_infer``) is masked to a square footprint rotated by ``angle``
degrees whose corners touch the scene's edges, as a Landsat scene's (30% nodata at 13
degrees), and ``infer`` runs on it with the segmentation task's ``skips_empty`` on and off,
alternated in one process (one untimed run first). Prints the end-to-end and model seconds
of each; the outputs are the same bits either way (``tests/inference/test_empty_windows.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def footprint(src: Path, dst: Path, angle: float) -> float:
    """Write ``src`` masked to a rotated square footprint (nodata 0); return the nodata share."""
    import rasterio

    with rasterio.open(src) as ds:
        profile, pixels = ds.profile, ds.read()
    h, w = pixels.shape[1:]
    y, x = np.mgrid[:h, :w].astype(np.float64)
    y, x = y - h / 2, x - w / 2
    t = np.deg2rad(angle)
    u, v = x * np.cos(t) + y * np.sin(t), y * np.cos(t) - x * np.sin(t)
    half = (w / 2) / (np.cos(t) + np.sin(t))  # the footprint's corners on the scene's edges
    inside = (np.abs(u) < half) & (np.abs(v) < half)
    pixels[:, ~inside] = 0
    profile.update(nodata=0)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(pixels)
    return float(1 - inside.mean())


def main() -> None:
    """Make the scene, run both ways, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-output")
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--angle", type=float, default=13.0)
    parser.add_argument("--rounds", type=int, default=2)
    a = parser.parse_args()
    import bench_infer

    from geovision.inference import infer
    from geovision.inference.tasks.segmentation import Segmentation

    work = Path(a.out).resolve() / "infer-work"
    scene = Path(bench_infer.make_scene(work / f"scene-{a.size}", a.size))
    model = bench_infer.make_bundle(work / "unet8-512.pt", 8, 512)
    masked = work / f"footprint-{a.size}.tif"
    share = footprint(scene, masked, a.angle)
    print(f"{a.size}^2 scene, footprint rotated {a.angle:g} degrees: {100 * share:.0f}% nodata")
    kwargs = {"window": 512, "overlap": 0.25, "batch_size": 4, "overwrite": True,
              "quiet": True}
    infer(model, masked, work / "footprint-out", **kwargs)
    for _ in range(a.rounds):
        for skip in (True, False):
            Segmentation.skips_empty = skip
            t0 = time.perf_counter()
            [summary] = infer(model, masked, work / "footprint-out", **kwargs)
            seconds = time.perf_counter() - t0
            print(f"  {'skipping empty windows' if skip else 'every window          '}: "
                  f"{seconds:.2f} s end to end, model {summary.timings['model']:.2f} s",
                  flush=True)
    Segmentation.skips_empty = True


if __name__ == "__main__":
    main()
