"""The Dataset over the Zarr tile store: one tile per item, splits, normalization, workers."""

import numpy as np
import pytest
import torch
import zarr
from torch.utils.data import DataLoader

from geovision.data import Augment, EpochSampler, TileDataset, read_info
from geovision.errors import InputError, InputFileError
from geovision.synthetic import make_sample
from geovision.tiling import TileOptions, tile


def _store(root, task="segmentation", dtype="uint8", bands=4):
    sample = make_sample(root / "s", size=96, dtype=dtype, bands=bands, seed=2)
    labels = sample.objects if task == "detection" else sample.labels
    out = root / "t.zarr"
    tile(list(sample.rasters), labels, out,
         TileOptions(task=task, class_field=None if task == "detection" else "kind",
                     tile_size=32, split="random", fractions=(0.6, 0.2, 0.2)), quiet=True)
    return out


@pytest.fixture(scope="module")
def seg(tmp_path_factory):
    return _store(tmp_path_factory.mktemp("seg"))


def test_items_and_splits(seg):
    info = read_info(seg)
    parts = {s: TileDataset(seg, s, info=info) for s in ("train", "val", "test")}
    total = zarr.open_group(str(seg), mode="r")["split"].shape[0]
    assert sum(len(d) for d in parts.values()) == total
    assert not set(parts["train"].indices) & set(parts["val"].indices)
    item = parts["train"][0]
    assert item["image"].dtype == torch.float32 and item["image"].shape == (4, 32, 32)
    assert item["mask"].dtype == torch.uint8 and item["mask"].shape == (32, 32)
    raw = np.asarray(zarr.open_group(str(seg), mode="r")["image"][item["index"]], np.float32)
    expected = (raw - np.array(info.mean)[:, None, None]) / np.array(info.std)[:, None, None]
    assert np.allclose(item["image"].numpy(), expected, atol=1e-4)


@pytest.mark.parametrize("dtype", ["uint16", "int16", "float32"])
def test_any_dtype_and_band_count(tmp_path, dtype):
    store = _store(tmp_path, dtype=dtype, bands=3)
    ds = TileDataset(store, "train")
    stack = torch.stack([ds[i]["image"] for i in range(len(ds))])
    assert stack.shape[1] == 3 and torch.isfinite(stack).all()
    assert abs(float(stack.mean())) < 1.0  # normalized with the store's statistics


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
def test_deferred_normalization_gives_the_same_batches(tmp_path, dtype):
    store = _store(tmp_path, dtype=dtype, bands=3)
    augment = Augment()
    now = TileDataset(store, "train", augment=augment, seed=3)
    later = TileDataset(store, "train", augment=augment, seed=3, defer_normalization=True)
    assert now.batch_normalize is None and later.batch_normalize is not None
    a = now.collate([now[i] for i in range(len(now))])
    b = later.collate([later[i] for i in range(len(later))])
    assert b["image"].dtype == getattr(torch, dtype)
    assert torch.equal(a["image"], later.batch_normalize(b["image"]))
    assert torch.equal(a["mask"], b["mask"])
    with_v2 = TileDataset(store, "train", defer_normalization=True,
                          augment=Augment(v2=[{"name": "GaussianBlur",
                                               "params": {"kernel_size": 3}}]))
    assert with_v2.batch_normalize is None  # v2 transforms see normalized images


@pytest.mark.parametrize("task", ["segmentation", "classification"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32"])
@pytest.mark.parametrize("defer", [False, True])
def test_whole_batches_equal_collated_items(tmp_path, task, dtype, defer):
    store = _store(tmp_path, task=task, dtype=dtype, bands=3)
    for augment in (None, Augment()):
        ds = TileDataset(store, None, augment=augment, seed=1, defer_normalization=defer)
        keys = [(i, 2) for i in range(len(ds))][::-1]
        batch, items = ds.__getitems__(keys), ds.collate([ds[k] for k in keys])
        assert batch.keys() == items.keys()
        for name in batch:
            assert batch[name].dtype == items[name].dtype
            assert torch.equal(batch[name], items[name]), name


def test_zarr_fallback_reads_the_same(seg):
    fast = TileDataset(seg, None)
    slow = TileDataset(seg, None)
    assert all(r is not None for r in fast._readers.values())
    slow._readers = {}
    for i in range(len(fast)):
        a, b = fast[i], slow[i]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["mask"], b["mask"])


def test_workers_read_the_same_tiles(seg):
    ds = TileDataset(seg, "train")
    ds._store()  # a handle opened in the parent must not be shared with the workers
    batches = []
    for workers in (0, 2):
        loader = DataLoader(ds, batch_size=4, num_workers=workers, collate_fn=ds.collate,
                            sampler=EpochSampler(len(ds), shuffle=True, seed=5))
        batches.append([b for b in loader])
    for a, b in zip(*batches, strict=True):
        assert torch.equal(a["index"], b["index"]) and torch.equal(a["image"], b["image"])


def test_sampler_order_depends_on_seed_and_epoch():
    s = EpochSampler(20, shuffle=True, seed=1)
    first = s.order()
    s.set_epoch(1)
    assert s.order() != first and sorted(s.order()) == list(range(20))
    s.set_epoch(0)
    assert s.order() == first
    ranks = [EpochSampler(21, shuffle=True, seed=1, rank=r, world=2).order() for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 11
    assert set(ranks[0]) | set(ranks[1]) == set(range(21))


def test_detection_items(tmp_path):
    store = _store(tmp_path, task="detection")
    ds = TileDataset(store, None)
    g = zarr.open_group(str(store), mode="r")
    n_boxes = sum(len(ds[i]["boxes"]) for i in range(len(ds)))
    assert n_boxes == g["boxes"].shape[0]
    batch = ds.collate([ds[i] for i in range(3)])
    assert isinstance(batch["boxes"], list) and batch["labels"][0].dtype == torch.int64


def test_missing_or_wrong_store(tmp_path):
    with pytest.raises(InputFileError, match="geovision tile"):
        read_info(tmp_path / "nope.zarr")
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(InputError, match="not a geovision tile dataset"):
        read_info(tmp_path / "other.zarr")
