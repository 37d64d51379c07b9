"""The block plan: whole storage blocks per block, the last rows cut smaller."""

from __future__ import annotations

import numpy as np
import pytest

from geovision.geo.windows import tile_grid
from geovision.tiling.blocks import plan_blocks
from geovision.tiling.plan import TileRef


def _refs(*shapes: tuple[int, int], size: int = 128) -> list[TileRef]:
    return [TileRef(i, w) for i, (h, wd) in enumerate(shapes)
            for w in tile_grid(h, wd, size, size)]


def _rows(blocks):
    """Blocks per row group (source, first row), in plan order."""
    out: dict[tuple[int, int], list] = {}
    for b in blocks:
        out.setdefault((b.source, b.window.row), []).append(b)
    return list(out.values())


@pytest.mark.parametrize(("tail_rows", "tail_split"), [(0, 4), (1, 4), (2, 2), (1, 1)])
def test_every_tile_once_in_candidate_order(tail_rows, tail_split):
    refs = _refs((1024, 2048), (768, 2048))
    blocks = plan_blocks(refs, [(256, 256)] * 2, [4, 4], 128, budget=256 * 2048 * 4,
                         tail_rows=tail_rows, tail_split=tail_split)
    tiles = np.concatenate([b.tiles for b in blocks])
    np.testing.assert_array_equal(np.sort(tiles), np.arange(len(refs)))
    assert [int(b.tiles[0]) for b in blocks] == sorted(int(b.tiles[0]) for b in blocks)
    for b in blocks:
        for t, r, c in zip(b.tiles, b.rows, b.cols, strict=True):
            w = refs[t].window
            assert (w.row, w.col) == (b.window.row + r, b.window.col + c)


def test_last_rows_of_the_last_source_are_cut_on_storage_borders():
    refs = _refs((1024, 2048), (768, 2048))
    budget = 256 * 2048 * 4  # one row group of 256 rows, whole
    blocks = plan_blocks(refs, [(256, 256)] * 2, [4, 4], 128, budget=budget, tail_rows=2,
                         tail_split=4)
    rows = _rows(blocks)
    assert [len(r) for r in rows] == [1, 1, 1, 1, 1, 4, 4]  # source 0: 4 rows; 1: 3 rows
    for part in rows[-2:]:
        assert [b.window.col for b in part] == [0, 512, 1024, 1536]
        assert all(b.window.width == 512 for b in part)
        assert all(b.window.height * b.window.width * 4 <= budget // 4 for b in part)
    whole = plan_blocks(refs, [(256, 256)] * 2, [4, 4], 128, budget=budget, tail_rows=0)
    assert [len(r) for r in _rows(whole)] == [1] * 7


def test_a_cut_keeps_at_least_one_storage_block():
    refs = _refs((512, 1024), size=256)
    blocks = plan_blocks(refs, [(512, 512)], [4], 256, budget=512 * 1024 * 4, tail_rows=1,
                         tail_split=64)
    assert [(b.window.col, b.window.width) for b in blocks] == [(0, 512), (512, 512)]
