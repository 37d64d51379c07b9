"""Input paths as GDAL opens them: local files, URLs, cloud objects and virtual file systems.

Every path a user gives (a raster, a label file, a STAC item's asset) goes through
:func:`gdal_path` once, where it is written the way GDAL opens it, so that the same string
works on this machine and in any Dask worker:

===========================================  ================================================
given                                        GDAL path
===========================================  ================================================
``scene.tif`` (relative)                     ``/abs/cwd/scene.tif`` (``os.path.abspath``)
``file:///data/scene.tif``                   ``/data/scene.tif``
``https://host/scene.tif``                   ``/vsicurl/https://host/scene.tif``
``s3://bucket/key.tif``                      ``/vsis3/bucket/key.tif``
``gs://bucket/key.tif``                      ``/vsigs/bucket/key.tif``
``az://container/key.tif``                   ``/vsiaz/container/key.tif``
``zip://scenes.zip!scene.tif``               ``/vsizip//abs/cwd/scenes.zip/scene.tif``
``zip+https://host/a.zip!scene.tif``         ``/vsizip//vsicurl/https://host/a.zip/scene.tif``
``/vsizip/scenes.zip/scene.tif``             ``/vsizip//abs/cwd/scenes.zip/scene.tif``
``/vsicurl/...``, ``/vsis3/...``, ...        unchanged
``<VRTDataset ...>`` (VRT XML text)          unchanged
``NETCDF:file.nc:var`` (a driver prefix)     unchanged (give the file's absolute path)
===========================================  ================================================

Only local paths are ever made absolute, and that with ``os.path.abspath`` (never
``Path.resolve``, which would follow links out of a mounted folder). Nothing here calls
``os.stat`` on a virtual path: :func:`fingerprint` asks GDAL what it sees instead.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from geovision.errors import InputFileError

#: File name endings taken as rasters (in folders, and STAC assets without a media type).
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img", ".nc", ".hdf", ".h5", ".png",
                   ".jpg")
#: URL schemes and the GDAL virtual file system each one is read through.
SCHEMES = {
    "s3": "/vsis3/",
    "gs": "/vsigs/",
    "gcs": "/vsigs/",
    "az": "/vsiaz/",
    "azure": "/vsiaz/",
    "abfs": "/vsiaz/",
    "oss": "/vsioss/",
    "swift": "/vsiswift/",
}
#: Archive schemes (``zip://archive!inner``) and their GDAL virtual file system.
ARCHIVES = {"zip": "/vsizip/", "tar": "/vsitar/", "gzip": "/vsigzip/"}
#: Virtual file systems that read over a network.
REMOTE = ("/vsicurl", "/vsis3", "/vsigs", "/vsiaz", "/vsiadls", "/vsioss", "/vsiswift",
          "/vsihdfs", "/vsiwebhdfs")
#: Virtual file systems whose path continues with another path (an archive's location).
CHAINING = ("/vsizip/", "/vsitar/", "/vsigzip/", "/vsi7z/", "/vsirar/", "/vsisubfile/")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CHAINED = re.compile(r"^/?vsi[a-z0-9_]+/")
#: GDAL driver-prefixed dataset names (``NETCDF:file.nc:var``, ``HDF5:...``, ``GPKG:...``).
_DRIVER_PREFIX = re.compile(r"^[A-Z][A-Z0-9_]+:(?!//)")


def is_vrt_xml(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is VRT XML text (GDAL opens it as a dataset), not a file name."""
    return str(path).lstrip().startswith("<VRTDataset")


def is_virtual(path: str | os.PathLike[str]) -> bool:
    """True for GDAL virtual paths (``/vsi...``), URLs, driver-prefixed names and VRT XML."""
    spath = str(path)
    return (spath.startswith("/vsi") or bool(_SCHEME.match(spath)) or is_vrt_xml(spath)
            or bool(_DRIVER_PREFIX.match(spath)))


def is_local(path: str | os.PathLike[str]) -> bool:
    """True for a plain file on a local or mounted file system (``os.stat`` works on it).

    ``file://`` URLs count as local; ``/vsi...`` paths (even ``/vsizip/`` over a local
    archive), other URLs and VRT XML text do not.
    """
    spath = str(path)
    if spath.startswith("file://"):
        return True
    return not is_virtual(spath)


