"""In-place blending in pooled buffers gives BlockWriter's results, to the bit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from infer_helpers import TINY_UNET, write_bundle

from geovision.inference.accumulate import (
    Accumulator,
    BufferPool,
    Seams,
    ShareCache,
    finish_in_place,
)
from geovision.inference.blocks import (
    BlockWriter,
    Job,
    block_pieces,
    finish_seam,
    piece_path,
    read_block,
    run_model,
    save_array,
    seam_path,
    window_batches,
)
from geovision.inference.grid import make_layout, window_stride
from geovision.synthetic import make_sample


def make_job(tmp_path: Path, scene: str, model: Path, shape: tuple[int, int], window: int,
             overlap: float, blend: str, prob_dtype: str, per_block: int):
    stride = window_stride(window, overlap)
    layout = make_layout(*shape, window, stride, per_block=per_block)
    job = Job(scene=scene, bands=(1, 2, 3, 4), model=str(model), device="cpu",
              task="segmentation", window=window, stride=stride, blend=blend, batch_size=3,
              tta=False, prob_dtype=prob_dtype, probabilities=True, score_threshold=0.5,
              mean=(110.0,) * 4, std=(50.0,) * 4, height=shape[0], width=shape[1],
              n_rows=len(layout.row_origins), n_cols=len(layout.col_origins), num_classes=5,
              scratch=str(tmp_path / "scratch"))
    Path(job.scratch).mkdir()
    return job, layout


@pytest.mark.parametrize(("blend", "prob_dtype", "overlap", "per_block"), [
    ("gaussian", "uint8", 0.25, 2), ("gaussian", "float32", 0.5, 1), ("none", "uint8", 0.25, 3),
    ("linear", "float32", 0.25, 2)])
def test_blocks_give_blockwriters_results_to_the_bit(tmp_path, blend, prob_dtype, overlap,
                                                     per_block):
    shape = (300, 230)  # windows pass the scene's edges: reflect-padded, non-contiguous input
    sample = make_sample(tmp_path / "s", size=shape[::-1], seed=4, nodata_corner=0.2)
    model = write_bundle(tmp_path / "seg.pt", "segmentation", "unet", params=TINY_UNET)
    job, layout = make_job(tmp_path, sample.rasters[0], model, shape, 64, overlap, blend,
                           prob_dtype, per_block)
    pool = BufferPool()
    shares = ShareCache(layout.row_origins, layout.col_origins, job.window, job.stride, blend,
                        "cpu")
    seams = Seams(prob_dtype)
    compared = 0
    for block in layout.blocks:
        data = read_block(job, block)
        pieces = block_pieces(block, layout.pieces)
        ref = BlockWriter(job, data, pieces)
        mine = Accumulator(block, data.valid, pieces, 5, job.window, shares, pool,
                           prob_dtype=prob_dtype)
        for origins, batch in window_batches(job, data):
            probs = run_model(job, batch)  # one model output, fed to both
            ref.add(origins, probs)
            mine.add(origins, probs)
        expected = {p.name: a for p, a in ref.results()}
        for p, a in ref.results():
            save_array(p, a)
        done, parts = mine.finish()
        for f in done:
            assert f.classes.tobytes() == expected[piece_path(job.scratch, f.piece,
                                                              "class").name].tobytes()
            assert f.probs is not None
            assert f.probs.tobytes() == expected[piece_path(job.scratch, f.piece,
                                                            "prob").name].tobytes()
            compared += 1
        for part in parts:
            name = seam_path(job.scratch, part.piece, part.owner).name
            assert part.total.tobytes() == np.ascontiguousarray(expected[name]).tobytes()
            finished = seams.add(part)
            if finished is not None:  # every owner has given: BlockWriter's finish_seam
                finish_seam(job, part.piece)
                for what, got in (("class", finished.classes), ("prob", finished.probs)):
                    ref_arr = np.load(piece_path(job.scratch, part.piece, what))
                    assert got is not None and got.tobytes() == ref_arr.tobytes()
                compared += 1
    assert seams.waiting == 0 and compared == len(layout.pieces)
    assert pool.allocated == 1  # one buffer served every block
    assert shares.distinct <= 9  # first, inner and last windows along each axis


def test_finish_picks_the_first_of_equal_maxima_like_argmax():
    rng = np.random.default_rng(0)
    probs = rng.integers(0, 3, (5, 40, 50)).astype(np.float32) / 4  # many ties
    invalid = torch.from_numpy(rng.random((40, 50)) < 0.1)
    expected = np.argmax(probs, axis=0).astype(np.uint8)
    expected[invalid.numpy()] = 255
    classes, stored = finish_in_place(torch.from_numpy(probs.copy()), invalid, "uint8")
    np.testing.assert_array_equal(classes[0], expected)
    assert stored is not None and (stored[:, invalid.numpy()] == 255).all()
    np.testing.assert_array_equal(stored[:, ~invalid.numpy()],
                                  np.rint(probs * 254).astype(np.uint8)[:, ~invalid.numpy()])


def test_pool_reuses_buffers_large_enough_and_zeroes_them():
    pool = BufferPool()
    a = pool.take((5, 100, 100))
    a.fill_(3.0)
    pool.give(a)
    b = pool.take((5, 90, 80))  # smaller: the same buffer, zeroed
    assert pool.allocated == 1 and float(b.abs().sum()) == 0.0
    c = pool.take((5, 100, 100))  # b is out: a second buffer
    assert pool.allocated == 2
    pool.give(b)
    pool.give(c)
    d = pool.take((5, 120, 100))  # larger than both: a third
    assert pool.allocated == 3 and d.shape == (5, 120, 100)
