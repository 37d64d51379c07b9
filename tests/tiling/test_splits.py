"""Block splits that balance classes, per-split class shares in `geovision info` (#17.4)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import zarr

from geovision.geo.windows import PixelWindow
from geovision.options.tile import TileOptions
from geovision.synthetic import make_sample
from geovision.tiling import tile
from geovision.tiling.info import format_summary
from geovision.tiling.plan import (
    DROPPED_SPLIT,
    TileRef,
    assign_splits,
    imbalance,
    missing_classes,
    split_shares,
)

FRACTIONS = (0.6, 0.2, 0.2)


def _grid(n: int = 8, size: int = 32) -> list[TileRef]:
    return [TileRef(0, PixelWindow(r * size, c * size, size, size))
            for r in range(n) for c in range(n)]


def _rare_classes(refs: list[TileRef]) -> np.ndarray:
    """Class 0 everywhere; class 1 in three 64 px blocks, class 2 in three others."""
    counts = np.zeros((len(refs), 3), dtype=np.int64)
    counts[:, 0] = 1000
    for i, ref in enumerate(refs):
        block = (ref.window.row // 64, ref.window.col // 64)
        if block in {(0, 0), (1, 1), (3, 3)}:
            counts[i, 1] = 300
        if block in {(1, 2), (2, 0), (3, 1)}:
            counts[i, 2] = 200
    return counts


def _split(refs, counts, seed, candidates=None):
    return assign_splits(refs, method="block", fractions=FRACTIONS, block_size=64, seed=seed,
                         class_counts=counts, candidates=candidates)


def test_balanced_blocks_give_every_split_every_class():
    refs = _grid()
    counts = _rare_classes(refs)
    probs = np.asarray(FRACTIONS)
    lacking = [seed for seed in range(20)
               if missing_classes(split_shares(_split(refs, counts, seed, 1)[0], counts),
                                  probs)]
    assert lacking, "some seed deals a split without a rare class"
    for seed in lacking[:3]:
        plain, _ = assign_splits(refs, method="block", fractions=FRACTIONS, block_size=64,
                                 seed=seed)
        assert np.array_equal(plain, _split(refs, counts, seed, 1)[0])  # one candidate
        balanced, dropped = _split(refs, counts, seed)
        assert dropped == 0 and DROPPED_SPLIT not in balanced
        totals = split_shares(balanced, counts)
        assert missing_classes(totals, probs) == {}
        assert imbalance(totals, probs) < imbalance(split_shares(plain, counts), probs)
        assert np.array_equal(balanced, _split(refs, counts, seed)[0])  # deterministic
        # blocks keep their shares: 16 blocks of 4 tiles dealt 10, 3, 3
        assert np.bincount(balanced, minlength=3).tolist() == [40, 12, 12]


def test_a_split_without_a_class_is_a_warning(caplog):
    refs = _grid()
    counts = _rare_classes(refs)
    probs = np.asarray(FRACTIONS)
    seed = next(s for s in range(20)
                if "val" in missing_classes(split_shares(_split(refs, counts, s, 1)[0],
                                                         counts), probs))
    with caplog.at_level(logging.WARNING, logger="geovision"):
        assign_splits(refs, method="block", fractions=FRACTIONS, block_size=64, seed=seed,
                      class_counts=counts, class_names=["background", "rural", "urban"],
                      candidates=1)
    assert any(r.levelno == logging.WARNING and "the val split has no" in r.getMessage()
               for r in caplog.records)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return make_sample(tmp_path_factory.mktemp("splits") / "scene", size=192, res=10.0,
                       seed=2, nodata_corner=0.0)


def _shares(store):
    """Class shares of each split's valid mask pixels, straight from the arrays."""
    g = zarr.open_group(str(store), mode="r")
    mask, split = np.asarray(g["mask"][...]), np.asarray(g["split"][...])
    out = {}
    for code, name in enumerate(("train", "val", "test")):
        m = mask[split == code]
        m = m[m != 255]
        out[name] = np.bincount(m, minlength=5) / m.size if m.size else None
    return out


def test_info_shows_class_shares_per_split_and_tile_balances(sample, tmp_path, monkeypatch):
    opts = TileOptions(class_field="kind", tile_size=32, split="block", block_size=64,
                       fractions=(0.7, 0.3, 0.0), seed=3)
    with monkeypatch.context() as m:  # one candidate: the seeded shuffle, unbalanced
        m.setattr("geovision.tiling.plan.BALANCE_CANDIDATES", 1)
        plain = tile(list(sample.rasters), sample.labels, tmp_path / "plain.zarr", opts,
                     quiet=True)
    text = format_summary(plain)
    shares = _shares(plain)
    assert "  class shares per split (pixels)" in text
    for i, name in enumerate(["background", "building", "crop", "forest", "water"]):
        line = f"    {name:<20}{shares['train'][i]:>9.1%}{shares['val'][i]:>9.1%}{'-':>9}"
        assert line in text.splitlines()
    lacking = [n for i, n in enumerate(["background", "building", "crop", "forest", "water"])
               if shares["val"][i] == 0 and shares["train"][i] > 0]
    assert lacking  # this seed deals no pixel of a class to val without balancing
    assert f"  warning: the val split has no {', '.join(lacking)} although the data has " \
           "some" in text
    balanced = tile(list(sample.rasters), sample.labels, tmp_path / "fast.zarr", opts,
                    quiet=True)
    fast = _shares(balanced)
    assert (fast["val"] > 0).all() and (fast["train"] > 0).all()
    assert "warning" not in format_summary(balanced)
