"""The model bundle (``model.pt``): weights plus everything needed to use them.

A bundle is one ``torch.save`` file of tensors and plain Python values only (format "model"
version 1 in DESIGN.md), read back with ``torch.load(weights_only=True)``: loading a bundle
never runs code from the file.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geovision import __version__
from geovision.atomic import atomic_path
from geovision.errors import InputError, InputFileError, ModelFileError
from geovision.formats import (
    IGNORE_INDEX,
    BandInfo,
    ClassInfo,
    bands_from_json,
    classes_from_json,
)
from geovision.geo.resolution import PixelSize
from geovision.models.registry import build_model

FORMAT = {"format": "model", "version": 1}


@dataclass(frozen=True)
class Bundle:
    """A loaded model bundle; ``model`` is rebuilt from the registry, in eval mode.

    Attributes:
        model: the network with the bundle's weights.
        task: classification, segmentation or detection.
        classes: the classes, background (id 0) first.
        ignore_index: mask value that marks unlabeled pixels.
        bands: the bands, in the order the model expects.
        architecture: ``{name, params}`` in the registry.
        normalization: ``{mean: [...], std: [...]}`` per band, to apply before the model.
        tile_size: tile side in pixels seen in training.
        resolution: ``[x, y]`` pixel size seen in training (units of the source CRS).
        train: ``{config, epochs, best, dataset}``.
        raw: the whole file content, state dict included.
        path: where the bundle was read from.
        pixel_size: the pixel size seen in training with its CRS (and so its unit); None in
            bundles written before it was kept (their ``resolution`` has no unit).
    """

    model: nn.Module
    task: str
    classes: tuple[ClassInfo, ...]
    ignore_index: int
    bands: tuple[BandInfo, ...]
    architecture: dict[str, Any]
    normalization: dict[str, list[float]]
    tile_size: int
    resolution: list[float] | None
    train: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)
    path: Path | None = None
    pixel_size: PixelSize | None = None

    @property
    def class_names(self) -> list[str]:
        """Class names by model output index (``classes`` order; ids may have gaps)."""
        return [c.name for c in self.classes]


def _plain(value: Any) -> Any:
    """Convert records, numpy scalars/arrays, tuples and paths to plain Python values."""
    if isinstance(value, (ClassInfo, BandInfo)):
        return value.to_json()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "tolist") and not isinstance(value, torch.Tensor):
        return value.tolist()
    if value is None or isinstance(value, (bool, int, float, str, torch.Tensor)):
        return value
    raise InputError(f"model bundle: value of type {type(value).__name__} is not a plain value")


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DistributedDataParallel / DataParallel wrappers."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model


def save_bundle(
    path: str | os.PathLike[str],
    *,
    model: nn.Module | dict[str, torch.Tensor],
    task: str,
    classes: Sequence[ClassInfo | dict[str, Any]],
    ignore_index: int,
    bands: Sequence[BandInfo | dict[str, Any]],
    architecture: dict[str, Any],
    normalization: dict[str, Any],
    tile_size: int,
    resolution: list[float] | tuple[float, float] | None,
    train: dict[str, Any],
    pixel_size: PixelSize | None = None,
) -> Path:
    """Write a model bundle atomically (temporary file, then rename).

    Args:
        path: the ``.pt`` file to write.
        model: the network (or its state dict); DDP wrappers are unwrapped.
        task: classification, segmentation or detection.
        classes: the dataset's classes, background first.
        ignore_index: mask value of unlabeled pixels.
        bands: the dataset's bands.
        architecture: ``{name, params}`` to rebuild the model from the registry.
        normalization: ``{mean, std}`` per band.
        tile_size: tile side in pixels.
        resolution: ``[x, y]`` pixel size of the training data, or None if unknown.
        train: ``{config, epochs, best, dataset}``.
        pixel_size: the training pixel size with its CRS, stored as ``pixel_size: {x, y,
            unit, crs}`` (``resolution`` stays, for readers of older bundles).

    Returns:
        The path written.
    """
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = model if isinstance(model, dict) else unwrap(model).state_dict()
    content = {
        "geovision": {**FORMAT,
                      "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      "geovision_version": __version__},
        "task": task,
        "classes": _plain(classes),
        "ignore_index": int(ignore_index),
        "bands": _plain(bands),
        "architecture": {"name": str(architecture["name"]),
                         "params": _plain(dict(architecture.get("params") or {}))},
        "state_dict": {k: v.detach().to("cpu").clone() for k, v in state.items()},
        "normalization": {"mean": [float(v) for v in normalization["mean"]],
                          "std": [float(v) for v in normalization["std"]]},
        "tile_size": int(tile_size),
        "resolution": None if resolution is None else [float(v) for v in resolution],
        "train": _plain(train),
    }
    if pixel_size is not None:
        content["pixel_size"] = pixel_size.describe()
    save_atomic(content, out)
    return out


def read_bundle(path: str | os.PathLike[str], device: str | torch.device = "cpu",
                ) -> dict[str, Any]:
    """Read and check a bundle file's content without building the model.

    Raises:
        InputFileError: the file does not exist.
        ModelFileError: it is not a geovision model bundle, is corrupt, or holds objects other
            than tensors and plain values (those are refused, never unpickled).
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: model file not found")
    try:
        raw = torch.load(p, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = str(exc).strip().splitlines()
        detail = next((line for line in lines if "global" in line.lower()), "")
        if not detail:
            first = (lines or [type(exc).__name__])[0][:160]
            raise ModelFileError(f"{p}: not a readable model file ({first})") from None
        raise ModelFileError(
            f"{p}: refused, the file holds Python objects other than tensors and plain values"
            f" ({detail.strip()[:160]}); a geovision model bundle never does, so it was not "
            "loaded") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise ModelFileError(f"{p}: not a readable model file ({first})") from None
    gv = raw.get("geovision") if isinstance(raw, dict) else None
    if not isinstance(gv, dict) or gv.get("format") != "model":
        raise ModelFileError(f"{p}: not a geovision model bundle (no geovision.format 'model'); "
                             "train one with `geovision train`")
    if gv.get("version") != FORMAT["version"]:
        raise ModelFileError(f"{p}: model bundle version {gv.get('version')} is not supported "
                             f"(this geovision reads version {FORMAT['version']})")
    missing = [k for k in ("task", "classes", "bands", "architecture", "state_dict",
                           "normalization", "tile_size") if k not in raw]
    if missing:
        raise ModelFileError(f"{p}: model bundle lacks {', '.join(missing)}")
    return raw


def load_bundle(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Bundle:
    """Load a model bundle and rebuild its model from the registry (eval mode).

    Args:
        path: the ``model.pt`` file.
        device: where to put the model.

    Returns:
        The bundle with its model ready for inference.

    Raises:
        InputFileError: the file does not exist.
        ModelFileError: it is not a valid geovision model bundle (never executes its code).
    """
    raw = read_bundle(path, device="cpu")
    arch = raw["architecture"]
    params = {k: v for k, v in dict(arch.get("params") or {}).items() if k != "weights"}
    try:
        model = build_model(raw["task"], arch["name"], in_channels=len(raw["bands"]),
                            num_classes=len(raw["classes"]), params=params)
        model.load_state_dict(raw["state_dict"])
    except (InputError, RuntimeError, KeyError, TypeError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise ModelFileError(f"{path}: weights do not fit architecture "
                             f"'{arch.get('name')}' ({first})") from None
    model.to(device).eval()
    return Bundle(
        model=model, task=raw["task"], classes=classes_from_json(raw["classes"]),
        ignore_index=int(raw.get("ignore_index", IGNORE_INDEX)),
        bands=bands_from_json(raw["bands"]),
        architecture=arch, normalization=raw["normalization"],
        tile_size=int(raw["tile_size"]), resolution=raw.get("resolution"),
        train=raw.get("train") or {}, raw=raw, path=Path(path),
        pixel_size=_pixel_size(raw.get("pixel_size")),
    )


def _pixel_size(record: Any) -> PixelSize | None:
    """The ``pixel_size`` record of a bundle (None when absent or malformed)."""
    if not isinstance(record, dict):
        return None
    try:
        x, y = float(record["x"]), float(record["y"])
    except (KeyError, TypeError, ValueError):
        return None
    crs = record.get("crs")
    return PixelSize(x, y, str(crs) if crs else None) if x > 0 and y > 0 else None


def format_bundle_summary(path: str | os.PathLike[str]) -> str:
    """A few lines describing a model bundle (``geovision info model.pt``).

    Raises:
        InputFileError: the file does not exist.
        ModelFileError: it is not a valid geovision model bundle.
    """
    raw = read_bundle(path)
    gv = raw["geovision"]
    arch = raw["architecture"]
    n_params = sum(int(t.numel()) for t in raw["state_dict"].values()
                   if isinstance(t, torch.Tensor) and t.is_floating_point())
    train = raw.get("train") or {}
    best = train.get("best") or {}
    params = ", ".join(f"{k}={v}" for k, v in (arch.get("params") or {}).items()) or "defaults"
    res = raw.get("resolution")
    size = _pixel_size(raw.get("pixel_size"))
    if size is not None:
        unit = raw["pixel_size"].get("unit") or "CRS units"
        crs = _crs_name(size.crs)
        res_text = f", pixel {size.x:g} x {size.y:g} {unit}" + (f" ({crs})" if crs else "")
    else:
        res_text = f", resolution {res[0]:g},{res[1]:g}" if res else ""
    lines = [
        str(path),
        f"  format     model v{gv.get('version')} (geovision {gv.get('geovision_version')}, "
        f"created {gv.get('created')})",
        f"  task       {raw['task']}",
        f"  model      {arch['name']} ({params}), {n_params:,} parameters",
        f"  input      {len(raw['bands'])} bands, tile {raw['tile_size']} px" + res_text,
        f"  trained    {train.get('epochs', '?')} epochs"
        + (f" (best epoch {train['best_epoch']}" + (
            f", model of epoch {train['kept_epoch']}: the metric never improved"
            if train.get("kept_epoch") not in (None, train["best_epoch"]) else "") + ")"
           if train.get("best_epoch") else "")
        + f" on {train.get('dataset', '?')}"
        + ("; best " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in best.items()) if best else ""),
        "  classes",
    ]
    lines += [f"    {c['id']:>3} {c['name']:<20} {c.get('color', '')}" for c in raw["classes"]]
    lines.append(f"  bands      (ignore_index {raw.get('ignore_index')})")
    mean, std = raw["normalization"]["mean"], raw["normalization"]["std"]
    for i, b in enumerate(raw["bands"]):
        lines.append(f"    {b.get('index', i + 1):>3} {b.get('name', ''):<12} "
                     f"{b.get('dtype', ''):<8} mean {mean[i]:.4g} std {std[i]:.4g}")
    return "\n".join(lines)


def _crs_name(wkt: str | None) -> str:
    """``EPSG:32633`` when the CRS has a code, else its name (empty without a CRS)."""
    if not wkt:
        return ""
    from pyproj import CRS

    try:
        crs = CRS.from_user_input(wkt)
    except Exception:
        return ""
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else str(crs.name)


def update_train_record(path: str | os.PathLike[str], **values: Any) -> None:
    """Update fields of a bundle's ``train`` record (what is known at the end of a run).

    Raises:
        InputFileError, ModelFileError: the bundle is missing or invalid.
    """
    raw = read_bundle(path)
    raw["train"] = {**(raw.get("train") or {}), **_plain(values)}
    save_atomic(raw, Path(path))


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to ``path`` through a temporary file, so no reader sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