def gdal_path(path: str | os.PathLike[str]) -> str:
    """The path written as GDAL opens it, the same from any working directory.

    See the module's table for each form. Paths that are already GDAL's (``/vsi...``) are
    kept, except that a chaining file system (``/vsizip/``, ``/vsitar/``, ...) over a
    relative local archive gets the archive's absolute path.
    """
    spath = os.fspath(path)
    if is_vrt_xml(spath) or _DRIVER_PREFIX.match(spath):
        return spath
    if spath.startswith("/vsi"):
        return _absolute_chain(spath)
    m = _SCHEME.match(spath)
    if m is None:
        return os.path.abspath(os.path.expanduser(spath))
    scheme, rest = m.group(1).lower(), spath[m.end():]
    if scheme == "file":
        return os.path.abspath(rest)
    if scheme in ("http", "https", "ftp"):
        return "/vsicurl/" + spath
    if scheme in SCHEMES:
        return SCHEMES[scheme] + rest
    outer, _, inner = scheme.partition("+")
    if outer in ARCHIVES:
        archive, _, member = rest.partition("!")
        container = gdal_path(f"{inner}://{archive}" if inner else archive)
        prefix = ARCHIVES[outer]
        return prefix + ("/" + container if not container.startswith("/") else container) + (
            "/" + member.lstrip("/") if member else "")
    # Another scheme GDAL may know itself (e.g. a driver prefix such as NETCDF:): keep it.
    return spath


def _absolute_chain(path: str) -> str:
    """``/vsizip/rel.zip/x`` -> ``/vsizip//abs/rel.zip/x`` (archives relative to the cwd)."""
    prefix = next((p for p in CHAINING if path.startswith(p)), None)
    if prefix is None:
        return path
    rest = path[len(prefix):]
    if rest.startswith("{"):  # /vsizip/{archive}/member
        inner, sep, tail = rest[1:].partition("}")
        if sep and not inner.startswith("/"):
            return f"{prefix}{{{os.path.abspath(inner)}}}{tail}"
        return path
    if _CHAINED.match(rest):  # a chain: /vsizip//vsicurl/... (or /vsizip/vsicurl/...)
        return prefix + _absolute_chain("/" + rest.lstrip("/"))
    if rest.startswith("/"):
        return path
    return prefix + os.path.abspath(rest)


def local_container(path: str) -> str | None:
    """The local archive under a chained virtual path (``/vsizip//a/b.zip/x.tif`` -> the zip).

    Returns None when the path is not an archive path or its archive is not local.
    """
    for prefix in CHAINING:
        if path.startswith(prefix):
            rest = path[len(prefix):]
            if rest.startswith("{"):
                inner = rest[1:].partition("}")[0]
                return inner if is_local(inner) else None
            rest = "/" + rest.lstrip("/")
            if rest.startswith("/vsi"):
                return None
            # The archive is the longest leading part of the path that is a file.
            parts = rest.split("/")
            for k in range(len(parts), 1, -1):
                candidate = "/".join(parts[:k])
                if os.path.isfile(candidate):
                    return candidate
            return None
    return None


def vrt_files(xml: str) -> list[str]:
    """The files a VRT's XML text reads (``SourceFilename`` elements), each once, in order."""
    found = re.findall(r"<SourceFilename[^>]*>([^<]+)</SourceFilename>", xml)
    return list(dict.fromkeys(html.unescape(f) for f in found))


def shown_path(path: str | os.PathLike[str]) -> str:
    """The path as messages show it: itself, or for VRT XML text the files it reads."""
    spath = os.fspath(path)
    if not is_vrt_xml(spath):
        return spath
    files = vrt_files(spath)
    more = f" and {len(files) - 2} more" if len(files) > 2 else ""
    return f"VRT of {', '.join(files[:2])}{more}" if files else "VRT"


def is_remote(path: str | os.PathLike[str]) -> bool:
    """True when GDAL reads the path over a network (a URL, ``/vsicurl/``, ``/vsis3/``, ...).

    VRT XML text is remote when any file it reads is; ``/vsizip/`` over a local archive and
    ``/vsimem/`` are not.
    """
    spath = os.fspath(path)
    if is_vrt_xml(spath):
        return any(is_remote(f) for f in vrt_files(spath))
    if is_local(spath) or _DRIVER_PREFIX.match(spath):
        return False
    gpath = gdal_path(spath)
    if gpath.startswith(CHAINING):
        rest = "/" + gpath.split("/", 2)[2].lstrip("{/")
        return is_remote(rest) if rest.startswith("/vsi") else False
    return gpath.startswith(REMOTE)


