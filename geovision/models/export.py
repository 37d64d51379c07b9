"""Export a model bundle as a deployable TorchScript or ONNX model, normalization inside.

The exported model takes raw pixels, float32 ``(N, C, H, W)`` in the bundle's band order
(``metadata["bands"]``), applies the bundle's per-band normalization and returns:

* segmentation: class probabilities ``(N, K, H, W)`` (softmax of the logits);
* classification: class probabilities ``(N, K)``;
* detection (TorchScript only): one dict per image with ``boxes`` (xyxy, input pixels),
  ``scores`` and ``labels`` (class ids >= 1).

Nodata is the caller's business: fill nodata pixels with the band mean
(``metadata["normalization"]["mean"]``), as ``geovision infer`` does. The metadata (task,
classes, bands, tile size, resolution, normalization, input and output) travels inside the
file: TorchScript ``_extra_files["geovision.json"]``, ONNX ``metadata_props["geovision"]``;
:func:`read_export_metadata` reads either.
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geovision import __version__
from geovision.atomic import atomic_path
from geovision.errors import InputError, InputFileError, OutputExistsError
from geovision.models.bundle import Bundle, load_bundle
from geovision.options.export import FORMATS
from geovision.tasks import get_task

#: Name of the metadata entry inside an exported file.
METADATA_KEY = "geovision"
#: Suffix of the default output path, per format.
SUFFIXES = {"torchscript": ".torchscript.pt", "onnx": ".onnx"}

class _Normalized(nn.Module):
    """``(x - mean) / std`` per band, then the network; softmax for class tasks."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities over classes (dimension 1) for raw pixels ``(N, C, H, W)``."""
        x = (x - self.mean) / self.std  # type: ignore[operator]
        return torch.softmax(self.model(x), dim=1)


