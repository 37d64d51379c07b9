"""Training input throughput: DataLoader over the Zarr tile store vs an on-the-fly reader.

Both deliver the same 256 x 256 x 4 uint8 windows with their segmentation masks, in batches
of 16 from 2 worker processes. The on-the-fly reader reads each window from the source
GeoTIFF with rasterio and rasterizes the vector labels that touch it, per sample (the way
samplers over GeoTIFFs and vector files work); it is given every advantage we can: one open
dataset per worker, labels reprojected once, a spatial index. Then the fraction of a CPU
training step with the U-Net spent waiting for data.

    python benchmarks/bench_dataloader.py [--size 2048] [--out bench-output]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

BATCH, WORKERS, TILE = 16, 2, 256


class OnTheFly(Dataset):
    """Windows read from the GeoTIFF with labels rasterized per sample."""

    def __init__(self, raster, labels, class_field, classes, rows, cols, mean, std):
        import geopandas as gpd
        import rasterio

        with rasterio.open(raster) as src:
            self.crs, self.transform = src.crs, src.transform
        gdf = gpd.read_file(labels).to_crs(self.crs)
        ids = {c: i for i, c in enumerate(classes)}
        self.geoms = np.asarray(gdf.geometry.values)
        self.values = np.asarray([ids[v] for v in gdf[class_field]], dtype=np.uint8)
        self.raster, self.rows, self.cols = raster, rows, cols
        self.mean = torch.tensor(mean, dtype=torch.float32)[:, None, None]
        self.std = torch.tensor(std, dtype=torch.float32)[:, None, None]
        self._src = None
        self._tree = None

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, key):
        import rasterio
        import shapely
        from rasterio.features import rasterize
        from rasterio.windows import Window, bounds
        from rasterio.windows import transform as wtransform

        i = key[0] if isinstance(key, tuple) else key  # EpochSampler yields (index, epoch)
        if self._src is None:
            self._src = rasterio.open(self.raster)
            self._tree = shapely.STRtree(self.geoms)
        win = Window(int(self.cols[i]), int(self.rows[i]), TILE, TILE)
        image = self._src.read(window=win)
        box = shapely.box(*bounds(win, self.transform))
        hits = self._tree.query(box, predicate="intersects")
        order = np.argsort(self.values[hits], kind="stable")
        shapes = [(self.geoms[h], int(self.values[h])) for h in hits[order]]
        mask = rasterize(shapes, out_shape=(TILE, TILE), transform=wtransform(win, self.transform),
                         fill=0, dtype="uint8") if shapes else np.zeros((TILE, TILE), np.uint8)
        x = (torch.from_numpy(image.astype(np.float32)) - self.mean) / self.std
        return {"image": x, "mask": torch.from_numpy(mask.astype(np.int64)), "index": i}


def _throughput(dataset, collate, passes):
    from geovision.data import EpochSampler

    loader = DataLoader(dataset, batch_size=BATCH, num_workers=WORKERS, collate_fn=collate,
                        sampler=EpochSampler(len(dataset), shuffle=True), persistent_workers=True)
    next(iter(loader))  # start the workers: not part of the steady state
    tiles, start = 0, time.perf_counter()
    for epoch in range(passes):
        loader.sampler.set_epoch(epoch)
        for batch in loader:
            tiles += batch["image"].shape[0]
    return tiles / (time.perf_counter() - start), tiles


def _data_wait(dataset, collate, steps=4):
    from geovision.data import EpochSampler
    from geovision.models import build_model

    model = build_model("segmentation", "unet", in_channels=4, num_classes=5,
                        params={"base_channels": 32, "depth": 4})
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    loader = DataLoader(dataset, batch_size=BATCH, num_workers=WORKERS, collate_fn=collate,
                        sampler=EpochSampler(len(dataset), shuffle=True), persistent_workers=True)
    def batches():
        epoch = 0
        while True:
            loader.sampler.set_epoch(epoch)
            yield from loader
            epoch += 1

    it = batches()
    wait = compute = 0.0
    for step in range(steps + 1):
        t0 = time.perf_counter()
        batch = next(it)
        t1 = time.perf_counter()
        loss = torch.nn.functional.cross_entropy(model(batch["image"]), batch["mask"],
                                                 ignore_index=255)
        loss.backward()
        opt.step()
        opt.zero_grad()
        t2 = time.perf_counter()
        if step:  # the first step includes worker start-up
            wait += t1 - t0
            compute += t2 - t1
    return {"data_wait_fraction": wait / (wait + compute), "step_s": (wait + compute) / steps,
            "steps": steps}


def main(out_dir: str = "bench-output", size: int = 2048) -> dict:
    from geovision.data import TileDataset, collate, read_info
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
    zarr_ds = TileDataset(store, None, info=info)
    import zarr

    g = zarr.open_group(str(store), mode="r")
    rows, cols = np.asarray(g["row"][:]), np.asarray(g["col"][:])
    fly_ds = OnTheFly(sample.rasters[0], sample.labels, "kind", info.class_names, rows, cols,
                      info.mean, info.std)
    passes = max(1, round(256 / len(zarr_ds)))
    zarr_rate, n = _throughput(zarr_ds, collate, passes)
    fly_rate, _ = _throughput(fly_ds, collate, passes)
    same = zarr_ds[0]
    check = fly_ds[0]
    agreement = float((same["mask"] == check["mask"]).float().mean())
    wait = _data_wait(zarr_ds, collate)
    report = {
        "scene": f"{size}x{size}x4 uint8", "tile": TILE, "batch": BATCH, "workers": WORKERS,
        "tiles": len(zarr_ds), "tiles_read": n, "tiling_s": round(tile_s, 2),
        "zarr_tiles_per_s": round(zarr_rate, 1), "onthefly_tiles_per_s": round(fly_rate, 1),
        "speedup": round(zarr_rate / fly_rate, 2), "goal_speedup": 3.0,
        "mask_agreement_first_tile": round(agreement, 4),
        "unet_cpu_step_s": round(wait["step_s"], 3),
        "unet_cpu_data_wait_fraction": round(wait["data_wait_fraction"], 4),
        "torch_threads": torch.get_num_threads(),
    }
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataloader.json").write_text(json.dumps(report, indent=2))
    print(f"dataloader: zarr {report['zarr_tiles_per_s']} tiles/s, on-the-fly "
          f"{report['onthefly_tiles_per_s']} tiles/s -> {report['speedup']}x (goal >= 3x); "
          f"U-Net CPU step {report['unet_cpu_step_s']} s, waiting for data "
          f"{100 * report['unet_cpu_data_wait_fraction']:.1f}%")
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench-output")
    parser.add_argument("--size", type=int, default=2048)
    args = parser.parse_args()
    main(args.out, args.size)
    sys.exit(0)
