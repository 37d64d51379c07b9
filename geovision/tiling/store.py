"""The Zarr tile store: layout, the in-progress store, and its atomic completion."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec
from zarr.storage import MemoryStore

from geovision import __version__
from geovision.errors import InputError
from geovision.tiling.tasks import for_task

FORMAT = {"format": "tiles", "version": 1}
PENDING_ATTR = "geovision_pending"
#: Folder of an in-progress store holding the pass's markers and scratch files.
PROGRESS_DIR = ".geovision-progress"
#: Kind of output a tile store is, in its ownership mark (``geovision.ownership``).
OWNER_KIND = "tiles"
#: Top-level entries a tile store may hold: its arrays (every task's), the root metadata and
#: the progress of an unfinished store.
STORE_NAMES = ("zarr.json", "image", "mask", "label", "boxes", "box_label", "box_tile",
               "source", "row", "col", "transform", "valid", "split", PROGRESS_DIR)


def open_group(path: str | os.PathLike[str], mode: str = "r") -> Any:
    """Open a Zarr v3 group (typed loosely: zarr's array/group unions get in the way)."""
    return zarr.open_group(str(path), mode=mode)  # type: ignore[arg-type]


def image_codec(dtype: str) -> BloscCodec:
    """Compressor of the image array: Blosc lz4, byte-shuffled for multi-byte pixels.

    Training reads every tile many times, so decoding speed comes first: on 4-band uint8
    imagery lz4 decodes a 256-pixel tile ~25x faster than zstd (which would store ~20% less)
    and writes faster too.
    """
    if np.dtype(dtype).itemsize > 1:
        return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")
    return BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")


def partial_path(out: str | os.PathLike[str]) -> Path:
    """Where a store is built until it is complete."""
    p = Path(out)
    return p.with_name(p.name + ".partial")


def _root_attrs(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The root attributes of a Zarr store, or None when there is no readable zarr.json."""
    try:
        attrs = json.loads((Path(path) / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return None
    return attrs if isinstance(attrs, dict) else None


def is_store(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a tile store that geovision wrote, finished or in progress.

    The signature by which ``--overwrite`` takes up a store written before ownership marks
    existed (:func:`geovision.ownership.claim_folder` with ``adopt``).
    """
    attrs = _root_attrs(path)
    if attrs is None:
        return False
    gv = attrs.get("geovision", {})
    return PENDING_ATTR in attrs or (isinstance(gv, dict) and gv.get("format") == "tiles")


def claim_store(path: str | os.PathLike[str]) -> Path:
    """Take ``path`` as a tile store folder geovision owns (created when missing).

    Call it before anything is written in the folder. A store without an ownership mark,
    written by an older geovision, is taken up when its metadata says it is a tile store.

    Raises:
        OutputError: the folder holds anything else (the message names it).
    """
    from geovision.ownership import claim_folder

    return claim_folder(path, OWNER_KIND, names=STORE_NAMES, adopt=is_store(path),
                        option="--output")


def is_complete(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a finished geovision tile store."""
    meta = Path(path) / "zarr.json"
    if not meta.exists():
        return False
    try:
        attrs = json.loads(meta.read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False
    gv = attrs.get("geovision", {})
    return gv.get("format") == "tiles" and PENDING_ATTR not in attrs


def create_tile_arrays(
    group: Any,
    *,
    n_tiles: int,
    bands: int,
    tile_size: int,
    dtype: str,
    task: str,
    shard: int,
    fill_value: float | int,
    plan: dict[str, np.ndarray],
) -> None:
    """Create the tile arrays in an open group and write the tile plan.

    ``image`` and ``mask`` hold one tile per chunk and ``shard`` tiles per shard, so each
    shard is one stored object, written whole (:mod:`geovision.tiling.shards`).
    """
    n = max(n_tiles, 1)
    group.create_array(
        "image", shape=(n_tiles, bands, tile_size, tile_size), dtype=dtype,
        compressors=image_codec(dtype),
        chunks=(1, bands, tile_size, tile_size),
        shards=(min(shard, n), bands, tile_size, tile_size),
        fill_value=fill_value, dimension_names=("tile", "band", "y", "x"),
    )
    for_task(task).create_arrays(group, n_tiles=n_tiles, tile_size=tile_size, shard=shard)
    dims = {"transform": ("tile", "affine")}
    for name, values in plan.items():
        arr = group.create_array(
            name, shape=values.shape, dtype=values.dtype,
            chunks=tuple(max(1, d) for d in values.shape),
            fill_value=0, dimension_names=dims.get(name, ("tile",)),
        )
        if values.size:
            arr[...] = values


def write_tile_arrays(path: str | os.PathLike[str], **kwargs: Any) -> None:
    """:func:`create_tile_arrays` in the group at ``path``, made in memory, then written.

    zarr writes each object through its event loop and a thread of it, a wait on two other
    threads per object (several milliseconds each while other threads hold the GIL); the
    same objects made in a :class:`~zarr.storage.MemoryStore` are written here as plain
    files, the same bytes. The group's own ``zarr.json`` is left as it is.
    """
    objects: dict[str, Any] = {}
    group = zarr.open_group(MemoryStore(objects), mode="w", zarr_format=3)
    create_tile_arrays(group, **kwargs)
    root = Path(path)
    for key, value in objects.items():
        if key == "zarr.json":
            continue
        target = root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(value.to_bytes())


def check_pending(path: Path, fingerprint: str) -> None:
    """Check that an in-progress store was started with the same inputs and options.

    Raises:
        InputError: it was not (resuming would mix two datasets).
    """
    try:
        attrs: dict[str, Any] = dict(open_group(path).attrs)
    except Exception as exc:
        raise InputError(
            f"{path}: unfinished store cannot be read ({exc}); start again with --overwrite"
        ) from exc
    pending = attrs.get(PENDING_ATTR)
    if not pending or pending.get("fingerprint") != fingerprint:
        raise InputError(
            f"{path}: unfinished store was started with other inputs or options; resume with "
            "the same command, or start again with --overwrite"
        )


def commit_store(
    partial: Path, out: Path, attrs: dict[str, Any], boxes: dict[str, np.ndarray] | None
) -> None:
    """Write the final arrays and attributes, then move the store to its final name.

    Until the rename the store carries the pending attribute, so a crash never leaves a store
    that looks complete under the final name.
    """
    group = open_group(partial, "r+")
    if boxes is not None:
        dims = {"boxes": ("box", "coord"), "box_label": ("box",), "box_tile": ("box",)}
        for name, values in boxes.items():
            if name in group:
                del group[name]
            chunk = (max(1, min(len(values), 65536)), *values.shape[1:])
            arr = group.create_array(name, shape=values.shape, dtype=values.dtype,
                                     chunks=chunk, fill_value=0, dimension_names=dims[name])
            if values.size:
                arr[...] = values
    final_attrs = dict(attrs)
    final_attrs["geovision"] = {
        **FORMAT,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "geovision_version": __version__,
    }
    kept = {k: v for k, v in group.attrs.asdict().items() if k != PENDING_ATTR}
    group.attrs.put({**kept, **final_attrs})  # one write (update writes once per key)
    shutil.rmtree(partial / PROGRESS_DIR, ignore_errors=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # consolidated metadata is a v3 extension
        zarr.consolidate_metadata(str(partial))
    if out.exists():
        from geovision.ownership import remove_owned

        claim_store(out)  # an older geovision's store is taken up, then replaced
        remove_owned(out, kind="dir")  # only a store geovision wrote (checked before the work)
    os.replace(partial, out)
