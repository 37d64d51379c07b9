"""The one place where low-level failures become geovision errors naming the file.

- :func:`os_error` / :func:`translated`: an ``OSError`` (permission denied, read-only file
  system, disk full, missing, a folder where a file is needed or the reverse) becomes one line
  naming the path and what to do.
- :func:`raster_error` / :func:`reading`: a raster whose header is fine but whose data is
  damaged becomes one line naming the file and the window.
- :func:`sniff` / :func:`check_model_file` / :func:`model_load_error`: a file given as a
  model is identified before ``torch.load`` touches it (a zip-based torch file, a TorchScript
  export, a GeoTIFF or other raster, a vector file, text, an empty file, a pickle, ...), and
  the message says what it is and what was expected. No message ever suggests
  ``weights_only=False``.

Nothing here imports torch; rasterio is imported only when a raster error is translated.
"""

from __future__ import annotations

import errno
import os
import pickle
import struct
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from geovision.errors import (
    GeovisionError,
    InputFileError,
    ModelFileError,
    OutputError,
)

PathLike = str | os.PathLike[str]
Role = Literal["input", "output"]

# --------------------------------------------------------------------------- OSError

_OUTPUT_FULL = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded"}


def _first_file_in(path: Path) -> Path | None:
    """The first existing part of ``path`` that is not a folder (the cause of ENOTDIR)."""
    for part in [*reversed(path.parents), path]:
        if part.exists() and not part.is_dir():
            return part
    return None


def os_error(exc: OSError, *, path: PathLike | None = None, role: Role = "output",
             option: str | None = None) -> GeovisionError:
    """The one-line error for an ``OSError`` on a file geovision reads or writes.

    Args:
        exc: the error.
        path: the file to name (default: the error's destination, else its file name).
        role: ``output`` (the message says to choose another ``option``) or ``input``.
        option: the option that named the path (``--output``, ``output``, ``MODEL``).

    Returns:
        An :class:`OutputError` (outputs) or :class:`InputFileError` (inputs), whose message
        names the path: ``out/: not writable (permission denied); choose another --output``.
    """
    if isinstance(exc, GeovisionError):
        return exc
    raw = path if path is not None else (exc.filename2 or exc.filename)
    p = Path(os.fsdecode(raw)) if raw is not None else None
    shown = os.fspath(p) if p is not None else "?"
    code = exc.errno or 0
    what = exc.strerror or str(exc)
    choose = f"choose another {option}" if option else "choose another output"
    if role == "input":
        text = {
            errno.ENOENT: f"{shown}: not found",
            errno.EACCES: f"{shown}: not readable (permission denied); check its permissions",
            errno.EPERM: f"{shown}: not readable (permission denied); check its permissions",
            errno.EISDIR: f"{shown}: a folder, where a file is needed",
            errno.EIO: f"{shown}: input/output error while reading it (a damaged disk or an "
                       "unreachable share?)",
        }.get(code)
        if code == errno.ENOTDIR and p is not None:
            bad = _first_file_in(p)
            text = f"{shown}: {bad or 'a part of the path'} is a file, not a folder"
        return InputFileError(text or f"{shown}: {what.lower()}")
    if code in (errno.EACCES, errno.EPERM, errno.EROFS, *_OUTPUT_FULL):
        folder = p if p is not None and p.is_dir() else (p.parent if p is not None else None)
        if p is not None and p.exists() and not p.is_dir() and code in (errno.EACCES,
                                                                         errno.EPERM):
            return OutputError(f"{shown}: not writable (permission denied); {choose} or change "
                               "its permissions")
        where = (os.fspath(folder) or ".").rstrip("/") + "/" if folder is not None else "?"
        if code in _OUTPUT_FULL:
            return OutputError(f"{where}: {_OUTPUT_FULL[code]}; free some space or {choose}")
        reason = "read-only file system" if code == errno.EROFS else "permission denied"
        return OutputError(f"{where}: not writable ({reason}); {choose}")
    if code == errno.EISDIR:
        return OutputError(f"{shown}: a folder, where a file is needed; {choose}")
    if code == errno.ENOTDIR:
        bad = _first_file_in(p) if p is not None else None
        return OutputError(f"{shown}: {bad or 'a part of the path'} is a file, where a folder "
                           f"is needed; {choose}")
    if code == errno.EEXIST:
        kind = "a file" if p is not None and p.is_file() else "something"
        return OutputError(f"{shown}: {kind} is in the way, where geovision writes its output; "
                           f"{choose}")
    if code == errno.ENOENT:
        return OutputError(f"{shown}: its folder is gone (moved or deleted while geovision "
                           "ran?); run the command again")
    return OutputError(f"{shown}: {what.lower()}; {choose}")


