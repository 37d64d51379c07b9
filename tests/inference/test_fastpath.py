"""The prototype path writes today's outputs: same pixels at every level, same tags."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from infer_helpers import TINY_UNET, write_bundle
from rio_cogeo.cogeo import cog_validate

from geovision.errors import InputError
from geovision.inference import infer
from geovision.inference.fastpath import infer_fast
from geovision.synthetic import make_sample


def levels(path) -> list[np.ndarray]:
    with rasterio.open(path) as ds:
        out, n = [ds.read()], len(ds.overviews(1))
    for i in range(n):
        with rasterio.open(path, OVERVIEW_LEVEL=i) as ovr:
            out.append(ovr.read())
    return out


def described(path) -> dict:
    with rasterio.open(path) as ds:
        return {"profile": {**ds.profile, "nodata": repr(ds.nodata)}, "tags": ds.tags(),
                "band_tags": ds.tags(1), "descriptions": ds.descriptions,
                "scales": ds.scales, "offsets": ds.offsets, "colorinterp": ds.colorinterp,
                "colormap": ds.colormap(1) if ds.count == 1 else None}


@pytest.mark.parametrize("prob_dtype", ["uint8", "float32"])
def test_same_outputs_as_infer(tmp_path, prob_dtype):
    # 1024 x 736 = 64 + 48 k on both axes: no window passes the scene's edge (see below)
    sample = make_sample(tmp_path / "s", size=(736, 1024), seed=3, nodata_corner=0.1)
    bundle = write_bundle(tmp_path / "seg.pt", "segmentation", "unet", params=TINY_UNET)
    infer(bundle, sample.rasters, tmp_path / "today", prob_dtype=prob_dtype, quiet=True)
    summary = infer_fast(bundle, sample.rasters[0], tmp_path / "fast", prob_dtype=prob_dtype)
    for name in ("scene.class.tif", "scene.prob.tif"):
        mine, ref = tmp_path / "fast" / name, tmp_path / "today" / name
        assert cog_validate(str(mine), quiet=True)[0]
        for a, b in zip(levels(mine), levels(ref), strict=True):
            assert a.tobytes() == b.tobytes()
        assert described(mine) == described(ref)
    assert not (tmp_path / "fast" / ".scene.partial").exists()
    assert summary["windows"] == 21 * 15 and 0 < summary["model_share"] <= 1
    assert summary["buffers_allocated"] == 1
    assert json.loads((tmp_path / "fast" / "scene.json").read_text()) == summary


def test_thread_strategies_agree(tmp_path):
    # Windows pass the edges here: today's pipeline feeds such blocks to the model as
    # non-contiguous (pixel-interleaved) arrays, whose convolutions round differently in the
    # last bit; the prototype always stages contiguous batches, whatever its threads.
    sample = make_sample(tmp_path / "s", size=(300, 700), seed=5, nodata_corner=0.2)
    bundle = write_bundle(tmp_path / "seg.pt", "segmentation", "unet", params=TINY_UNET)
    for strategy in ("inline", "overlap"):
        infer_fast(bundle, sample.rasters[0], tmp_path / strategy, strategy=strategy,
                   block_windows=2)
    for name in ("scene.class.tif", "scene.prob.tif"):
        for a, b in zip(levels(tmp_path / "inline" / name), levels(tmp_path / "overlap" / name),
                        strict=True):
            assert a.tobytes() == b.tobytes()
    with rasterio.open(sample.rasters[0]) as ds:
        invalid = ds.read_masks(1) == 0
    classes = levels(tmp_path / "inline" / "scene.class.tif")[0][0]
    np.testing.assert_array_equal(classes == 255, invalid)


def test_only_segmentation(tmp_path, bright_detector, scene_writer):
    scene = scene_writer("s.tif", np.zeros((4, 64, 64), dtype=np.uint8))
    with pytest.raises(InputError, match="segmentation models only"):
        infer_fast(bright_detector, scene, tmp_path / "out")