def remote_env(paths: Iterable[str]) -> dict[str, str]:
    """GDAL settings for reading ``paths``: no folder listing when every one is remote.

    That is ``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`` when every path is remote, else none.

    Opening a file, GDAL lists its folder to find side-car files (``.aux.xml``, ``.ovr``,
    ``.msk``); over a network that is one listing request per file, or a probe per side-car
    where listing fails. The setting skips it, but it is process-wide and would also hide a
    local file's side-cars (category names, masks), so it is only given when nothing local is
    read. ``GDAL_DISABLE_READDIR_ON_OPEN`` in the environment wins.
    """
    listed = list(paths)
    if "GDAL_DISABLE_READDIR_ON_OPEN" in os.environ or not listed:
        return {}
    if all(is_remote(p) for p in listed):
        return {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR"}
    return {}


def display_name(path: str | os.PathLike[str]) -> str:
    """A short name for messages and output files: the last path element without suffix.

    Works on every form :func:`gdal_path` writes (``/vsizip//a/s.zip/scene.tif`` ->
    ``scene``); VRT XML text is named ``vrt``.
    """
    spath = os.fspath(path)
    if is_vrt_xml(spath):
        return "vrt"
    tail = spath.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    stem = tail.rsplit(".", 1)[0] if "." in tail else tail
    return stem or tail


def fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """What identifies a file's content now, for resuming an interrupted run safely.

    Local files: absolute path, size and modification time (``os.stat``). Virtual paths:
    what GDAL reports when it opens them (driver, size, bands, types, georeferencing, nodata,
    metadata, the files behind them, and a digest of the pixels of band 1's first and last
    blocks), plus the size and modification time of a local archive underneath
    (``/vsizip/`` over a local zip). VRT XML text: a digest of the text and the
    fingerprints of the local files it reads.

    Returns:
        Plain JSON values; equal dicts mean "the same input, as far as can be told cheaply".

    Raises:
        InputFileError: the file is missing or GDAL cannot open it.
    """
    spath = gdal_path(path)
    if is_local(spath):
        try:
            st = os.stat(spath)
        except OSError as exc:
            raise InputFileError(f"{spath}: file not found") from exc
        return {"path": spath, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    doc: dict[str, Any] = {"path": _short(spath), "gdal": gdal_digest(spath)}
    if is_vrt_xml(spath):
        doc["xml"] = hashlib.sha256(spath.encode()).hexdigest()
        doc["files"] = [fingerprint(f) if is_local(f) else {"path": f}
                        for f in vrt_files(spath)]
    container = local_container(spath)
    if container is not None:
        st = os.stat(container)
        doc["container"] = {"path": container, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return doc


def _short(path: str) -> str:
    return "vrt:" + hashlib.sha256(path.encode()).hexdigest()[:16] if is_vrt_xml(path) else path


def gdal_digest(path: str) -> str:
    """A digest of what GDAL reports for a dataset: header, metadata and sample pixels.

    Raises:
        InputFileError: GDAL cannot open the dataset.
    """
    try:
        with rasterio.open(path) as ds:
            head: dict[str, Any] = {
                "driver": ds.driver, "shape": [ds.count, ds.height, ds.width],
                "dtypes": list(ds.dtypes), "crs": ds.crs.to_wkt() if ds.crs else None,
                "transform": list(ds.transform)[:6],
                "nodata": [None if v is None else repr(v) for v in ds.nodatavals],
                "descriptions": list(ds.descriptions), "tags": ds.tags(),
                "blocks": [list(b) for b in ds.block_shapes],
                "overviews": ds.overviews(1) if ds.count else [],
                "files": [f for f in ds.files if not is_vrt_xml(f)],
            }
            digest = hashlib.sha256(json.dumps(head, sort_keys=True, default=str).encode())
            if ds.count:
                bh, bw = ds.block_shapes[0]
                first = Window(0, 0, min(bw, ds.width), min(bh, ds.height))
                last = Window(max(0, ds.width - bw), max(0, ds.height - bh),
                              min(bw, ds.width), min(bh, ds.height))
                for window in (first, last):
                    digest.update(np.ascontiguousarray(ds.read(1, window=window)).tobytes())
    except RasterioIOError as exc:
        raise InputFileError(
            f"{_short(path)}: GDAL cannot open it ({str(exc).strip().splitlines()[0]})"
        ) from exc
    return digest.hexdigest()