@contextmanager
def translated(*, role: Role = "output", option: str | None = None,
               path: PathLike | None = None) -> Iterator[None]:
    """Turn an ``OSError`` naming a file, raised in the block, into :func:`os_error`'s error.

    Errors without an errno or a file name are left alone: they are bugs, and keep their
    traceback. So are geovision's own errors.
    """
    try:
        yield
    except GeovisionError:
        raise
    except OSError as exc:
        if exc.errno is None or (exc.filename is None and path is None):
            raise
        raise os_error(exc, path=path, role=role, option=option) from exc


# --------------------------------------------------------------------------- rasters

def _describe_window(window: Any) -> str:
    """``rows 64-127, cols 64-127`` for a rasterio Window, a PixelWindow or ranges."""
    if window is None:
        return ""
    for r, c, h, w in (("row_off", "col_off", "height", "width"),
                       ("row", "col", "height", "width")):
        if all(hasattr(window, a) for a in (r, c, h, w)):
            r0, c0 = int(getattr(window, r)), int(getattr(window, c))
            return (f"rows {r0}-{r0 + int(getattr(window, h)) - 1}, "
                    f"cols {c0}-{c0 + int(getattr(window, w)) - 1}")
    try:
        (r0, r1), (c0, c1) = window
        return f"rows {int(r0)}-{int(r1) - 1}, cols {int(c0)}-{int(c1) - 1}"
    except (TypeError, ValueError):
        return str(window)


def _gdal_detail(exc: BaseException, path: str) -> str:
    """The most telling message in an exception chain (GDAL's, not rasterio's wrapper)."""
    messages = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur).strip().splitlines()[0] if str(cur).strip() else ""
        if text and "see previous exception" not in text.lower():
            messages.append(text)
        cur = cur.__cause__ or cur.__context__
    if not messages:
        return type(exc).__name__
    best = next((m for m in messages if "IReadBlock" in m or "offset" in m), messages[0])
    for prefix in (f"{path}, ", f"{path}: ", f"{Path(path).name}, "):
        if best.startswith(prefix):
            best = best[len(prefix):]
    return best[:200]


def raster_error(exc: BaseException, path: PathLike, window: Any = None) -> InputFileError:
    """The one-line error for a raster whose data cannot be read where ``window`` lies.

    Args:
        exc: what rasterio raised (``RasterioIOError`` and the GDAL error it chains).
        path: the raster.
        window: the pixels being read (rasterio ``Window``, ``PixelWindow`` or
            ``((row0, row1), (col0, col1))``).

    Returns:
        ``bad.tif: damaged data at rows 64-127, cols 64-127 (band 1: IReadBlock failed at X
        offset 1, Y offset 1: TIFFReadEncodedTile() failed); re-create or re-download it``.
    """
    shown = os.fspath(path)
    where = _describe_window(window)
    detail = _gdal_detail(exc, shown)
    at = f" at {where}" if where else ""
    return InputFileError(f"{shown}: damaged data{at} ({detail}); re-create or re-download the "
                          "file")


def _is_raster_error(exc: BaseException) -> bool:
    module = type(exc).__module__ or ""
    return module.startswith("rasterio") and not isinstance(exc, GeovisionError)


@contextmanager
def reading(path: PathLike, window: Any = None) -> Iterator[None]:
    """Turn rasterio read errors raised in the block into :func:`raster_error`'s error."""
    try:
        yield
    except GeovisionError:
        raise
    except Exception as exc:
        if _is_raster_error(exc):
            raise raster_error(exc, path, window) from exc
        raise


# --------------------------------------------------------------------------- model files

