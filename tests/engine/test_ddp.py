"""DistributedDataParallel on a CPU: torchrun with two gloo processes, kill -9 and --resume.

The GPU code path (process group, DDP wrapper, sharded sampler, all-reduced losses and
metrics, rank 0 writing) run end to end without a GPU (issue 12, item 8).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "segmentation.yaml"
DROP = ("time/train_s", "time/epoch_s", "tiles_per_s")


def _torchrun(*args):
    exe = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    return [exe, "--standalone", "--nproc_per_node=2", "-m", "geovision", "-q", "train", *args]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def _sets(store, out, name):
    keys = {"data.dataset": store, "output": out, "name": name, "train.epochs": 4,
            "data.workers": 0, "data.batch_size": 4, "model.params.base_channels": 8,
            "model.params.depth": 2, "train.previews": 0, "train.device": "cpu"}
    return [a for k, v in keys.items() for a in ("--set", f"{k}={v}")]


def _metrics(session):
    lines = (session / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in DROP} for line in lines]


def _rank_pid(parent, rank):
    """The worker of ``rank`` among the processes under ``parent`` (torchrun's agent)."""
    for _ in range(400):
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                env = (proc / "environ").read_bytes().split(b"\0")
                stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if f"RANK={rank}".encode() in env and int(stat[1]) == parent:
                return int(proc.name)
        time.sleep(0.05)
    raise AssertionError(f"no rank {rank} process under {parent}")


@pytest.mark.slow  # three torchrun runs of two processes (about 3 minutes on 2 cores)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_torchrun_gloo_kill_9_of_one_rank_then_resume(seg_store, tmp_path):
    short = [*_sets(seg_store, tmp_path, "ref"), "--set", "train.epochs=1"]
    assert subprocess.run(_torchrun(str(CONFIG), *short), env=_env()).returncode == 0
    # --overwrite: rank 0 alone deletes the old run (two ranks deleting it raced)
    ref = subprocess.run(_torchrun(str(CONFIG), *_sets(seg_store, tmp_path, "ref"),
                                   "--overwrite"),
                         env=_env(), capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-2000:]
    assert ref.stdout.count("4 epochs, best val/miou") == 1  # rank 0 alone reports

    proc = subprocess.Popen(_torchrun(str(CONFIG), *_sets(seg_store, tmp_path, "killed")),
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    try:
        deadline = time.time() + 300
        while not last.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.05)
        os.kill(_rank_pid(proc.pid, 1), signal.SIGKILL)  # one rank dies; torchrun ends
        assert proc.wait(timeout=120) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert torch.load(last, weights_only=True)["epoch"] < 4

    again = subprocess.run(_torchrun("--resume", str(tmp_path / "killed")), env=_env(),
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    a = torch.load(tmp_path / "ref" / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["epoch"] == b["epoch"] == 4
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert _metrics(tmp_path / "ref") == _metrics(tmp_path / "killed")
