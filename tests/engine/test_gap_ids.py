"""Class ids with gaps (``--class-map`` keeps codes 0, 2, 10): trained on indices 0..K-1."""

import json
import shutil

import numpy as np
import pytest
import rasterio
import torch
import zarr

from geovision.data.dataset import TileDataset
from geovision.data.info import read_info
from geovision.engine.trainer import train
from geovision.formats import ClassInfo, class_ids, id_lookup, ids_of
from geovision.inference.api import infer
from geovision.models.bundle import read_bundle
from geovision.tiling.info import split_class_counts

GAP_IDS = (0, 2, 10)
#: the ids given to the engine store's five classes (dense 0..4 there)
STORE_IDS = (0, 2, 10, 11, 40)


def test_lookup_maps_ids_to_indices_and_back():
    dense = [ClassInfo(0, "background"), ClassInfo(1, "a"), ClassInfo(2, "b")]
    assert class_ids(dense) is None and id_lookup(dense) is None
    gaps = [ClassInfo(0, "background"), ClassInfo(2, "land"), ClassInfo(10, "building")]
    assert class_ids(gaps) == GAP_IDS
    lut = id_lookup(gaps)
    assert lut is not None and lut.dtype == np.uint8 and lut.shape == (256,)
    expected = np.full(256, 255, np.uint8)
    expected[[0, 2, 10]] = [0, 1, 2]
    np.testing.assert_array_equal(lut, expected)  # 255 (ignore) and unused ids: ignored
    indices = np.array([[0, 1], [2, 255]], np.uint8)
    np.testing.assert_array_equal(ids_of(indices, GAP_IDS), [[0, 2], [10, 255]])
    assert ids_of(indices, None) is indices


@pytest.fixture(scope="module")
def gap_store(seg_store, tmp_path_factory):
    """The engine's segmentation store with ids :data:`STORE_IDS` (as a class map keeps)."""
    out = tmp_path_factory.mktemp("gap") / "gap.zarr"
    shutil.copytree(seg_store, out)
    g = zarr.open_group(str(out), mode="r+")
    classes = g.attrs["classes"]
    assert [c["id"] for c in classes] == list(range(len(STORE_IDS)))  # dense ids
    mask = np.asarray(g["mask"][:])
    remap = np.arange(256, dtype=np.uint8)
    remap[: len(STORE_IDS)] = STORE_IDS
    g["mask"][:] = remap[mask]
    g.attrs["classes"] = [{**c, "id": i} for c, i in zip(classes, STORE_IDS, strict=True)]
    return out


def test_dataset_maps_mask_ids_to_indices(seg_store, gap_store):
    dense, gaps = TileDataset(seg_store, "train"), TileDataset(gap_store, "train")
    assert read_info(gap_store).num_classes == len(STORE_IDS)
    stored = np.asarray(zarr.open_group(str(gap_store), mode="r")["mask"][:])
    assert set(np.unique(stored).tolist()) <= {*STORE_IDS, 255}
    for i in range(len(gaps)):  # item by item, and read as a batch
        np.testing.assert_array_equal(gaps[i]["mask"].numpy(), dense[i]["mask"].numpy())
    picks = list(range(len(gaps)))[:5]
    np.testing.assert_array_equal(gaps.__getitems__(picks)["mask"].numpy(),
                                  dense.__getitems__(picks)["mask"].numpy())
    np.testing.assert_array_equal(gaps.task.class_counts(gaps), dense.task.class_counts(dense))
    g = zarr.open_group(str(gap_store), mode="r")
    np.testing.assert_array_equal(split_class_counts(g, "segmentation", STORE_IDS, 255),
                                  split_class_counts(zarr.open_group(str(seg_store), mode="r"),
                                                     "segmentation", range(5), 255))


def _run(store, out):
    return train({"data": {"dataset": str(store), "workers": 0, "batch_size": 16},
                  "model": {"name": "unet", "params": {"base_channels": 4, "depth": 2}},
                  "output": str(out), "train": {"epochs": 1, "seed": 5, "previews": 0,
                                                "device": "cpu",
                                                "loss": {"class_weights": "auto"}}})


def test_gap_ids_train_and_infer_the_users_ids(seg_store, gap_store, tmp_path):
    torch.manual_seed(0)
    dense_model = _run(seg_store, tmp_path / "dense").model
    gap_model = _run(gap_store, tmp_path / "gaps").model
    bundle = read_bundle(gap_model)
    assert [c["id"] for c in bundle["classes"]] == list(STORE_IDS)
    for a, b in zip(torch.load(dense_model, weights_only=False)["state_dict"].values(),
                    bundle["state_dict"].values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)  # the same training, in indices
    scene = sorted((seg_store.parent / "scene").glob("*.tif"))[0]
    infer(dense_model, scene, tmp_path / "pd", quiet=True)
    infer(gap_model, scene, tmp_path / "pg", quiet=True)
    with rasterio.open(tmp_path / "pd" / f"{scene.stem}.class.tif") as d:
        want = ids_of(d.read(1), STORE_IDS)
    with rasterio.open(tmp_path / "pg" / f"{scene.stem}.class.tif") as ds:
        got = ds.read(1)
        cmap, tags = ds.colormap(1), ds.tags(1)
        names = json.loads(ds.tags()["classes"])
    np.testing.assert_array_equal(got, want)
    assert set(np.unique(got).tolist()) <= {*STORE_IDS, 255}
    assert len(set(np.unique(got).tolist()) - {255}) >= 2
    classes = bundle["classes"]
    assert names == [{"id": c["id"], "name": c["name"]} for c in classes]
    assert {k: v for k, v in tags.items() if k.startswith("class_")} == {
        f"class_{c['id']}": c["name"] for c in classes}
    for c in classes:
        color = c["color"].lstrip("#")
        assert cmap[c["id"]] == (int(color[0:2], 16), int(color[2:4], 16),
                                 int(color[4:6], 16), 255)
