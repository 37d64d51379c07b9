"""Inference over many scenes: one local process against a LocalCluster of 2 x 1-thread workers.

Eight generated scenes, the compact U-Net (random weights: speed does not depend on them),
window 256, overlap 0.25, CPU. The local run is `geovision infer` in one process (torch using
every core, reading, model and writing overlapped); the cluster run sends the same scenes to a
`distributed.LocalCluster` of 2 worker processes with 1 thread each, through `--scheduler`.
Reports the speedup and how many times each worker loaded the model (must be 1).

    python benchmarks/bench_cluster.py [--scenes 8] [--size 1024] [--out bench-output]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import write_report  # noqa: E402


def _bundle(path: Path) -> Path:
    import torch

    from geovision.models.bundle import save_bundle
    from geovision.models.registry import build_model

    torch.manual_seed(0)
    params = {"base_channels": 16, "depth": 3}
    model = build_model("segmentation", "unet", in_channels=4, num_classes=5, params=params)
    classes = [{"id": i, "name": n, "color": "#808080"} for i, n in enumerate(
        ["background", "building", "crop", "forest", "water"])]
    return save_bundle(path, model=model, task="segmentation", classes=classes,
                       ignore_index=255,
                       bands=[{"index": i, "name": f"b{i}", "dtype": "uint8"}
                              for i in (1, 2, 3, 4)],
                       architecture={"name": "unet", "params": params},
                       normalization={"mean": [110.0] * 4, "std": [50.0] * 4},
                       tile_size=256, resolution=[10.0, 10.0], train={"epochs": 0})


def main(out_dir: str = "bench-output", n_scenes: int = 8, size: int = 1024) -> dict:
    """Run the benchmark; print the figures and write ``<out_dir>/cluster.json``."""
    from distributed import Client, LocalCluster

    from geovision.inference import infer
    from geovision.inference.predict import bundle_loads
    from geovision.synthetic import make_sample

    work = Path(out_dir) / "work" / f"cluster-{n_scenes}x{size}"
    work.mkdir(parents=True, exist_ok=True)
    scenes = []
    for i in range(n_scenes):
        path = work / "scenes" / f"scene{i}.tif"
        if not path.exists():
            make_sample(work / "scenes" / f"s{i}", size=size, seed=100 + i, stem=f"scene{i}")
            shutil.move(work / "scenes" / f"s{i}" / f"scene{i}.tif", path)
        scenes.append(str(path))
    model = _bundle(work / "model.pt")
    opts = {"window": 256, "overlap": 0.25, "batch_size": 4, "probabilities": True}

    # Warm both sides up on one scene first (imports, model load, first-call kernel set-up),
    # so the figures compare steady throughput.
    shutil.rmtree(work / "warm", ignore_errors=True)
    infer(model, scenes[:1], work / "warm", quiet=True, **opts)
    shutil.rmtree(work / "local", ignore_errors=True)
    t0 = time.perf_counter()
    infer(model, scenes, work / "local", quiet=True, **opts)
    local_s = time.perf_counter() - t0

    shutil.rmtree(work / "cluster", ignore_errors=True)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        shutil.rmtree(work / "warm", ignore_errors=True)
        infer(model, scenes[:2], work / "warm", scheduler=cluster.scheduler_address,
              quiet=True, **opts)
        t0 = time.perf_counter()
        infer(model, scenes, work / "cluster", scheduler=cluster.scheduler_address,
              quiet=True, **opts)
        cluster_s = time.perf_counter() - t0
        loads = client.run(bundle_loads)
    megapixels = n_scenes * size * size / 1e6
    report = {
        "scenes": n_scenes, "size": size, "megapixels": megapixels, "options": opts,
        "model": {"name": "unet", "base_channels": 16, "depth": 3},
        "local_single_process": {"seconds": local_s, "mp_per_s": megapixels / local_s},
        "local_cluster_2x1": {"seconds": cluster_s, "mp_per_s": megapixels / cluster_s},
        "speedup": local_s / cluster_s,
        "model_loads_per_worker": sorted(loads.values()),
    }
    path = write_report(out_dir, "cluster", report)
    print(f"infer {n_scenes} scenes of {size}x{size}x4 uint8, U-Net (16, depth 3), window 256")
    print(f"  one local process         : {local_s:.1f} s ({megapixels / local_s:.2f} MP/s)")
    print(f"  LocalCluster 2 x 1 thread : {cluster_s:.1f} s ({megapixels / cluster_s:.2f} MP/s)")
    print(f"  speedup                   : {report['speedup']:.2f}x")
    print(f"  model loads per worker    : {report['model_loads_per_worker']} (goal: 1 each)")
    print(f"  -> {path}")
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--out", default="bench-output")
    a = parser.parse_args()
    main(a.out, a.scenes, a.size)