@dataclass(frozen=True)
class FileKind:
    """What a file is, as far as its first bytes tell.

    Attributes:
        name: a short key: ``torch``, ``torchscript``, ``zip``, ``damaged-zip``, ``geotiff``,
            ``tiff``, ``png``, ``jpeg``, ``jpeg2000``, ``geopackage``, ``sqlite``,
            ``shapefile``, ``hdf5``, ``netcdf``, ``gzip``, ``pickle``, ``torch-legacy``,
            ``safetensors``, ``onnx``, ``json``, ``yaml``, ``text``, ``empty``, ``folder``,
            ``zarr``, ``session``, ``binary``, ``missing``.
        description: for messages, with its article: ``a GeoTIFF``.
    """

    name: str
    description: str

    @property
    def is_torch(self) -> bool:
        """A ``torch.save`` zip file, the only kind a model bundle is."""
        return self.name == "torch"

    @property
    def is_geodata(self) -> bool:
        """A raster, vector or tile dataset: a likely swap of MODEL with another argument."""
        return self.name in ("geotiff", "tiff", "png", "jpeg", "jpeg2000", "geopackage",
                             "shapefile", "netcdf", "hdf5", "zarr")


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_GEO_TAGS = {33550, 33922, 34264, 34735}  # pixel scale, tie points, transformation, geokeys
_TORCH_LEGACY_MAGIC = b"\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"


def _tiff_tags(path: Path, head: bytes) -> set[int]:
    """Tags of the first IFD of a TIFF (empty if it cannot be read)."""
    order = "<" if head[:2] == b"II" else ">"
    big = head[2:4] not in (b"*\x00", b"\x00*")
    try:
        with open(path, "rb") as f:
            if big:
                (offset,) = struct.unpack_from(order + "Q", head, 8)
                f.seek(offset)
                (count,) = struct.unpack(order + "Q", f.read(8))
                entry, size = 20, min(count, 4096)
            else:
                (offset,) = struct.unpack_from(order + "I", head, 4)
                f.seek(offset)
                (count,) = struct.unpack(order + "H", f.read(2))
                entry, size = 12, count
            table = f.read(entry * size)
        return {struct.unpack_from(order + "H", table, entry * i)[0] for i in range(size)}
    except (struct.error, OSError, ValueError):
        return set()


def _zip_kind(path: Path) -> FileKind:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return FileKind("damaged-zip", "a damaged or truncated zip (or torch) file")
    if any("/code/" in n for n in names) and any(n.endswith("/constants.pkl") for n in names):
        return FileKind("torchscript", "a TorchScript export (geovision export)")
    if any(n.endswith("data.pkl") for n in names):
        return FileKind("torch", "a torch file")
    return FileKind("zip", "a zip archive")


