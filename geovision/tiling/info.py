"""Summaries of a tile store, for ``geovision info``."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geovision.errors import InputError, InputFileError
from geovision.formats import SPLITS, missing_store_arrays
from geovision.tasks import get_task
from geovision.tiling.plan import missing_classes
from geovision.tiling.store import FORMAT, PENDING_ATTR, open_group

#: Tiles read at a time when counting the classes of each split.
_CHUNK = 256


def read_attrs(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Root attributes of a finished tile store.

    Raises:
        InputFileError: no store at ``path``.
        InputError: the store is not a finished geovision tile dataset.
    """
    p = Path(path)
    if not (p / "zarr.json").exists():
        raise InputFileError(f"{p}: not a Zarr store (no zarr.json)")
    try:
        attrs: dict[str, Any] = json.loads((p / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError, AttributeError) as exc:
        raise InputError(f"{p}: cannot read zarr.json ({exc}); not a tile dataset written by "
                         "`geovision tile`") from None
    if PENDING_ATTR in attrs:
        raise InputError(f"{p}: unfinished tile store; finish it with `geovision tile ... "
                         "--resume`")
    gv = attrs.get("geovision", {})
    if gv.get("format") != FORMAT["format"]:
        raise InputError(f"{p}: not a geovision tile dataset (no geovision format attribute)")
    if gv.get("version", 0) > FORMAT["version"]:
        raise InputError(f"{p}: tile format version {gv.get('version')} is newer than this "
                         f"geovision reads ({FORMAT['version']}); upgrade geovision")
    missing = missing_store_arrays(p, str(attrs.get("task")))
    if missing:
        raise InputError(f"{p}: damaged tile store: array '{missing[0]}' is missing; tile the "
                         "data again (geovision tile ... --overwrite)")
    return attrs


def split_class_counts(group: Any, task: str, ids: Sequence[int], ignore_index: int
                       ) -> np.ndarray:
    """``(3, K)`` class counts of each split, from the store's arrays.

    Segmentation: pixels of each class (``ignore_index`` left out); classification: tiles;
    detection: boxes. Column ``k`` counts class id ``ids[k]`` (the store's classes in order;
    ids may have gaps, ``0, 2, 10``); values of no class are not counted.
    """
    split = np.asarray(group["split"][...], dtype=np.int64)
    k = len(ids)
    out = np.zeros((len(SPLITS), k), dtype=np.int64)
    column = np.full(max([*ids, ignore_index, 255]) + 1, -1, dtype=np.int64)
    column[list(ids)] = np.arange(k)
    column[ignore_index] = -1

    def columns(values: np.ndarray) -> np.ndarray:
        inside = (values >= 0) & (values < len(column))
        return np.where(inside, column[np.clip(values, 0, len(column) - 1)], -1)

    target = get_task(task).target
    if target == "mask":
        mask = group["mask"]
        for start in range(0, len(split), _CHUNK):
            m = columns(np.asarray(mask[start:start + _CHUNK]).astype(np.int64))
            s = split[start:start + _CHUNK]
            ok = m >= 0
            codes = np.broadcast_to(s[:, None, None], m.shape)[ok] * k + m[ok]
            out += np.bincount(codes, minlength=len(SPLITS) * k)[:len(SPLITS) * k].reshape(
                len(SPLITS), k)
    elif target == "label":
        label = columns(np.asarray(group["label"][...], dtype=np.int64))
        ok = label >= 0
        np.add.at(out, (split[ok], label[ok]), 1)
    elif "box_label" in group:
        labels = columns(np.asarray(group["box_label"][...], dtype=np.int64))
        tiles = np.asarray(group["box_tile"][...], dtype=np.int64)
        ok = labels >= 0
        np.add.at(out, (split[tiles[ok]], labels[ok]), 1)
    return out


def _split_lines(a: dict[str, Any], group: Any) -> list[str]:
    """Each split's class shares, and a warning for a split that lacks a class."""
    names = [c["name"] for c in a["classes"]]
    counts = split_class_counts(group, a["task"], [int(c["id"]) for c in a["classes"]],
                                a.get("ignore_index", 255))
    unit = {"segmentation": "pixels", "classification": "tiles"}.get(a["task"], "boxes")
    lines = [f"  class shares per split ({unit})"]
    lines.append("    " + f"{'':<20}" + "".join(f"{s:>9}" for s in SPLITS))
    totals = counts.sum(axis=1)
    for i, name in enumerate(names):
        cells = [f"{counts[s, i] / totals[s]:>9.1%}" if totals[s] else f"{'-':>9}"
                 for s in range(len(SPLITS))]
        lines.append(f"    {name:<20}" + "".join(cells))
    for split, ids in missing_classes(counts).items():
        lines.append(f"  warning: the {split} split has no {', '.join(names[i] for i in ids)} "
                     "although the data has some")
    return lines


def format_summary(path: str | os.PathLike[str]) -> str:
    """A human-readable summary of a tile store.

    Task, classes with counts, each split's class shares (with a warning for a split that
    lacks a class of the data), bands, stats, sources.
    """
    a = read_attrs(path)
    group = open_group(path)
    n_tiles = group["image"].shape[0]
    counts = a.get("counts", {})
    lines = [
        f"{path}",
        f"  format     tiles v{a['geovision']['version']} (geovision "
        f"{a['geovision']['geovision_version']}, created {a['geovision']['created']})",
        f"  task       {a['task']}",
        f"  tiles      {n_tiles} of {a['tile_size']}x{a['tile_size']} px, stride {a['stride']}",
    ]
    tiles = counts.get("tiles", {})
    sp = a.get("split", {})
    method = sp.get("method")
    detail = f"block {sp.get('block_size')} px" if method == "block" else "random"
    lines.append(
        f"  split      train {tiles.get('train', 0)}, val {tiles.get('val', 0)}, "
        f"test {tiles.get('test', 0)} ({detail}, seed {sp.get('seed')})"
    )
    lines.append("  classes")
    per_tiles = counts.get("class_tiles", [])
    per_px = counts.get("class_pixels")
    per_box = counts.get("class_boxes")
    for c in a["classes"]:
        i = c["id"]
        parts = [f"{per_tiles[i] if i < len(per_tiles) else 0} tiles"]
        if per_px is not None:
            parts.append(f"{per_px[i]} px")
        if per_box is not None and i > 0:
            parts.append(f"{per_box[i]} boxes")
        lines.append(f"    {i:>3} {c['name']:<20} {c['color']}  {', '.join(parts)}")
    if "boxes" in group:
        lines.append(f"  boxes      {group['boxes'].shape[0]}")
    lines += _split_lines(a, group)
    st = a.get("stats", {})
    lines.append(f"  bands      (stats over {st.get('pixels', 0)} valid train pixels)")
    for k, b in enumerate(a["bands"]):
        lines.append(
            f"    {b['index']:>3} {b['name']:<12} {b['dtype']:<8} mean {st['mean'][k]:.4g} "
            f"std {st['std'][k]:.4g} min {st['min'][k]} max {st['max'][k]}"
        )
    lines.append("  sources")
    for s in a["sources"]:
        crs = f"EPSG:{s['epsg']}" if s.get("epsg") else "custom CRS"
        lines.append(f"    {s['path']}  {s['width']}x{s['height']}x{s['count']} {s['dtype']} "
                     f"{crs} res {s['res'][0]:.6g},{s['res'][1]:.6g} nodata {s['nodata']}")
    lab = a.get("labels", {})
    dropped = ", ".join(f"{k} {v}" for k, v in lab.get("dropped", {}).items()) or "none"
    if lab.get("form") == "raster":
        lines.append(f"  labels     {lab.get('path')} (raster {lab.get('width')}x"
                     f"{lab.get('height')} {lab.get('dtype')}, nodata {lab.get('nodata')}), "
                     f"dropped: {dropped}")
    else:
        lines.append(f"  labels     {lab.get('path')} layer {lab.get('layer')} field "
                     f"{lab.get('field')}: {lab.get('features')} features, repaired "
                     f"{lab.get('repaired', 0)}, dropped: {dropped}")
    extra = [f"class map {lab['class_map']['source']}" if (lab.get("class_map") or {}).get(
        "source") else "", f"buffer {lab['buffer']} px" if lab.get("buffer") else "",
        f"aoi {lab['aoi']['path']}" if lab.get("aoi") else "",
        "unlabeled pixels ignored" if lab.get("unlabeled") == "ignore" else ""]
    if any(extra):
        lines.append(f"             {'; '.join(e for e in extra if e)}")
    return "\n".join(lines)
