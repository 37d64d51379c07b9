"""Which tiles a dataset holds: candidate windows and their split."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from geovision.formats import SPLITS
from geovision.geo.raster import RasterInfo
from geovision.geo.windows import PixelWindow, tile_grid

log = logging.getLogger(__name__)

#: Seeded block assignments compared by :func:`assign_splits` when class counts are known.
BALANCE_CANDIDATES = 256

#: Split code of a tile left out because it reaches into a block of another split; such
#: tiles are dropped before the store is written, so the code is never stored.
DROPPED_SPLIT = 255


@dataclass(frozen=True)
class TileRef:
    """One tile: index of its source raster and its window there."""

    source: int
    window: PixelWindow


def candidate_tiles(sources: Sequence[RasterInfo], size: int, stride: int) -> list[TileRef]:
    """Every window of the grid over every source, sources in order, rows then columns."""
    return [
        TileRef(i, w) for i, src in enumerate(sources) for w in tile_grid(
            src.height, src.width, size, stride)
    ]


def assign_splits(
    refs: Sequence[TileRef],
    *,
    method: str,
    fractions: Sequence[float],
    block_size: int,
    seed: int,
    class_counts: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    candidates: int | None = None,
) -> tuple[np.ndarray, int]:
    """Give each tile a split: 0 train, 1 val, 2 test.

    ``block``: the sources are cut into square blocks of ``block_size`` pixels; the blocks are
    shuffled with ``seed`` and dealt to the splits in proportion to ``fractions``; a tile goes
    to the block holding its centre. A tile that reaches into a block of another split would
    share pixels across splits, so it is left out (marked :data:`DROPPED_SPLIT`). ``random``:
    each tile draws its split independently.

    With ``class_counts`` (pixels, tiles or boxes of each class per tile), the block split
    balances the classes: ``candidates`` (None: :data:`BALANCE_CANDIDATES`) seeded shuffles
    are dealt, and the one whose
    per-split class shares are closest to the whole's is kept (:func:`balanced_blocks`), the
    same for the same seed. A split that still misses a class present in the data is logged
    as a warning (both methods), naming the class from ``class_names``.

    Returns:
        (split per tile, tiles left out on block borders)
    """
    rng = np.random.default_rng(seed)
    probs = np.asarray(fractions, dtype=np.float64)
    probs = probs / probs.sum()
    if method == "random":
        splits = rng.choice(3, size=len(refs), p=probs).astype(np.uint8)
        if class_counts is not None:
            warn_missing_classes(splits, class_counts, probs, class_names)
        return splits, 0

    def block_of(ref: TileRef, dr: int, dc: int) -> tuple[int, int, int]:
        w = ref.window
        return (ref.source, (w.row + dr) // block_size, (w.col + dc) // block_size)

    centre_blocks = [block_of(r, r.window.height // 2, r.window.width // 2) for r in refs]
    blocks = sorted(set(centre_blocks))
    counts = _deal(len(blocks), probs)
    if class_counts is not None and len(refs):
        index = {b: j for j, b in enumerate(blocks)}
        per_block = np.zeros((len(blocks), class_counts.shape[1]), dtype=np.float64)
        np.add.at(per_block, [index[b] for b in centre_blocks], class_counts)
        block_codes = balanced_blocks(per_block, counts, probs, rng,
                                      BALANCE_CANDIDATES if candidates is None else candidates)
    else:
        block_codes = _dealt(rng.permutation(len(blocks)), counts)
    block_split = {b: int(block_codes[j]) for j, b in enumerate(blocks)}
    splits = np.array([block_split[b] for b in centre_blocks], dtype=np.uint8)
    dropped = 0
    for i, ref in enumerate(refs):
        w = ref.window
        if (w.row // block_size == (w.row + w.height - 1) // block_size
                and w.col // block_size == (w.col + w.width - 1) // block_size):
            continue  # inside one block, its centre's: never left out
        corners = {block_of(ref, dr, dc) for dr in (0, w.height - 1) for dc in (0, w.width - 1)}
        r0, c0 = min(b[1] for b in corners), min(b[2] for b in corners)
        r1, c1 = max(b[1] for b in corners), max(b[2] for b in corners)
        touched = {
            block_split.get((ref.source, r, c), splits[i])
            for r in range(r0, r1 + 1) for c in range(c0, c1 + 1)
        }
        if len(touched) > 1:
            splits[i] = DROPPED_SPLIT
            dropped += 1
    if class_counts is not None:
        warn_missing_classes(splits, class_counts, probs, class_names)
    return splits, dropped


def _dealt(order: np.ndarray, counts: Sequence[int]) -> np.ndarray:
    """Split code of each block: the first ``counts[0]`` of ``order`` train, and so on."""
    codes = np.empty(len(order), dtype=np.uint8)
    pos = 0
    for split, n in enumerate(counts):
        codes[order[pos:pos + n]] = split
        pos += n
    return codes


def split_shares(codes: np.ndarray, weights: np.ndarray, splits: int = 3) -> np.ndarray:
    """``(splits, K)`` class totals of each split: the sum of ``weights`` rows per code."""
    out = np.zeros((splits, weights.shape[1]), dtype=np.float64)
    keep = codes < splits
    if _whole(weights):  # sums of whole numbers below 2**53 are exact in any order
        for k in range(splits):
            out[k] = weights[codes == k].sum(axis=0)
        return out
    np.add.at(out, codes[keep], weights[keep])
    return out


def _whole(weights: np.ndarray) -> bool:
    """Whether ``weights`` are whole numbers whose sums are exact in any order (< 2**53)."""
    return weights.dtype.kind in "iub" or (
        weights.dtype.kind == "f" and bool(np.all(np.mod(weights, 1) == 0))
        and float(np.abs(weights).sum()) < 2**53)


def _best_of(codes: np.ndarray, per_block: np.ndarray, probs: np.ndarray
             ) -> tuple[tuple[int, float], np.ndarray]:
    """The first assignment (row of ``codes``) with the smallest :func:`imbalance`, at once.

    The same figures as :func:`imbalance` of each row's :func:`split_shares` (whole-number
    ``per_block``: the class totals are exact in any order; each split's share difference
    is summed along the class axis as :func:`imbalance` sums it).
    """
    splits = np.arange(3, dtype=codes.dtype)
    onehot = (codes[:, None, :] == splits[None, :, None]).astype(np.float64)  # (C, 3, B)
    totals = onehot @ per_block.astype(np.float64)  # (C, 3, K), exact (whole numbers)
    whole = totals.sum(axis=1)  # (C, K)
    grand = whole.sum(axis=1)  # (C,)
    missing = np.zeros(len(codes), dtype=np.int64)
    worst = np.zeros(len(codes), dtype=np.float64)
    live = grand != 0
    target = whole / np.where(live, grand, 1.0)[:, None]
    present = whole > 0
    for k in range(3):
        if probs[k] <= 0:
            continue
        n = totals[:, k].sum(axis=1)
        missing += (present & (totals[:, k] == 0)).sum(axis=1)
        share = np.where((n > 0)[:, None], totals[:, k] / np.where(n > 0, n, 1.0)[:, None],
                         0.0)
        worst = np.maximum(worst, 0.5 * np.abs(share - target).sum(axis=1))
    missing[~live], worst[~live] = 0, 0.0
    first = int(np.lexsort((worst, missing))[0])  # stable: the earliest on ties
    return (int(missing[first]), float(worst[first])), codes[first]


def imbalance(totals: np.ndarray, probs: np.ndarray) -> tuple[int, float]:
    """How far the splits' class shares are from the whole's (smaller is better).

    Returns:
        (classes present in the data that a split with a share lacks, counted per split;
        the largest total variation distance between a split's class shares and the
        whole's). Compared as a tuple: a split missing a class weighs more than any
        difference of shares.
    """
    whole = totals.sum(axis=0)
    if whole.sum() == 0:
        return 0, 0.0
    target = whole / whole.sum()
    present = whole > 0
    missing, worst = 0, 0.0
    for k in range(len(totals)):
        if probs[k] <= 0:
            continue
        n = totals[k].sum()
        missing += int((present & (totals[k] == 0)).sum())
        share = totals[k] / n if n > 0 else np.zeros_like(target)
        worst = max(worst, 0.5 * float(np.abs(share - target).sum()))
    return missing, worst


def balanced_blocks(per_block: np.ndarray, counts: Sequence[int], probs: np.ndarray,
                    rng: np.random.Generator, candidates: int) -> np.ndarray:
    """The split code of each block, classes balanced.

    ``candidates`` shuffles are drawn from ``rng`` (the first is the one the unbalanced split
    uses) and dealt with ``counts`` blocks per split; the assignment with the smallest
    :func:`imbalance` of its class totals wins (the earliest on ties).

    Args:
        per_block: ``(blocks, K)`` class counts of each block.
        counts: blocks per split.
        probs: the splits' shares (a split without one is not compared).
        rng: the seeded generator.
        candidates: shuffles compared.
    """
    best: tuple[tuple[int, float], np.ndarray] | None = None
    drawn = [_dealt(rng.permutation(len(per_block)), counts) for _ in range(max(1, candidates))]
    if _whole(per_block):
        best = _best_of(np.stack(drawn), per_block, probs)
    else:
        for codes in drawn:
            score = imbalance(split_shares(codes, per_block), probs)
            if best is None or score < best[0]:
                best = (score, codes)
    assert best is not None
    log.info("split blocks: the most class-balanced of %d seeded assignments (largest "
             "difference of class shares to the whole: %.3f)", max(1, candidates),
             best[0][1])
    return best[1]


def missing_classes(totals: np.ndarray, probs: Sequence[float] | None = None
                    ) -> dict[str, list[int]]:
    """Classes present in the data that a split lacks: ``{split name: [class ids]}``.

    Args:
        totals: ``(3, K)`` class totals per split.
        probs: the splits' shares; a split with none (or without tiles) is not reported.
    """
    present = totals.sum(axis=0) > 0
    out: dict[str, list[int]] = {}
    for k, name in enumerate(SPLITS):
        if (probs is not None and probs[k] <= 0) or totals[k].sum() == 0:
            continue
        lacking = np.flatnonzero(present & (totals[k] == 0)).tolist()
        if lacking:
            out[name] = lacking
    return out


def warn_missing_classes(splits: np.ndarray, class_counts: np.ndarray,
                         probs: Sequence[float], names: Sequence[str] | None = None) -> None:
    """Log a warning for each split that lacks a class present in the data."""
    for split, ids in missing_classes(split_shares(splits, class_counts), probs).items():
        shown = ", ".join(names[i] if names is not None and i < len(names) else f"class {i}"
                          for i in ids)
        log.warning("the %s split has no %s although the data has some; a metric chosen "
                    "on it ignores that class: change --seed, --split-block-size or "
                    "--fractions", split, shown)


def _deal(n: int, probs: np.ndarray) -> list[int]:
    """Split n blocks by probabilities; a split with a share gets a block when n allows."""
    counts = np.floor(probs * n).astype(int)
    wanted = probs > 0
    while counts.sum() < n:
        counts[np.argmax(probs * n - counts)] += 1
    for k in range(3):
        if wanted[k] and counts[k] == 0 and n >= int(wanted.sum()):
            donor = int(np.argmax(counts))
            counts[donor] -= 1
            counts[k] += 1
    return [int(c) for c in counts]
