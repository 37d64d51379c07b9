"""A worker killed in the middle of an inference job: the job still completes, identically."""

from __future__ import annotations

import time

import pytest

from tests.cluster.infer_cluster_helpers import assert_same_outputs, infer, scenes, unet_bundle

pytestmark = pytest.mark.slow  # a real Dask cluster: run by make test, not make test-fast


def test_killing_a_worker_mid_job_loses_nothing(dask_cluster, tmp_path):
    model = unet_bundle(tmp_path / "model.pt")
    paths = scenes(tmp_path / "scenes", [1024])
    reference = infer(model, paths, tmp_path / "reference", "--workers", "1")
    assert reference.wait(timeout=300) == 0, reference.stderr.read()

    out = tmp_path / "remote"
    job = infer(model, paths, out, "--scheduler", dask_cluster.address, "--block-windows", "2")
    scratch = out / ".scene0.partial"
    deadline = time.time() + 120
    while time.time() < deadline and job.poll() is None:
        if scratch.exists() and len(list(scratch.glob("*.done"))) >= 4:
            break
        time.sleep(0.05)
    assert job.poll() is None, "the job finished before a worker could be killed"
    done_before = len(list(scratch.glob("*.done")))
    dask_cluster.kill_worker(dask_cluster.workers[0])
    assert job.wait(timeout=300) == 0, job.stderr.read()
    assert done_before < 121  # blocks of 2x2 windows over 21x21 windows: most were still to do
    assert not scratch.exists()
    assert_same_outputs(tmp_path / "reference", out)
