"""Values fixed by geovision's file formats (DESIGN.md), each with one name and one meaning.

Several of them happen to be 255; they are different things and are named apart.
"""

from __future__ import annotations

#: Split names, in the order of their codes in a tile store's ``split`` array (0, 1, 2).
SPLITS = ("train", "val", "test")
#: Mask value of a tile store for pixels that count for nothing (nodata, unlabeled).
IGNORE_INDEX = 255
#: Class id of a prediction raster where the scene holds no data.
CLASS_NODATA = 255
#: Stored value of a compact (uint8) probability raster where the scene holds no data.
PROB_NODATA = 255
#: Compact probabilities store ``round(p * PROB_SCALE)`` in uint8: 0..254 <-> 0..1.
PROB_SCALE = 254.0


def split_code(name: str) -> int:
    """The code of a split in a tile store's ``split`` array."""
    return SPLITS.index(name)
