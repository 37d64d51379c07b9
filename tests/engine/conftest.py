"""Small generated tile stores shared by the engine tests (classes visible in the pixels)."""

import pytest

from geovision.synthetic import make_sample
from geovision.tiling import TileOptions, tile


def _store(root, task, *, size, tile_size, res=10.0, objects=False, n_objects=None,
           split="block", fractions=(0.7, 0.3, 0.0), block_size=None, seed=0):
    sample = make_sample(root / "scene", size=size, res=res, seed=seed, n_objects=n_objects,
                         nodata_corner=0.0)
    labels = sample.objects if objects else sample.labels
    out = root / f"{task}.zarr"
    tile(list(sample.rasters), labels, out,
         TileOptions(task=task, class_field=None if objects else "kind", tile_size=tile_size,
                     split=split, fractions=fractions, block_size=block_size, seed=seed),
         quiet=True)
    return out


@pytest.fixture(scope="session")
def seg_store(tmp_path_factory):
    return _store(tmp_path_factory.mktemp("seg"), "segmentation", size=192, tile_size=32,
                  block_size=64)


@pytest.fixture(scope="session")
def cls_store(tmp_path_factory):
    return _store(tmp_path_factory.mktemp("cls"), "classification", size=192, tile_size=16,
                  split="random", fractions=(0.75, 0.25, 0.0))


@pytest.fixture(scope="session")
def det_store(tmp_path_factory):
    return _store(tmp_path_factory.mktemp("det"), "detection", size=384, tile_size=64, res=4.0,
                  objects=True, n_objects=40, split="random", fractions=(0.75, 0.25, 0.0),
                  seed=1)
