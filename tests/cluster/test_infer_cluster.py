"""Inference through `--scheduler` on a real cluster: same outputs, one model load per worker."""

from __future__ import annotations

import pytest
from distributed import Client

from geovision.inference.predict import bundle_loads
from tests.cluster.infer_cluster_helpers import assert_same_outputs, infer, scenes, unet_bundle

pytestmark = pytest.mark.slow  # a real Dask cluster: run by make test, not make test-fast


def test_many_scenes_on_cluster_equal_local(dask_cluster, tmp_path):
    model = unet_bundle(tmp_path / "model.pt")
    paths = scenes(tmp_path / "scenes", [96, 128, 160, 300])
    # torch on a worker runs one thread per task; so does this reference run, since a float
    # sum over several threads may round differently in its last bit
    local = infer(model, paths, tmp_path / "local", "--workers", "1")
    assert local.wait(timeout=300) == 0, local.stderr.read()
    remote = infer(model, paths, tmp_path / "remote", "--scheduler", dask_cluster.address)
    assert remote.wait(timeout=300) == 0, remote.stderr.read()
    assert_same_outputs(tmp_path / "local", tmp_path / "remote")
    again = infer(model, paths, tmp_path / "again", "--scheduler", dask_cluster.address)
    assert again.wait(timeout=300) == 0, again.stderr.read()
    with Client(dask_cluster.address) as client:
        loads = client.run(bundle_loads)
    assert sorted(loads.values()) == [1, 1], loads