def _text_kind(head: bytes, path: Path) -> FileKind | None:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        try:  # a multi-byte character cut at the end of the sample
            text = head[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return None
    printable = sum(c.isprintable() or c in "\t\r\n" for c in text)
    if not text or printable < 0.95 * len(text):
        return None
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        return FileKind("json", "a JSON text file")
    if path.suffix.lower() in (".yaml", ".yml"):
        return FileKind("yaml", "a YAML text file")
    return FileKind("text", "a text file")


def sniff(path: PathLike) -> FileKind:
    """Identify a file from its first bytes (no library that runs the file's content).

    Returns:
        What the file is; ``missing`` when it does not exist.
    """
    p = Path(path)
    if not p.exists():
        return FileKind("missing", "not found")
    if p.is_dir():
        if (p / "zarr.json").exists() or (p / ".zgroup").exists():
            return FileKind("zarr", "a folder (a Zarr store, e.g. a tile dataset)")
        if (p / "model.pt").exists() and (p / "config.yaml").exists():
            return FileKind("session", "a training session folder")
        return FileKind("folder", "a folder")
    try:
        with open(p, "rb") as f:
            head = f.read(65536)
    except OSError:
        return FileKind("unreadable", "an unreadable file")
    if not head:
        return FileKind("empty", "an empty file (0 bytes)")
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return _zip_kind(p)
    if head[:4] in _TIFF_MAGIC:
        if _tiff_tags(p, head) & _GEO_TAGS:
            return FileKind("geotiff", "a GeoTIFF")
        return FileKind("tiff", "a TIFF image")
    magic = [(b"\x89PNG\r\n\x1a\n", "png", "a PNG image"),
             (b"\xff\xd8\xff", "jpeg", "a JPEG image"),
             (b"\x00\x00\x00\x0cjP  ", "jpeg2000", "a JPEG 2000 image"),
             (b"\x89HDF\r\n\x1a\n", "hdf5", "an HDF5 file"),
             (b"CDF\x01", "netcdf", "a NetCDF file"), (b"CDF\x02", "netcdf", "a NetCDF file"),
             (b"\x1f\x8b", "gzip", "a gzip-compressed file"),
             (b"\x00\x00\x27\x0a", "shapefile", "a Shapefile (.shp)")]
    for prefix, name, description in magic:
        if head.startswith(prefix):
            return FileKind(name, description)
    if head.startswith(b"SQLite format 3\x00"):
        if p.suffix.lower() == ".gpkg" or b"gpkg" in head[:4096].lower():
            return FileKind("geopackage", "a GeoPackage (vector data)")
        return FileKind("sqlite", "an SQLite database")
    if head[:1] == b"\x80" and len(head) > 1 and 2 <= head[1] <= 5:
        if head[2:14] == _TORCH_LEGACY_MAGIC:
            return FileKind("torch-legacy", "a torch file in the legacy (pre-1.6) format")
        return FileKind("pickle", "a Python pickle")
    if len(head) >= 10 and head[8:10] == b'{"':
        (size,) = struct.unpack_from("<Q", head, 0)
        if 0 < size < 100_000_000:
            return FileKind("safetensors", "a safetensors file")
    if p.suffix.lower() == ".onnx":
        return FileKind("onnx", "an ONNX export (geovision export)")
    return _text_kind(head, p) or FileKind("binary", "a binary file of unknown kind")


#: What a model argument must be, for messages.
EXPECTED_MODEL = "the model.pt that `geovision train` writes"


def check_model_file(path: PathLike, *, usage: str | None = None) -> None:
    """Check that a file given as a model is a torch zip file before anyone loads it.

    Args:
        path: the file.
        usage: the command's usage line, shown when the file looks like a swapped argument
            (``geovision infer MODEL SCENES...``).

    Raises:
        InputFileError: the file does not exist.
        ModelFileError: it is something else; the message says what, and what was expected:
            ``scene.tif: a GeoTIFF, not a model bundle; MODEL comes first: geovision infer
            MODEL SCENES...``.
    """
    kind = sniff(path)
    shown = os.fspath(path)
    if kind.name == "missing":
        raise InputFileError(f"{shown}: model file not found")
    if kind.is_torch:
        return
    if kind.name == "session":
        raise ModelFileError(f"{shown}: {kind.description}, not a model bundle; give "
                             f"{Path(shown) / 'model.pt'}")
    if kind.is_geodata and usage:
        raise ModelFileError(f"{shown}: {kind.description}, not a model bundle; MODEL comes "
                             f"first: {usage}")
    if kind.name == "torchscript":
        raise ModelFileError(f"{shown}: {kind.description}, not a model bundle; give the "
                             "model.pt it was exported from")
    if kind.name in ("pickle", "torch-legacy"):
        raise ModelFileError(f"{shown}: {kind.description}, not a model bundle; geovision "
                             f"never unpickles files; give {EXPECTED_MODEL}")
    raise ModelFileError(f"{shown}: {kind.description}, not a model bundle; give "
                         f"{EXPECTED_MODEL}")


def model_load_error(path: PathLike, exc: BaseException) -> ModelFileError:
    """The one-line error for a torch file that ``torch.load(weights_only=True)`` refused.

    Torch's own text (which suggests ``weights_only=False``) is never shown: a refused
    global is named, anything else is called damaged.
    """
    shown = os.fspath(path)
    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError):
        for line in text.splitlines():
            if "GLOBAL" in line:
                token = (line.split("GLOBAL", 1)[1].split() or ["?"])[0]
                return ModelFileError(
                    f"{shown}: refused: the file holds Python objects ({token}), not only "
                    "tensors and plain values; a geovision model bundle never does, so it was "
                    "not loaded")
    return ModelFileError(f"{shown}: a damaged or truncated torch file (torch.load: "
                          f"{type(exc).__name__}); give {EXPECTED_MODEL}")
