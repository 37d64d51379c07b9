"""Band names: which band of a dataset is which band of a sensor or of pretrained weights.

Pretrained weights know the bands they were trained on (``red, green, blue`` for ImageNet,
the 13 Sentinel-2 L1C bands for SSL4EO-S12), a tile dataset knows its bands by name (STAC
asset names, raster band descriptions). Both are reduced to one *canonical* name here, so
that ``B04``, ``SR_B4``, ``Red`` and ``red`` are the same band.

Canonical names are the STAC common names as Element 84's Earth Search gives them to
Sentinel-2 assets: ``coastal, blue, green, red, rededge1, rededge2, rededge3, nir, nir08,
nir09, cirrus, swir16, swir22``, plus ``pan, lwir11, lwir12`` (Landsat) and the radar
polarisations ``vv, vh, hh, hv``. Names are compared case-insensitively, ignoring spaces,
``_``, ``-`` and ``.``.

======================  ==================  ================  ==========================
canonical               Sentinel-2          Landsat 8/9       other names
======================  ==================  ================  ==========================
coastal                 B01, B1             SR_B1             coastal aerosol, aerosol
blue                    B02, B2             SR_B2             b
green                   B03, B3             SR_B3             g
red                     B04, B4             SR_B4             r
rededge1                B05, B5                               rededge071, red edge 1
rededge2                B06, B6                               rededge075, red edge 2
rededge3                B07, B7                               rededge078, red edge 3
nir                     B08, B8                               n, near infrared, nir broad
nir08                   B8A, B08A           SR_B5             narrow nir, nir narrow
nir09                   B09, B9                               water vapour, watervapor
cirrus                  B10                 B9 (landsat:B9)   swir-cirrus
swir16                  B11                 SR_B6             swir1, swir 1
swir22                  B12                 SR_B7             swir2, swir 2
pan                                         B8 (landsat:B8)   panchromatic
lwir11                                      ST_B10            tirs1, thermal, lwir
lwir12                                      B11 (landsat:B11) tirs2
======================  ==================  ================  ==========================

Bare codes (``B5``, ``B08``...) follow Sentinel-2, the sensor with the most pretrained
weights. Landsat codes need their Collection 2 prefix (``SR_B5``, ``ST_B10``) or a sensor
prefix: ``landsat:B5`` (also ``l8:``, ``l9:``, ``landsat8:``, ``landsat9:``); Sentinel-2
codes may carry ``s2:`` or ``sentinel2:``. Landsat's NIR (``SR_B5``, 851-879 nm) is
``nir08`` like Sentinel-2's narrow NIR ``B8A``; when one side has ``nir`` and the other only
``nir08``, :func:`match_bands` pairs them as the nearest band.

Names outside the table are compared as they are (normalised), except generic names such
as ``band3`` or ``3``, which say nothing about the band and never match by name.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

#: Bands, in order, of weights trained on RGB images (ImageNet and most hub weights).
RGB = ("red", "green", "blue")
#: The 13 Sentinel-2 L1C bands in their usual order (SSL4EO-S12, TorchGeo's ``*_ALL_*``).
SENTINEL2_L1C = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09",
                 "B10", "B11", "B12")
#: The 12 Sentinel-2 L2A bands (L1C without the cirrus band B10).
SENTINEL2_L2A = tuple(b for b in SENTINEL2_L1C if b != "B10")

_CANONICAL: dict[str, tuple[str, ...]] = {
    "coastal": ("b01", "b1", "srb1", "coastalaerosol", "aerosol", "ultrablue"),
    "blue": ("b02", "b2", "srb2", "b"),
    "green": ("b03", "b3", "srb3", "g"),
    "red": ("b04", "b4", "srb4", "r"),
    "rededge1": ("b05", "b5", "rededge071", "re1"),
    "rededge2": ("b06", "b6", "rededge075", "re2"),
    "rededge3": ("b07", "b7", "rededge078", "re3"),
    "nir": ("b08", "b8", "n", "nearinfrared", "nirbroad", "infrared"),
    "nir08": ("b8a", "b08a", "srb5", "narrownir", "nirnarrow", "rededge4", "re4"),
    "nir09": ("b09", "b9", "watervapour", "watervapor", "wv"),
    "cirrus": ("b10", "swircirrus"),
    "swir16": ("b11", "srb6", "swir1"),
    "swir22": ("b12", "srb7", "swir2"),
    "pan": ("panchromatic",),
    "lwir11": ("stb10", "tirs1", "tirs", "thermal", "lwir", "thermalinfrared"),
    "lwir12": ("tirs2",),
    "vv": (), "vh": (), "hh": (), "hv": (),
}
_ALIASES = {alias: name for name, aliases in _CANONICAL.items() for alias in (name, *aliases)}
#: Landsat 8/9 OLI/TIRS band numbers, for ``landsat:B<n>`` names.
_LANDSAT = {1: "coastal", 2: "blue", 3: "green", 4: "red", 5: "nir08", 6: "swir16",
            7: "swir22", 8: "pan", 9: "cirrus", 10: "lwir11", 11: "lwir12"}
_LANDSAT_PREFIXES = ("landsat", "landsat8", "landsat9", "l8", "l9", "lc08", "lc09", "oli")
_S2_PREFIXES = ("s2", "sentinel2", "s2a", "s2b", "msi")
#: Bands that stand in for each other when one side lacks the exact band.
NEAREST = {"nir": "nir08", "nir08": "nir"}
_GENERIC = re.compile(r"^(band|b|channel|ch|layer)?\d+$")


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name.strip().lower())


def canonical_band(name: str) -> str | None:
    """The canonical name of a band (see the module's table), or None for a generic name.

    Examples: ``B04``, ``SR_B4``, ``Red`` and ``landsat:B4`` give ``red``; ``B8A`` gives
    ``nir08``; an unknown name such as ``ndvi`` gives ``ndvi`` (compared as it is); a
    generic ``band3`` or ``3`` gives None.
    """
    prefix, sep, code = name.partition(":")
    if sep:
        p, c = _normalise(prefix), _normalise(code)
        m = re.fullmatch(r"b0?(\d+)", c)
        if p in _LANDSAT_PREFIXES and m and int(m.group(1)) in _LANDSAT:
            return _LANDSAT[int(m.group(1))]
        if p in _S2_PREFIXES:
            return _ALIASES.get(c, c)
    key = _normalise(name)
    if key in _ALIASES:
        return _ALIASES[key]
    if not key or _GENERIC.fullmatch(key):
        return None
    return key


def band_names(bands: Sequence[Any]) -> list[str]:
    """Names of bands: names, records with a ``name`` (``BandInfo``) or ``{name}`` dicts.

    A dataset's or a bundle's band records qualify; an empty name becomes ``band<i>``.
    """
    out = []
    for i, b in enumerate(bands):
        if isinstance(b, dict):
            name = b.get("name")
        elif isinstance(b, str):
            name = b
        else:
            name = getattr(b, "name", b)
        out.append(str(name) if name not in (None, "") else f"band{i + 1}")
    return out


@dataclass(frozen=True)
class BandMatch:
    """How the bands of a model input map onto the bands of pretrained weights.

    Attributes:
        source: the weights' band names, in their order.
        target: the input's band names, in their order.
        index: for each target band, the index of its source band, or None (no match).
        how: for each target band: ``name`` (same canonical name), ``nearest`` (see
            :data:`NEAREST`), ``position`` (no band had a name, matched by order) or
            ``none``.
    """

    source: tuple[str, ...]
    target: tuple[str, ...]
    index: tuple[int | None, ...]
    how: tuple[str, ...]

    @property
    def matched(self) -> int:
        """Target bands that found a source band."""
        return sum(i is not None for i in self.index)

    def describe(self) -> str:
        """One line: ``red<-red, nir<-B08, swir16: mean kernel``."""
        parts = []
        for t, i, how in zip(self.target, self.index, self.how, strict=True):
            if i is None:
                parts.append(f"{t}: mean kernel")
            else:
                note = {"nearest": " (nearest)", "position": " (by position)"}.get(how, "")
                parts.append(f"{t}<-{self.source[i]}{note}")
        return ", ".join(parts)


def match_bands(source: Sequence[str], target: Sequence[str]) -> BandMatch:
    """Map each target band to the source band of the same canonical name.

    Rules, in order: the same canonical name (:func:`canonical_band`); else the nearest
    stand-in (:data:`NEAREST`, e.g. ``nir`` for ``nir08``); else no match. When the
    input names no band it recognises (all generic, e.g. ``band1, band2, band3``: a plain RGB
    GeoTIFF without band descriptions) and has as many bands as the weights, bands are
    matched by position.

    Args:
        source: the weights' band names.
        target: the input's band names.

    Returns:
        The mapping, target band by target band.
    """
    src = [canonical_band(s) for s in source]
    dst = [canonical_band(t) for t in target]
    first: dict[str, int] = {}
    for i, c in enumerate(src):
        if c is not None:
            first.setdefault(c, i)
    index: list[int | None] = []
    how: list[str] = []
    for c in dst:
        if c is not None and c in first:
            index.append(first[c])
            how.append("name")
        elif c is not None and NEAREST.get(c) in first:
            index.append(first[NEAREST[c]])
            how.append("nearest")
        else:
            index.append(None)
            how.append("none")
    if not any(i is not None for i in index) and all(c is None for c in dst) \
            and len(source) == len(target):
        index = list(range(len(target)))
        how = ["position"] * len(target)
    return BandMatch(tuple(source), tuple(target), tuple(index), tuple(how))
