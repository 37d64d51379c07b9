"""Showing a raster's bands as an image: which bands are red, green and blue, and the stretch."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: The stretch maps these percentiles of a band's valid values to 0 and 1.
PERCENTILES = (2.0, 98.0)


#: Names of the red, green and blue bands, tried in order: common names (STAC ``eo:bands``,
#: our samples), Sentinel-2 (``B04``), Landsat 8/9 (``B4``, Collection 2 ``SR_B4``).
RGB_NAMES = (("red", "green", "blue"), ("b04", "b03", "b02"), ("b4", "b3", "b2"),
             ("sr_b4", "sr_b3", "sr_b2"))


def rgb_by_name(names: Sequence[str | None]) -> list[int] | None:
    """0-based indices of the red, green and blue bands found by name, or None.

    Names are compared without case and surrounding spaces against each triple of
    :data:`RGB_NAMES` in turn (red/green/blue, B04/B03/B02, B4/B3/B2, SR_B4/SR_B3/SR_B2).
    """
    lowered = [(n or "").strip().lower() for n in names]
    for triple in RGB_NAMES:
        if all(c in lowered for c in triple):
            return [lowered.index(c) for c in triple]
    return None


def preview_bands(names: Sequence[str | None], given: Sequence[int] | None, *,
                  what: str = "--preview-bands") -> list[int]:
    """0-based indices of the bands drawn as red, green and blue.

    ``given`` (1-based, three of them) wins; else the bands found by name
    (:func:`rgb_by_name`); else the first three (the first band as grey when fewer).

    Raises:
        InputError: ``given`` names a band that does not exist.
    """
    from geovision.errors import InputError

    n = len(names)
    if given is not None:
        bad = [b for b in given if not 1 <= b <= n]
        if bad or len(given) != 3:
            shown = ", ".join(f"{i + 1} {name or ''}".strip() for i, name in enumerate(names))
            raise InputError(f"{what}: {','.join(map(str, given))} must be three bands among "
                             f"1..{n} ({shown})")
        return [b - 1 for b in given]
    named = rgb_by_name(names)
    if named is not None:
        return named
    return [0, 1, 2] if n >= 3 else [0, 0, 0]


def stretch(band: np.ndarray, valid: np.ndarray | None = None, *,
            eps: float = 1e-9) -> np.ndarray:
    """A band scaled to 0..1 between the percentiles :data:`PERCENTILES` of its valid values.

    ``(v - p2) / max(p98 - p2, eps)``, clipped to 0..1; pixels that are not ``valid`` (and
    every pixel of a band without valid values) are 0. The result has the band's float type.

    Args:
        band: a 2-D array of one band's values.
        valid: where the band holds data (None: everywhere).
        eps: smallest spread, so a constant band does not divide by zero.
    """
    values = band if valid is None else band[valid]
    if values.size == 0:
        return np.zeros(band.shape, dtype=np.result_type(band.dtype, np.float32))
    lo, hi = (np.percentile(values, q) for q in PERCENTILES)  # scalar q keeps float32
    out = np.clip((band - lo) / max(hi - lo, eps), 0, 1)
    if valid is not None:
        out[~valid] = 0
    return np.asarray(out)
