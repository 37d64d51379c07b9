"""The thread budget, and model inputs staged into reused (pinned on CUDA) buffers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from geovision.inference.predict import cached_bundle, check_window, dihedral
from geovision.inference.spare import NoSpareTime, SpareTime, idle_priority_available
from geovision.inference.staging import BatchStager, forward
from geovision.inference.threads import STRATEGIES, ThreadBudget, available_cores, plan
from geovision.models.bundle import load_bundle
from tests.inference.infer_helpers import TINY_UNET, write_bundle


@given(st.integers(1, 256), st.sampled_from(["cpu", "cuda", "cuda:1"]))
def test_default_budgets_never_oversubscribe(cores, device):
    budget = plan(device, cores)
    assert not budget.oversubscribed
    assert max(budget.torch, budget.gdal) <= cores
    if device == "cpu":  # the model's thread does the rest between blocks, with every core
        # (and, on Linux, a helper at idle priority reads and encodes ahead in spare time)
        strategy = "spare" if idle_priority_available() else "inline"
        assert (budget.strategy, budget.torch, budget.helpers, budget.gdal) == (
            strategy, cores, 0, cores)
    else:  # the device runs the model: helpers read and write beside it, on a lane each
        # where there are cores for both
        assert (budget.strategy, budget.torch, budget.helpers, budget.reads_ahead) == (
            "overlap", 1, min(3, max(1, cores - 1)), 2 if cores >= 4 else 1)
        assert budget.encoders == min(8, max(0, cores - 1 - budget.helpers * budget.gdal))
        assert 1 + budget.helpers * budget.gdal + budget.encoders <= max(cores, 2)


def test_forced_strategies_on_a_cpu():
    split = plan("cpu", 8, "split")
    assert split == ThreadBudget("split", 8, torch=7, helpers=1, gdal=1)
    assert not split.oversubscribed
    overlap = plan("cpu", 8, "overlap")  # today's layout, kept to measure against
    assert overlap.torch == 8 and overlap.helpers == 1 and overlap.oversubscribed
    assert plan("cpu", 8, "inline") == ThreadBudget("inline", 8, torch=8, helpers=0, gdal=8)
    assert set(STRATEGIES) == {"spare", "inline", "split", "overlap"}
    with pytest.raises(ValueError, match="choose one of spare, inline, split, overlap"):
        ThreadBudget("fast", 2, torch=2, helpers=0, gdal=2)
    with pytest.raises(ValueError, match="takes turns on at most 2 cores"):
        ThreadBudget("inline", 2, torch=4, helpers=0, gdal=2)
    assert 1 <= available_cores()


def test_cuda_encodes_on_prompt_helpers_where_cores_are_left():
    budget = plan("cuda", 16)
    assert (budget.helpers, budget.gdal, budget.encoders, budget.reads_ahead) == (3, 2, 8, 2)
    with budget.spare_time() as spare:
        assert isinstance(spare, SpareTime) and not spare.idle and spare.threads == 8
    assert isinstance(plan("cuda", 4).spare_time(), NoSpareTime)
    assert isinstance(plan("cpu", 4, "split").spare_time(), NoSpareTime)


def test_budget_sets_and_restores_torch_threads():
    before = torch.get_num_threads()
    with plan("cpu", 1).applied():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_inline_work_runs_at_once_in_the_caller_and_helpers_keep_order():
    seen: list[tuple[int, int]] = []
    with plan("cpu", 2).lanes() as (reads, writes):
        f = reads.submit(lambda: seen.append((1, threading.get_ident())))
        assert f.done() and seen == [(1, threading.get_ident())]
        failed = writes.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failed.result()
    for budget, lanes in ((plan("cpu", 2, "split"), 1), (plan("cuda", 2), 1),
                          (plan("cuda", 3), 2)):
        order: dict[str, list[int]] = {"read": [], "write": []}
        threads: dict[str, set[int]] = {"read": set(), "write": set()}

        def note(lane: str, i: int, order: dict[str, list[int]] = order,
                 threads: dict[str, set[int]] = threads) -> None:
            order[lane].append(i)
            threads[lane].add(threading.get_ident())

        with budget.lanes() as (reads, writes):
            futures = [ex.submit(note, lane, i) for i in range(50)
                       for lane, ex in (("read", reads), ("write", writes))]
            for f in futures:
                f.result()
        assert order == {"read": list(range(50)), "write": list(range(50))}  # each in order
        assert threading.get_ident() not in threads["read"] | threads["write"]
        assert len(threads["read"]) == len(threads["write"]) == 1
        assert len(threads["read"] | threads["write"]) == lanes, budget


@pytest.fixture
def tiny_model(tmp_path):
    return cached_bundle(write_bundle(tmp_path / "seg.pt", "segmentation", "unet",
                                      params=TINY_UNET), "cpu").model


def test_models_run_channels_last_on_a_cpu_with_the_same_outputs(tmp_path):
    path = write_bundle(tmp_path / "seg.pt", "segmentation", "unet", params=TINY_UNET)
    fast = cached_bundle(path, "cpu").model
    plain = load_bundle(path).model
    convs = [m.weight for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(m.weight.is_contiguous(memory_format=torch.channels_last)
                   for m in plain.modules() if isinstance(m, torch.nn.Conv2d))
    x = torch.from_numpy(np.random.default_rng(3).standard_normal((2, 4, 64, 64))
                         .astype(np.float32))
    with torch.inference_mode():
        torch.testing.assert_close(fast(x), plain(x), rtol=0, atol=1e-4)


@pytest.mark.parametrize("tta", [False, True])
def test_forward_is_the_mean_softmax_of_the_transforms(tiny_model, tta):
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((3, 4, 64, 64))
                         .astype(np.float32))
    with torch.inference_mode():
        expected = torch.stack([inv(torch.softmax(tiny_model(fwd(x)), dim=1))
                                for fwd, inv in dihedral(tta)]).mean(0)
        got = forward(tiny_model, x, tta)
    assert got.shape == (3, 5, 64, 64)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    torch.testing.assert_close(got.sum(1), torch.ones(3, 64, 64), rtol=0, atol=1e-5)


def test_staged_batches_are_the_windows_contiguous_in_one_reused_buffer():
    pixels = np.random.default_rng(1).standard_normal((4, 200, 150)).astype(np.float32)
    pixels = np.asfortranarray(pixels)  # as a reflect-padded read leaves them
    windows = [(10 + 20 * i, 5 + 7 * i) for i in range(7)]
    stager = BatchStager(3, 4, 64)
    pointers = set()
    seen = []
    for origins, x in stager.batches(pixels, (10, 5), windows):
        expected = np.stack([pixels[:, r - 10:r + 54, c - 5:c + 59] for r, c in origins])
        assert x.is_contiguous() and np.array_equal(x.numpy(), expected)
        pointers.add(x.data_ptr())
        seen += origins
    assert seen == windows and len(pointers) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_come_from_pinned_buffers_without_blocking(tiny_model):
    pixels = np.random.default_rng(2).standard_normal((4, 300, 300)).astype(np.float32)
    windows = [(r, c) for r in range(0, 236, 48) for c in range(0, 236, 48)]
    stager = BatchStager(4, 4, 64, "cuda")
    assert all(h.is_pinned() for h in stager._host)
    for origins, x in stager.batches(pixels, (0, 0), windows):
        assert x.device.type == "cuda"
        expected = np.stack([pixels[:, r:r + 64, c:c + 64] for r, c in origins])
        np.testing.assert_array_equal(x.cpu().numpy(), expected)


def test_windows_are_tried_once_before_any_work_except_the_trained_size(tmp_path):
    bundle = cached_bundle(write_bundle(tmp_path / "seg.pt", "segmentation", "unet",
                                        params=TINY_UNET), "cpu")
    calls: list[tuple[int, ...]] = []
    hook = bundle.model.register_forward_hook(
        lambda module, args, out: calls.append(tuple(args[0].shape)))
    try:
        check_window(bundle, 64, 4, "cpu")  # its tile size: it was trained on it
        assert calls == []
        check_window(bundle, 96, 4, "cpu")
        assert calls == [(1, 4, 96, 96)]
    finally:
        hook.remove()
