"""An independent answer for a tile store: whole rasters read, labels rasterized at once.

:func:`assert_matches_reference` checks every array and the counts of a store made by
``tile()`` against plain computations on the whole rasters (rasterio reads, one rasterize per
raster, numpy statistics); only the split draw is the library's own
(:func:`geovision.tiling.plan.assign_splits`, the definition of the splits).
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import rasterio
import zarr
from affine import Affine
from rasterio.features import rasterize

from geovision.geo.windows import PixelWindow, flush_origins
from geovision.tiling.plan import TileRef, assign_splits


def _ids(frame: gpd.GeoDataFrame, field: str | None) -> np.ndarray:
    if field is None:
        return np.ones(len(frame), dtype=int)
    names = sorted(set(frame[field].astype(str)))
    return frame[field].astype(str).map({n: i + 1 for i, n in enumerate(names)}).to_numpy()


def reference(rasters, labels, opts) -> dict:
    """The tiles ``tile(rasters, labels, out, opts)`` must write, computed independently."""
    frame = gpd.read_file(labels, layer=opts.layer)
    keep = frame.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    frame = frame[keep]
    ids = _ids(frame, opts.class_field)
    size, step = opts.tile_size, opts.stride or opts.tile_size
    rows: list[dict] = []
    for s, path in enumerate(rasters):
        with rasterio.open(path) as ds:
            bands = list(opts.bands) if opts.bands else list(range(1, ds.count + 1))
            data = ds.read(bands)
            valid = np.logical_and.reduce([ds.read_masks(b) > 0 for b in bands])
            local = frame.to_crs(ds.crs.to_wkt())
            mask = np.zeros((ds.height, ds.width), np.uint8)
            if len(local):
                mask = rasterize(zip(local.geometry, ids.tolist(), strict=True),
                                 out_shape=mask.shape, transform=ds.transform, fill=0,
                                 dtype="uint8")
            mask[~valid] = 255
            inv = ~ds.transform
            b = local.geometry.bounds.to_numpy()
            c0, r0 = inv @ (b[:, 0], b[:, 1])
            c1, r1 = inv @ (b[:, 2], b[:, 3])
            pix = np.stack([np.minimum(c0, c1), np.minimum(r0, r1), np.maximum(c0, c1),
                            np.maximum(r0, r1)], axis=1)
            for r in flush_origins(ds.height, size, step):
                for c in flush_origins(ds.width, size, step):
                    v = valid[r:r + size, c:c + size]
                    frac = np.float32(v.sum() / (size * size))
                    if not (frac >= opts.min_valid and frac > 0):
                        continue
                    rows.append({
                        "source": s, "row": r, "col": c, "valid": frac,
                        "transform": tuple(ds.transform @ Affine.translation(c, r))[:6],
                        "image": data[:, r:r + size, c:c + size],
                        "tile_valid": v, "mask": mask[r:r + size, c:c + size],
                        "boxes": _boxes(pix, ids, r, c, size, opts.min_box_visible),
                    })
    refs = [TileRef(t["source"], PixelWindow(t["row"], t["col"], size, size)) for t in rows]
    k1 = int(ids.max(initial=0)) + 1
    # the block split balances the classes: pixels per class and tile (detection: boxes)
    if opts.task == "detection":
        counts = [np.bincount([b[4] for b in t["boxes"]], minlength=k1)[:k1] for t in rows]
    else:
        counts = [np.bincount(t["mask"].ravel(), minlength=256)[:k1] for t in rows]
    splits, _ = assign_splits(refs, method=opts.split, fractions=opts.fractions,
                              block_size=opts.block_size or 4 * size, seed=opts.seed,
                              class_counts=np.array(counts, dtype=np.int64).reshape(-1, k1))
    kept = [dict(t, split=int(sp)) for t, sp in zip(rows, splits, strict=True) if sp != 255]
    return {"tiles": kept, "classes": k1}


def _boxes(pix, ids, r, c, size, min_visible):
    out = []
    for (x0, y0, x1, y1), k in zip(pix, ids, strict=True):
        x0, x1, y0, y1 = x0 - c, x1 - c, y0 - r, y1 - r
        cx0, cx1 = min(max(x0, 0), size), min(max(x1, 0), size)
        cy0, cy1 = min(max(y0, 0), size), min(max(y1, 0), size)
        area = max((x1 - x0) * (y1 - y0), 1e-12)
        if cx1 - cx0 >= 1 and cy1 - cy0 >= 1 and (cx1 - cx0) * (cy1 - cy0) / area >= min_visible:
            out.append((cx0, cy0, cx1, cy1, k))
    return out


def assert_matches_reference(store, rasters, labels, opts) -> None:
    """Every array and count of ``store`` equals :func:`reference`'s answer."""
    ref = reference(rasters, labels, opts)
    tiles, k1 = ref["tiles"], ref["classes"]
    g = zarr.open_group(str(store), mode="r")
    n = g["image"].shape[0]
    assert n == len(tiles) > 0
    for name in ("source", "row", "col", "split"):
        np.testing.assert_array_equal(g[name][:], [t[name] for t in tiles], err_msg=name)
    np.testing.assert_array_equal(g["valid"][:], np.array([t["valid"] for t in tiles]))
    np.testing.assert_array_equal(g["transform"][:], [t["transform"] for t in tiles])
    np.testing.assert_array_equal(g["image"][:], np.stack([t["image"] for t in tiles]))
    masks = np.stack([t["mask"] for t in tiles])
    counts = np.stack([np.bincount(m.ravel(), minlength=256)[:k1] for m in masks])
    attrs = g.attrs.asdict()
    task = attrs["task"]
    if task == "segmentation":
        np.testing.assert_array_equal(g["mask"][:], masks)
    if task == "classification":
        assert "mask" not in g
        np.testing.assert_array_equal(g["label"][:], np.argmax(counts, axis=1))
    if task == "detection":
        want = sorted((i, *(round(float(v), 3) for v in b[:4]), b[4])
                      for i, t in enumerate(tiles) for b in t["boxes"])
        got = sorted((int(i), *(round(float(v), 3) for v in b), int(k)) for b, k, i in zip(
            g["boxes"][:], g["box_label"][:], g["box_tile"][:], strict=True))
        assert got == want
        per_class = np.bincount([w[-1] for w in want], minlength=k1)
        assert attrs["counts"]["class_boxes"] == per_class.tolist()
    else:
        assert attrs["counts"]["class_pixels"] == counts.sum(axis=0).tolist()
    if task == "segmentation":
        assert attrs["counts"]["class_tiles"] == (counts > 0).sum(axis=0).tolist()
    splits = np.array([t["split"] for t in tiles])
    assert attrs["counts"]["tiles"] == {name: int((splits == i).sum()) for i, name in
                                        enumerate(("train", "val", "test"))}
    train = [t for t in tiles if t["split"] == 0]
    if train:
        px = np.concatenate([t["image"][:, t["tile_valid"]].astype(np.float64) for t in train],
                            axis=1)
        st = attrs["stats"]
        if px.shape[1]:
            np.testing.assert_allclose(st["mean"], px.mean(axis=1), rtol=1e-9)
            np.testing.assert_allclose(st["std"], px.std(axis=1), rtol=1e-7)
            np.testing.assert_array_equal(st["min"], px.min(axis=1))
            np.testing.assert_array_equal(st["max"], px.max(axis=1))
        assert st["pixels"] == px.shape[1]