class _NormalizedDetector(nn.Module):
    """``(x - mean) / std`` per band, then a torchvision detector on the list of images."""

    def __init__(self, model: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        """Detections per image for raw pixels ``(N, C, H, W)``."""
        x = (x - self.mean) / self.std  # type: ignore[operator]
        images = list(x.unbind(0))
        if torch.jit.is_scripting():
            # Scripted torchvision detectors return (losses, detections).
            found = self.model(images)[1]
        else:
            found = self.model(images)
        out: list[dict[str, torch.Tensor]] = []
        for d in found:
            keep = d["labels"] > 0  # FCOS and RetinaNet score background like any class
            out.append({"boxes": d["boxes"][keep], "scores": d["scores"][keep],
                        "labels": d["labels"][keep]})
        return out


def deployable(bundle: Bundle) -> nn.Module:
    """The bundle's model behind its normalization, in eval mode on the CPU."""
    mean = [float(v) for v in bundle.normalization["mean"]]
    std = [float(v) for v in bundle.normalization["std"]]
    if get_task(bundle.task).logits:
        return _Normalized(bundle.model, mean, std).cpu().eval()
    # The registry's hook that drops background detections is untyped (TorchScript refuses
    # it); the wrapper drops them instead, on a copy so that the bundle's model keeps it.
    model = copy.deepcopy(bundle.model)
    model._forward_hooks.clear()
    return _NormalizedDetector(model, mean, std).cpu().eval()


def export_metadata(bundle: Bundle, fmt: str) -> dict[str, Any]:
    """What a user of the exported file needs: classes, bands, tile size, input and output."""
    return {
        "format": f"geovision-{fmt}", "version": 1, "geovision_version": __version__,
        "task": bundle.task, "architecture": bundle.architecture["name"],
        "classes": [c.to_json() for c in bundle.classes],
        "bands": [b.to_json() for b in bundle.bands], "tile_size": bundle.tile_size,
        "resolution": bundle.resolution, "normalization": bundle.normalization,
        "input": "raw pixels float32 (N, bands, H, W) in the order of `bands`; "
                 "normalization is inside the model; fill nodata with the band mean",
        "output": get_task(bundle.task).model_output,
    }


def export_model(
    model_path: str | os.PathLike[str], fmt: str = "torchscript",
    out: str | os.PathLike[str] | None = None, *, overwrite: bool = False,
) -> Path:
    """Write a deployable copy of a model bundle, normalization and metadata inside.

    Args:
        model_path: a ``model.pt`` bundle.
        fmt: ``torchscript`` or ``onnx``.
        out: the file to write (default: beside the bundle, ``<stem>.torchscript.pt`` or
            ``<stem>.onnx``).
        overwrite: replace an existing output.

    Returns:
        The path written.

    Raises:
        InputError: unknown format, a detector to ONNX, or the packages for ONNX missing.
        InputFileError, ModelFileError: the bundle is missing or invalid.
        OutputExistsError: the output exists and ``overwrite`` is not set.
    """
    if fmt not in FORMATS:
        raise InputError(f"--format: '{fmt}' is not a format; choose one of "
                         f"{', '.join(FORMATS)}")
    src = Path(model_path)
    if not src.is_file():
        raise InputFileError(f"{src}: model file not found")
    dest = Path(out) if out is not None else src.with_name(src.stem + SUFFIXES[fmt])
    if dest.exists() and not overwrite:
        raise OutputExistsError(f"{dest}: exists; use --overwrite to replace it or -o for "
                                "another path")
    bundle = load_bundle(src)
    if fmt == "onnx" and not get_task(bundle.task).logits:
        raise InputError(f"{src}: --format onnx: torchvision detectors do not export to ONNX "
                         "here (their box decoding and NMS are dynamic); use --format "
                         "torchscript")
    module = deployable(bundle)
    meta = export_metadata(bundle, fmt)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        if fmt == "torchscript":
            _write_torchscript(module, bundle, meta, tmp)
        else:
            _write_onnx(module, bundle, meta, tmp)
    return dest


def _example(bundle: Bundle) -> torch.Tensor:
    return torch.zeros(1, len(bundle.bands), bundle.tile_size, bundle.tile_size)


def _script_or_trace(module: nn.Module, bundle: Bundle, meta: dict[str, Any]
                     ) -> torch.jit.ScriptModule:
    """Script the module; class models that do not script are traced on a tile.

    A traced model is checked on twice the tile size and a batch of 2: where it differs from
    the eager model there, ``meta["fixed_size"]`` says that it only takes tiles of the tile
    size.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            scripted: torch.jit.ScriptModule = torch.jit.script(module)
            meta["fixed_size"] = False
            return scripted
        except Exception as exc:  # torch raises many types for unscriptable code
            if not get_task(bundle.task).logits:
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                raise InputError(f"{bundle.path}: detector '{bundle.architecture['name']}' "
                                 f"cannot be exported to TorchScript ({first})") from None
        with torch.no_grad():
            traced: torch.jit.ScriptModule = torch.jit.trace(module, _example(bundle))
            size = 2 * bundle.tile_size
            x = torch.rand(2, len(bundle.bands), size, size) * 255
            try:
                same = torch.allclose(traced(x), module(x), atol=1e-5)
            except RuntimeError:
                same = False
    meta["fixed_size"] = not same
    return traced


def _write_torchscript(module: nn.Module, bundle: Bundle, meta: dict[str, Any],
                       path: Path) -> None:
    scripted = _script_or_trace(module, bundle, meta)
    extra = {f"{METADATA_KEY}.json": json.dumps(meta)}
    torch.jit.save(scripted, str(path), _extra_files=extra)


def _write_onnx(module: nn.Module, bundle: Bundle, meta: dict[str, Any], path: Path) -> None:
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch's ONNX exporter needs it)
    except ImportError as exc:
        raise InputError(f"--format onnx needs the onnx and onnxscript packages ({exc.name} is "
                         "missing): pip install onnx onnxscript") from None
    dynamic = {0: torch.export.Dim("batch"), 2: torch.export.Dim.AUTO,
               3: torch.export.Dim.AUTO}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(module, (_example(bundle),), dynamo=True,
                                    input_names=["image"], output_names=["probabilities"],
                                    dynamic_shapes=(dynamic,), verbose=False)
    if program is None:  # pragma: no cover - dynamo=True always returns a program
        raise InputError(f"{bundle.path}: ONNX export returned nothing")
    proto = program.model_proto
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    onnx.save_model(proto, str(path))


def read_export_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata stored in an exported TorchScript or ONNX file.

    Raises:
        InputFileError: the file does not exist.
        InputError: it holds no geovision metadata.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"{p}: not found")
    if p.suffix == ".onnx":
        import onnx

        proto = onnx.load(str(p), load_external_data=False)
        found = {e.key: e.value for e in proto.metadata_props}
        if METADATA_KEY not in found:
            raise InputError(f"{p}: no geovision metadata (not written by geovision export)")
        return json.loads(found[METADATA_KEY])
    extra = {f"{METADATA_KEY}.json": ""}
    torch.jit.load(str(p), map_location="cpu", _extra_files=extra)
    if not extra[f"{METADATA_KEY}.json"]:
        raise InputError(f"{p}: no geovision metadata (not written by geovision export)")
    return json.loads(extra[f"{METADATA_KEY}.json"])
