"""What prediction rasters say about themselves, and atomic arrays of the scratch folder.

The rasters themselves are written strip by strip into Cloud Optimized GeoTIFFs by
:class:`~geovision.inference.cogwriter.CogWriter`; the functions here describe them (class
names and colours, probability bands and scales), write a class raster's legend and store a
block's arrays.

A class raster's legend is in three places, so that every reader finds it: the colour table
and the ``classes`` tags inside the GeoTIFF, and GDAL's category names and a thematic raster
attribute table (value, class, red, green, blue, alpha) in ``<file>.aux.xml``
(:func:`write_class_legend`), where GDAL itself keeps them for GeoTIFFs (its PAM sidecar;
QGIS shows the class names from it).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numcodecs
import numpy as np
import rasterio
import rasterio.shutil

from geovision.atomic import atomic_path, write_text
from geovision.formats import CLASS_NODATA, PROB_SCALE, ClassInfo

#: Tile side of every raster written (GeoTIFF blocks and COG tiles).
TILE = 512


def hex_to_rgba(color: str | None, index: int) -> tuple[int, int, int, int]:
    """``#rrggbb`` to an RGBA tuple; a missing or bad colour gets a distinct fallback."""
    if isinstance(color, str) and len(color.lstrip("#")) == 6:
        try:
            v = int(color.lstrip("#"), 16)
            return ((v >> 16) & 255, (v >> 8) & 255, v & 255, 255)
        except ValueError:
            pass
    rng = np.random.default_rng(index)
    r, g, b = (int(x) for x in rng.integers(40, 256, size=3))
    return (r, g, b, 255)


def colormap(classes: Sequence[ClassInfo]) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table of a class raster: each class's colour, nodata transparent."""
    table = {c.id: hex_to_rgba(c.color, c.id) for c in classes}
    table[CLASS_NODATA] = (0, 0, 0, 0)
    return table


def describe_classes(dst: rasterio.io.DatasetWriter, classes: Sequence[ClassInfo]) -> None:
    """Write the class names into a class raster's metadata and set its colour table."""
    dst.update_tags(classes=json.dumps([{"id": c.id, "name": c.name} for c in classes]))
    dst.update_tags(1, **{f"class_{c.id}": c.name for c in classes})
    dst.set_band_description(1, "class")
    dst.write_colormap(1, colormap(classes))


#: GDAL raster attribute table field types and usages (gdal.h: GDALRATFieldType, ...Usage).
_GFT_INTEGER, _GFT_STRING = 0, 2
_GFU_GENERIC, _GFU_NAME, _GFU_MINMAX, _GFU_RED, _GFU_GREEN, _GFU_BLUE, _GFU_ALPHA = (
    0, 2, 5, 6, 7, 8, 9)


def legend_path(tif: str | os.PathLike[str]) -> Path:
    """The GDAL sidecar that holds a class raster's category names and attribute table."""
    return Path(f"{os.fspath(tif)}.aux.xml")


def write_class_legend(tif: str | os.PathLike[str], classes: Sequence[ClassInfo]) -> Path:
    """Write the category names and a thematic raster attribute table of a class raster.

    GDAL keeps both for GeoTIFFs in the PAM sidecar ``<tif>.aux.xml``
    (``GDALSetRasterCategoryNames`` and ``GDALSetDefaultRAT`` write the same elements);
    this writes it directly, atomically, replacing any earlier one. Category ``i`` is the
    name of value ``i`` (ids without a class get an empty name); the table has one row per
    class: ``value`` (min-max usage), ``class`` (name), ``red``, ``green``, ``blue``,
    ``alpha``.

    Returns:
        The sidecar's path.
    """
    by_id = {c.id: c for c in classes}
    root = ET.Element("PAMDataset")
    band = ET.SubElement(root, "PAMRasterBand", band="1")
    names = ET.SubElement(band, "CategoryNames")
    for i in range(max(by_id) + 1 if by_id else 0):
        ET.SubElement(names, "Category").text = by_id[i].name if i in by_id else ""
    rat = ET.SubElement(band, "GDALRasterAttributeTable", tableType="thematic")
    fields = [("value", _GFT_INTEGER, _GFU_MINMAX), ("class", _GFT_STRING, _GFU_NAME),
              ("red", _GFT_INTEGER, _GFU_RED), ("green", _GFT_INTEGER, _GFU_GREEN),
              ("blue", _GFT_INTEGER, _GFU_BLUE), ("alpha", _GFT_INTEGER, _GFU_ALPHA)]
    for i, (name, kind, usage) in enumerate(fields):
        defn = ET.SubElement(rat, "FieldDefn", index=str(i))
        ET.SubElement(defn, "Name").text = name
        ET.SubElement(defn, "Type").text = str(kind)
        ET.SubElement(defn, "Usage").text = str(usage)
    for row, c in enumerate(sorted(classes, key=lambda c: c.id)):
        r, g, b, a = hex_to_rgba(c.color, c.id)
        element = ET.SubElement(rat, "Row", index=str(row))
        for value in (c.id, c.name, r, g, b, a):
            ET.SubElement(element, "F").text = str(value)
    ET.indent(root)
    path = legend_path(tif)
    write_text(path, ET.tostring(root, encoding="unicode") + "\n")
    return path


