"""Segmentation: outputs on the scene's grid, blending, padding, nodata, COG, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rioxarray
import torch
from rio_cogeo.cogeo import cog_validate

from geovision.formats import PROB_SCALE
from geovision.inference import infer
from geovision.models.bundle import load_bundle
from geovision.synthetic import make_sample
from tests.inference.gdal_cog import cog_levels, tiled_profile, to_cog
from tests.inference.infer_helpers import TINY_UNET, write_bundle

ROOT = Path(__file__).resolve().parents[3]


def read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read()


def scene_pixels(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read().astype(np.float32)


def test_a_georeferenced_scene_runs_without_warnings(tmp_path, seg_bundle):
    # strips are encoded on two threads (the spare-time helper's and the model's): none may
    # leak rasterio's warning about their missing georeferencing to the user's console
    import warnings

    scene = make_sample(tmp_path / "s", size=(700, 600), seed=4).rasters[0]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        infer(seg_bundle, scene, tmp_path / "out", window=64, quiet=True)
    assert [str(w.message) for w in seen if "georeferenc" in str(w.message).lower()
            or "geotransform" in str(w.message)] == []


@pytest.mark.parametrize("crs", ["EPSG:32633", "EPSG:4326"])
def test_outputs_share_the_scene_grid_and_are_valid_cogs(tmp_path, seg_bundle, crs):
    sample = make_sample(tmp_path / "s", size=(300, 220), crss=(crs,), seed=2)
    scene = sample.rasters[0]
    [summary] = infer(seg_bundle, scene, tmp_path / "out", window=64, quiet=True)
    with rasterio.open(scene) as src:
        grid = (src.crs, src.transform, src.width, src.height)
    for name in ("scene.class.tif", "scene.prob.tif"):
        path = tmp_path / "out" / name
        with rasterio.open(path) as ds:
            assert (ds.crs, ds.transform, ds.width, ds.height) == grid
            assert ds.block_shapes[0] == (220, 300) or ds.block_shapes[0] == (512, 512)
            assert ds.nodata == 255
        valid, errors, _ = cog_validate(str(path))
        assert valid, errors
        da = rioxarray.open_rasterio(path)
        assert da.rio.crs == grid[0]
        assert da.rio.transform() == grid[1]
        assert da.shape[1:] == (220, 300)
    with rasterio.open(tmp_path / "out" / "scene.class.tif") as ds:
        assert ds.count == 1 and ds.dtypes[0] == "uint8"
        assert ds.colormap(1)[1] == (227, 26, 28, 255)
        assert json.loads(ds.tags()["classes"])[4]["name"] == "water"
        assert ds.tags(1)["class_3"] == "forest"
    with rasterio.open(tmp_path / "out" / "scene.prob.tif") as ds:
        assert ds.count == 5
        assert ds.descriptions[1] == "p_building"
        assert ds.scales == (1 / PROB_SCALE,) * 5 and ds.offsets == (0.0,) * 5
    # readers that apply the scale see probabilities 0..1 that sum to 1
    da = rioxarray.open_rasterio(tmp_path / "out" / "scene.prob.tif", mask_and_scale=True)
    total = da.sum("band").values
    valid = ~np.isnan(da.values).any(axis=0)
    assert float(da.max()) <= 1.0
    np.testing.assert_allclose(total[valid], 1.0, atol=5 * 0.5 / PROB_SCALE)
    assert summary.windows > 1 and summary.timings["model"] > 0
    on_disk = json.loads((tmp_path / "out" / "scene.json").read_text())
    assert on_disk["parameters"]["window"] == 64 and on_disk["megapixels_per_s"] > 0
    # nothing hidden is left but the mark of what geovision wrote (scratch, temporary files)
    assert [p.name for p in (tmp_path / "out").iterdir() if p.name.startswith(".")] == [
        ".geovision-owned"]


def test_interior_matches_one_pass_over_the_whole_scene(tmp_path, seg_bundle):
    sample = make_sample(tmp_path / "s", size=(320, 256), nodata_corner=0, seed=1)
    model = load_bundle(seg_bundle).model
    x = (scene_pixels(sample.rasters[0]) - 110.0) / 50.0
    with torch.inference_mode():
        full = torch.softmax(model(torch.from_numpy(x)[None]), 1)[0].numpy()
    errors = {}
    for blend in ("gaussian", "none"):
        infer(seg_bundle, sample.rasters, tmp_path / blend, window=64, overlap=0.5,
              blend=blend, prob_dtype="float32", block_windows=2, quiet=True)
        probs = read(tmp_path / blend / "scene.prob.tif")
        errors[blend] = np.abs(probs - full)[:, 32:-32, 32:-32].max()
    assert errors["gaussian"] < 1e-5
    assert errors["none"] > 100 * errors["gaussian"]  # the test can tell blends apart


@pytest.mark.parametrize("shape", [(3, 5), (1, 1), (101, 333), (257, 65)])
def test_any_size_is_covered_including_scenes_smaller_than_a_window(tmp_path, seg_bundle,
                                                                     scene_writer, shape):
    rng = np.random.default_rng(0)
    pixels = rng.integers(1, 255, size=(4, *shape), dtype=np.uint8)
    scene = scene_writer("odd.tif", pixels)
    infer(seg_bundle, scene, tmp_path / "out", prob_dtype="float32", quiet=True)
    classes = read(tmp_path / "out" / "odd.class.tif")
    probs = read(tmp_path / "out" / "odd.prob.tif")
    assert classes.shape == (1, *shape) and probs.shape == (5, *shape)
    assert (classes < 5).all()
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)


def test_blocks_do_not_change_the_result(tmp_path, seg_bundle):
    sample = make_sample(tmp_path / "s", size=(300, 190), seed=4)
    for k in (1, 3, 50):
        infer(seg_bundle, sample.rasters, tmp_path / f"b{k}", block_windows=k,
              prob_dtype="float32", quiet=True)
    ref = read(tmp_path / "b50" / "scene.prob.tif")
    for k in (1, 3):
        np.testing.assert_allclose(read(tmp_path / f"b{k}" / "scene.prob.tif"), ref,
                                   atol=1e-6)


def test_nodata_in_the_scene_is_nodata_in_every_output(tmp_path, seg_bundle):
    sample = make_sample(tmp_path / "s", size=(200, 150), nodata_corner=0.3, seed=5)
    with rasterio.open(sample.rasters[0]) as ds:
        invalid = ds.read_masks(1) == 0
    assert invalid.any()
    infer(seg_bundle, sample.rasters, tmp_path / "u8", quiet=True)
    infer(seg_bundle, sample.rasters, tmp_path / "f32", prob_dtype="float32",
          probabilities=True, quiet=True)
    classes = read(tmp_path / "u8" / "scene.class.tif")[0]
    np.testing.assert_array_equal(classes == 255, invalid)
    probs = read(tmp_path / "u8" / "scene.prob.tif")
    assert (probs[:, invalid] == 255).all() and (probs[:, ~invalid] <= 254).all()
    f32 = read(tmp_path / "f32" / "scene.prob.tif")
    np.testing.assert_array_equal(np.isnan(f32).any(0), invalid)
    with rasterio.open(tmp_path / "f32" / "scene.prob.tif") as ds:
        assert ds.dtypes[0] == "float32" and np.isnan(ds.nodata)


def test_no_probabilities_writes_classes_only(tmp_path, seg_bundle):
    sample = make_sample(tmp_path / "s", size=80, seed=6)
    [summary] = infer(seg_bundle, sample.rasters, tmp_path / "out", probabilities=False,
                      quiet=True)
    assert summary.outputs == ("scene.class.tif",)
    assert not (tmp_path / "out" / "scene.prob.tif").exists()


@pytest.mark.slow  # kill -9 and resume
def test_resume_after_a_crash_gives_the_uninterrupted_result(tmp_path):
    bundle = write_bundle(tmp_path / "seg.pt", "segmentation", "unet", params=TINY_UNET,
                          tile_size=32)
    sample = make_sample(tmp_path / "s", size=(384, 256), seed=7)
    # 32-px windows (a segmenter's default window is large): many blocks to interrupt
    infer(bundle, sample.rasters, tmp_path / "ref", window=32, block_windows=1, quiet=True)
    out = tmp_path / "crash"
    code = (f"from geovision.inference import infer; infer({str(bundle)!r}, "
            f"{sample.rasters[0]!r}, {str(out)!r}, window=32, block_windows=1, quiet=True)")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    scratch = out / ".scene.partial"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(scratch.glob("*.done"))) < 3:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list(scratch.glob("*.done")))
    assert done >= 3, "the run ended before it could be interrupted"
    assert not (out / "scene.class.tif").exists()  # no partial output under a final name
    with pytest.raises(FileExistsError, match="--resume"):
        infer(bundle, sample.rasters, out, window=32, block_windows=1, quiet=True)
    [summary] = infer(bundle, sample.rasters, out, window=32, block_windows=1, resume=True,
                      quiet=True)
    for name in ("scene.class.tif", "scene.prob.tif"):
        np.testing.assert_array_equal(read(out / name), read(tmp_path / "ref" / name))
    assert not scratch.exists()
    # resuming a finished run does nothing
    again = infer(bundle, sample.rasters, out, window=32, block_windows=1, resume=True,
                  quiet=True)
    assert again[0].created == summary.created


def test_tta_keeps_probabilities_normalized(tmp_path, seg_bundle):
    sample = make_sample(tmp_path / "s", size=70, seed=8)
    infer(seg_bundle, sample.rasters, tmp_path / "out", tta=True, prob_dtype="float32",
          quiet=True)
    probs = read(tmp_path / "out" / "scene.prob.tif")
    ok = ~np.isnan(probs).any(0)
    np.testing.assert_allclose(probs[:, ok].sum(0), 1.0, atol=1e-5)


@pytest.mark.slow  # a Dask cluster
def test_dask_cluster_gives_the_local_result(tmp_path, seg_bundle):
    distributed = pytest.importorskip("distributed")
    sample = make_sample(tmp_path / "s", size=(200, 130), seed=9)
    infer(seg_bundle, sample.rasters, tmp_path / "local", block_windows=2, quiet=True)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        infer(seg_bundle, sample.rasters, tmp_path / "dask", block_windows=2,
              scheduler=cluster.scheduler_address, quiet=True)
    for name in ("scene.class.tif", "scene.prob.tif"):
        np.testing.assert_array_equal(read(tmp_path / "dask" / name),
                                      read(tmp_path / "local" / name))


def tiles_of(path: Path) -> list[bytes]:
    """The compressed tiles of a raster's full resolution, in order."""
    with rasterio.open(path) as ds:
        n_rows, n_cols = -(-ds.height // 512), -(-ds.width // 512)
        spans = [(int(ds.get_tag_item(f"BLOCK_OFFSET_{c}_{r}", "TIFF", bidx=1)),
                  int(ds.get_tag_item(f"BLOCK_SIZE_{c}_{r}", "TIFF", bidx=1)))
                 for r in range(n_rows) for c in range(n_cols)]
    with open(path, "rb") as f:
        out = []
        for offset, size in spans:
            f.seek(offset)
            out.append(f.read(size))
    return out


def described(path: Path) -> dict:
    """Everything a reader sees of a raster besides its pixels."""
    with rasterio.open(path) as ds:
        return {"profile": {**ds.profile, "nodata": repr(ds.nodata)}, "tags": ds.tags(),
                "band_tags": ds.tags(1), "descriptions": ds.descriptions,
                "scales": ds.scales, "offsets": ds.offsets, "colorinterp": ds.colorinterp,
                "overviews": ds.overviews(1),
                "colormap": ds.colormap(1) if ds.count == 1 else None}


@pytest.mark.parametrize("prob_dtype", ["uint8", "float32"])
def test_outputs_are_the_cogs_gdal_makes_of_their_pixels(tmp_path, prob_dtype):
    # several tile rows, strips and overview levels; a nodata corner
    bundle = write_bundle(tmp_path / "seg.pt", "segmentation", "unet", params=TINY_UNET)
    sample = make_sample(tmp_path / "s", size=(1100, 1030), seed=3, nodata_corner=0.1)
    [summary] = infer(bundle, sample.rasters, tmp_path / "out", prob_dtype=prob_dtype,
                      quiet=True)
    assert 0 < summary.timings["model_share"] <= 1
    assert summary.timings["model"] <= summary.timings["total"]
    for name, resampling, level in (("scene.class.tif", "MODE", 6),
                                    ("scene.prob.tif", "AVERAGE", 1)):
        mine = tmp_path / "out" / name
        assert cog_validate(str(mine), quiet=True)[0]
        ref, src = tmp_path / f"gdal.{name}", tmp_path / f"src.{name}"
        with rasterio.open(mine) as ds:
            profile = tiled_profile(height=ds.height, width=ds.width, count=ds.count,
                                    dtype=ds.dtypes[0], crs=ds.crs, transform=ds.transform,
                                    nodata=ds.nodata)
            with rasterio.open(src, "w", **profile) as dst:
                dst.write(ds.read())
                dst.update_tags(**ds.tags())
                dst.update_tags(1, **ds.tags(1))
                dst.descriptions = ds.descriptions
                dst.scales, dst.offsets = ds.scales, ds.offsets
                if ds.count == 1:
                    dst.write_colormap(1, ds.colormap(1))
        to_cog(src, ref, resampling=resampling, level=level)
        assert tiles_of(mine) == tiles_of(ref)  # the same compressed tiles: the same storage
        ours, gdals = cog_levels(mine), cog_levels(ref)
        assert len(ours) == len(gdals) == 3
        for level, (a, b) in enumerate(zip(ours, gdals, strict=True)):
            if level >= 2 and a.dtype == np.float32:
                # below the first overview GDAL averages float rasters of many bands from
                # the full resolution, fewer bands from the level above (as we always do):
                # the same means but for the weights at window edges
                both = ~np.isnan(a) & ~np.isnan(b)
                np.testing.assert_allclose(a[both], b[both], atol=2e-3)
                assert (np.isnan(a) != np.isnan(b)).mean() < 0.01
            else:
                assert a.tobytes() == b.tobytes()
        assert described(mine) == described(ref)


def test_thread_strategies_give_the_same_outputs(tmp_path, seg_bundle, monkeypatch):
    from geovision.inference import api
    from geovision.inference.threads import ThreadBudget, plan

    sample = make_sample(tmp_path / "s", size=(300, 200), seed=5, nodata_corner=0.2)
    # "lanes": two threads read the next two blocks at once, a third writes, two prompt
    # helpers encode strips and write resume files (CUDA's layout)
    lanes = ThreadBudget("overlap", 6, torch=2, helpers=3, gdal=1, encoders=2)
    assert lanes.reads_ahead == 2
    for strategy in ("spare", "inline", "split", "overlap", "lanes"):
        monkeypatch.setattr(api, "thread_plan", lambda device, cores=None, s=strategy:
                            lanes if s == "lanes" else plan(device, 2, s))
        infer(seg_bundle, sample.rasters, tmp_path / strategy, block_windows=2, quiet=True)
    for name in ("scene.class.tif", "scene.prob.tif"):
        # the same torch threads: the same bits
        for other in ("spare", "overlap", "lanes"):
            for a, b in zip(cog_levels(tmp_path / "inline" / name),
                            cog_levels(tmp_path / other / name), strict=True):
                assert a.tobytes() == b.tobytes()
    # torch on one thread fewer sums its convolutions in another order: the last bits
    a, b = (read(tmp_path / s / "scene.prob.tif").astype(int) for s in ("inline", "split"))
    assert np.abs(a - b).max() <= 1
    a, b = (read(tmp_path / s / "scene.class.tif") for s in ("inline", "split"))
    assert (a == b).mean() > 0.999 and ((a == 255) == (b == 255)).all()


def same_scene_on(tmp_path: Path, devices: tuple[str, str]) -> None:
    """One scene through ``infer`` on two devices: the same grid, classes and probabilities
    (to the last step of the compact scale, where float sums differ in their last bits)."""
    model = write_bundle(tmp_path / "seg.pt", "segmentation", "unet", params=TINY_UNET)
    sample = make_sample(tmp_path / "s", size=(700, 500), seed=5, nodata_corner=0.2)
    for k, device in enumerate(devices):
        infer(model, sample.rasters, tmp_path / f"{k}", block_windows=2, quiet=True,
              device=device)
    for name in ("scene.class.tif", "scene.prob.tif"):
        with rasterio.open(tmp_path / "0" / name) as a, rasterio.open(tmp_path / "1" / name) as b:
            assert (a.transform, a.crs, a.shape) == (b.transform, b.crs, b.shape)
    a, b = (read(tmp_path / f"{k}" / "scene.class.tif") for k in range(2))
    assert (a == b).mean() > 0.999 and ((a == 255) == (b == 255)).all()
    p, q = (read(tmp_path / f"{k}" / "scene.prob.tif").astype(int) for k in range(2))
    assert np.abs(p - q).max() <= 1
    if devices[0] == devices[1]:  # one device: the very same outputs
        assert a.tobytes() == b.tobytes() and p.tobytes() == q.tobytes()


def test_a_scene_run_twice_gives_the_same_outputs(tmp_path):
    same_scene_on(tmp_path, ("cpu", "cpu"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_gives_the_cpus_outputs(tmp_path):
    # on an H100 (a 4096^2 scene, the benchmark's U-Net): every class pixel equal, 23,296
    # probabilities one step apart
    same_scene_on(tmp_path, ("cpu", "cuda"))
