"""Training input throughput: DataLoader over the Zarr tile store vs an on-the-fly reader.

Both deliver the same 256 x 256 x 4 uint8 windows with their segmentation masks, in batches
of 16 from 2 worker processes, and are timed in the same run, alternating rounds so that
other load on the machine falls on both; the report gives the median of the rounds.

* Zarr: :class:`geovision.data.TileDataset` as training uses it (normalization deferred to
  the batch), without augmentation like the on-the-fly reader; a third loader times it with
  training's random flips and 90-degree rotations on (``zarr_augmented_tiles_per_s``).
* On the fly: what samplers over GeoTIFFs and vector files (TorchGeo's RasterDataset +
  VectorDataset) do per sample: a windowed ``rasterio`` read of the source GeoTIFF and a
  ``rasterio.features.rasterize`` of the label polygons that touch the window. It is given
  every advantage we can: one open dataset per worker (so GDAL's block cache holds the
  decoded scene after the first pass), labels read and reprojected once, an STRtree to find
  the polygons of a window, no augmentation, and the same delivery as the Zarr path (uint8
  image and mask through the worker queue).

Both deliver the same content, so tiles/s is measured where the DataLoader hands batches
over. What follows is the training step's: :meth:`geovision.engine.tasks.EngineTask.to_device` with
the dataset's normalization (float32 ``(x - mean) / std`` and int64 masks, on the device).
The fraction of a CPU training step of the U-Net (the segmentation config's) spent on data
counts both the wait for a batch and that preparation.

    python benchmarks/bench_dataloader.py [--size 2048] [--rounds 3] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

BATCH, WORKERS, TILE = 16, 2, 256


class OnTheFly(Dataset):
    """Windows read from the GeoTIFF with labels rasterized per sample."""

    def __init__(self, raster, labels, class_field, classes, rows, cols):
        import geopandas as gpd
        import rasterio

        with rasterio.open(raster) as src:
            self.crs, self.transform = src.crs, src.transform
        gdf = gpd.read_file(labels).to_crs(self.crs)
        ids = {c: i for i, c in enumerate(classes)}
        self.geoms = np.asarray(gdf.geometry.values)
        self.values = np.asarray([ids[v] for v in gdf[class_field]], dtype=np.uint8)
        self.raster, self.rows, self.cols = raster, rows, cols
        self._src = None
        self._tree = None
        self._pid = -1

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        import rasterio
        import shapely
        from rasterio.features import rasterize
        from rasterio.windows import Window, bounds
        from rasterio.windows import transform as wtransform

        i = key[0] if isinstance(key, tuple) else key  # EpochSampler yields (index, epoch)
        if self._pid != os.getpid():  # one open dataset per process, never shared over fork
            self._src = rasterio.open(self.raster)
            self._tree = shapely.STRtree(self.geoms)
            self._pid = os.getpid()
        win = Window(int(self.cols[i]), int(self.rows[i]), TILE, TILE)
        image = self._src.read(window=win)
        box = shapely.box(*bounds(win, self.transform))
        hits = self._tree.query(box, predicate="intersects")
        order = np.argsort(self.values[hits], kind="stable")
        shapes = [(self.geoms[h], int(self.values[h])) for h in hits[order]]
        mask = rasterize(shapes, out_shape=(TILE, TILE), transform=wtransform(win, self.transform),
                         fill=0, dtype="uint8") if shapes else np.zeros((TILE, TILE), np.uint8)
        return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask), "index": i}


def _loader(dataset):
    from geovision.data import EpochSampler
    from geovision.data.tasks import for_task

    collate = for_task("segmentation").collate
    return DataLoader(dataset, batch_size=BATCH, num_workers=WORKERS, collate_fn=collate,
                      sampler=EpochSampler(len(dataset), shuffle=True), persistent_workers=True)


def _epochs(loader):
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def _rate(batches, tiles):
    """Tiles/s of ``tiles`` tiles taken from ``batches``."""
    done, start = 0, time.perf_counter()
    while done < tiles:
        done += len(next(batches)["index"])
    return done / (time.perf_counter() - start)


def _data_wait(batches, normalize, steps):
    from geovision.engine.tasks import for_task as engine_task
    from geovision.models import build_model

    model = build_model("segmentation", "unet", in_channels=4, num_classes=5,
                        params={"base_channels": 32, "depth": 4})
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    task = engine_task("segmentation")
    wait = compute = 0.0  # data: waiting for a batch and preparing it (normalization)
    for step in range(steps + 1):
        t0 = time.perf_counter()
        batch = task.to_device(next(batches), torch.device("cpu"), normalize)
        t1 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(batch.images), batch.target,
                                                 ignore_index=255)
        loss.backward()
        opt.step()
        opt.zero_grad()
        t2 = time.perf_counter()
        if step:  # the first step includes the model's first-call costs
            wait += t1 - t0
            compute += t2 - t1
    return {"data_wait_fraction": wait / (wait + compute), "step_s": (wait + compute) / steps,
            "steps": steps}


def main(out_dir: str = "bench-output", size: int = 2048, rounds: int = 3,
         steps: int = 3) -> dict[str, Any]:
    import shutil

    import zarr

    from geovision.data import Augment, TileDataset, read_info
    from geovision.synthetic import make_sample
    from geovision.tiling import TileOptions, tile

    work = Path(tempfile.mkdtemp(prefix="gv-bench-dl-"))
    sample = make_sample(work / "scene", size=size, bands=4, dtype="uint8", nodata_corner=0.0)
    store = work / "tiles.zarr"
    t0 = time.perf_counter()
    tile(list(sample.rasters), sample.labels, store,
         TileOptions(task="segmentation", class_field="kind", tile_size=TILE), quiet=True)
    tile_s = time.perf_counter() - t0
    info = read_info(store)
    zarr_ds = TileDataset(store, None, info=info, defer_normalization=True)
    augmented = TileDataset(store, None, info=info, augment=Augment(),
                            defer_normalization=True)
    g = zarr.open_group(str(store), mode="r")
    rows, cols = np.asarray(g["row"][:]), np.asarray(g["col"][:])
    fly_ds = OnTheFly(sample.rasters[0], sample.labels, "kind", info.class_names, rows, cols)
    plain = TileDataset(store, None, info=info)
    agreement = float((plain[0]["mask"] == fly_ds[0]["mask"]).float().mean())

    tiles = max(BATCH, 512 // BATCH * BATCH)
    normalize = zarr_ds.normalize
    feeds = {"zarr": _epochs(_loader(zarr_ds)), "onthefly": _epochs(_loader(fly_ds)),
             "zarr_augmented": _epochs(_loader(augmented))}
    for batches in feeds.values():
        next(batches)  # start the workers: not part of the steady state
    rates: dict[str, list[float]] = {name: [] for name in feeds}
    for _ in range(rounds):
        for name, batches in feeds.items():
            rates[name].append(_rate(batches, tiles))
    ratios = [z / f for z, f in zip(rates["zarr"], rates["onthefly"], strict=True)]
    for name in ("onthefly", "zarr"):
        del feeds[name]  # their workers stop: the U-Net step sees only training's loader
    wait = _data_wait(feeds["zarr_augmented"], normalize, steps)
    report = {
        "scene": f"{size}x{size}x4 uint8", "tile": TILE, "batch": BATCH, "workers": WORKERS,
        "tiles": len(zarr_ds), "tiles_per_round": tiles, "rounds": rounds,
        "tiling_s": round(tile_s, 2),
        "zarr_tiles_per_s": round(statistics.median(rates["zarr"]), 1),
        "onthefly_tiles_per_s": round(statistics.median(rates["onthefly"]), 1),
        "zarr_augmented_tiles_per_s": round(statistics.median(rates["zarr_augmented"]), 1),
        "speedup": round(statistics.median(ratios), 2), "goal_speedup": 3.0,
        "speedup_per_round": [round(r, 2) for r in ratios],
        "mask_agreement_first_tile": round(agreement, 4),
        "unet_cpu_step_s": round(wait["step_s"], 3),
        "unet_cpu_data_wait_fraction": round(wait["data_wait_fraction"], 4),
        "torch_threads": torch.get_num_threads(),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataloader.json").write_text(json.dumps(report, indent=2))
    print(f"dataloader: zarr {report['zarr_tiles_per_s']} tiles/s, on-the-fly "
          f"{report['onthefly_tiles_per_s']} tiles/s -> {report['speedup']}x (goal >= 3x; "
          f"rounds {report['speedup_per_round']}); with augmentation "
          f"{report['zarr_augmented_tiles_per_s']} tiles/s; U-Net CPU step "
          f"{report['unet_cpu_step_s']} s, on data "
          f"{100 * report['unet_cpu_data_wait_fraction']:.1f}%")
    shutil.rmtree(work, ignore_errors=True)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-output")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3, help="U-Net steps timed")
    args = parser.parse_args()
    main(args.out, args.size, args.rounds, args.steps)
    sys.exit(0)