def describe_probabilities(dst: rasterio.io.DatasetWriter, classes: Sequence[ClassInfo],
                           compact_dtype: bool) -> None:
    """Name each probability band after its class; compact bands get scale ``1/254``."""
    for i, c in enumerate(classes, start=1):
        dst.set_band_description(i, f"p_{c.name}")
    if compact_dtype:
        dst.scales = [1.0 / PROB_SCALE] * len(classes)
        dst.offsets = [0.0] * len(classes)
    dst.update_tags(classes=json.dumps([{"id": c.id, "name": c.name} for c in classes]))


#: Resume files (a block's pieces and seams): Blosc LZ4, byte-shuffled. A 8192^2 scene's are
#: 0.79 GB raw and 0.41x that compressed; written raw, their memory and page-cache traffic
#: slowed the model beside them by 3-6% on the 2-core benchmark machine, compressed by ~1%.
_ARRAY_CODEC = numcodecs.Blosc(cname="lz4", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE)
#: Bytes Blosc compresses at most in one buffer; larger arrays (many classes, large blocks)
#: are stored raw.
BLOSC_LIMIT = numcodecs.blosc.MAX_BUFFERSIZE
#: First bytes of an array file (then the header's length, 4 bytes little-endian, the JSON
#: header: dtype, shape and codec, and the array's bytes, compressed or raw).
ARRAY_MAGIC = b"GVA2"
#: Suffix of array files.
ARRAY_SUFFIX = ".blosc"


def save_array(path: Path, array: np.ndarray) -> None:
    """A plain numeric array, compressed, through a temporary name (see :func:`load_array`).

    A crash never leaves a partial file under ``path``.
    """
    if array.dtype.fields is not None or array.dtype.hasobject:
        raise TypeError(f"{path.name}: only plain numeric arrays are stored, not {array.dtype}")
    array = np.ascontiguousarray(array)
    codec = "lz4" if 0 < array.nbytes <= BLOSC_LIMIT else "raw"
    header = json.dumps({"dtype": array.dtype.str, "shape": list(array.shape),
                         "codec": codec}).encode()
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(ARRAY_MAGIC + len(header).to_bytes(4, "little") + header)
        if codec == "lz4":
            f.write(_ARRAY_CODEC.encode(array))
        else:  # the bytes as they are (no copy)
            array.reshape(-1).view(np.uint8).tofile(f)


def load_array(path: str | os.PathLike[str]) -> np.ndarray:
    """The array :func:`save_array` wrote.

    Raises:
        ValueError: not such a file.
    """
    data = Path(path).read_bytes()
    if not data.startswith(ARRAY_MAGIC):
        raise ValueError(f"{path}: not an array file of geovision's")
    n = int.from_bytes(data[4:8], "little")
    header = json.loads(data[8:8 + n])
    out = np.empty(header["shape"], dtype=np.dtype(header["dtype"]))
    body = memoryview(data)[8 + n:]
    if header["codec"] == "lz4":
        _ARRAY_CODEC.decode(body, out=out)
    else:
        out.reshape(-1).view(np.uint8)[:] = np.frombuffer(body, dtype=np.uint8)
    return out
