"""Quicklook PNGs: the scene, its labels and the predictions side by side."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.enums import Resampling

from geovision.atomic import atomic_path
from geovision.formats import CLASS_NODATA, ClassInfo
from geovision.geo.display import preview_bands, stretch

#: Longest side of a panel, in pixels (scenes are read decimated to this size).
PANEL = 768


def _rgb(scene: str, bands: Sequence[int] | None, shape: tuple[int, int]) -> np.ndarray:
    """The scene as RGB in 0..1, each band stretched (:func:`geovision.geo.display.stretch`).

    ``bands`` (1-based) are drawn as red, green and blue; None: the bands named so
    (red/green/blue, B04/B03/B02, ...), else bands 1, 2, 3
    (:func:`geovision.geo.display.preview_bands`). Nodata pixels are black.
    """
    with rasterio.open(scene) as ds:
        names = [d or (ds.tags(i + 1).get("name")) for i, d in enumerate(ds.descriptions)]
        chosen = [i + 1 for i in preview_bands(names, bands)]
        data = ds.read(chosen, out_shape=(3, *shape), resampling=Resampling.nearest,
                       masked=True).astype(np.float64)
    out = np.zeros((*shape, 3))
    for i in range(3):
        out[..., i] = stretch(data[i].data, ~np.ma.getmaskarray(data[i]))
    if np.ma.is_masked(data):
        out[np.ma.getmaskarray(data).all(axis=0)] = 0
    return out


def _class_image(raster: str, shape: tuple[int, int], colors: dict[int, str]) -> np.ndarray:
    from matplotlib.colors import to_rgb

    with rasterio.open(raster) as ds:
        ids = ds.read(1, out_shape=shape, resampling=Resampling.nearest)
    out = np.zeros((*shape, 3))
    for cid, color in colors.items():
        out[ids == cid] = to_rgb(color)
    out[ids == CLASS_NODATA] = (1.0, 1.0, 1.0)
    return out


def _labels_image(labels: str, scene: str, shape: tuple[int, int], class_field: str | None,
                  colors: dict[str, str]) -> np.ndarray:
    from matplotlib.colors import to_rgb
    from rasterio.features import rasterize

    from geovision.geo.vector import read_labels, to_crs

    lab = read_labels(labels, class_field=class_field)
    with rasterio.open(scene) as ds:
        local = to_crs(lab.frame, ds.crs)
        transform = ds.transform @ Affine.scale(ds.width / shape[1], ds.height / shape[0])
    ids = rasterize(zip(local.geometry.values, local["class_id"].tolist(), strict=True),
                    out_shape=shape, transform=transform, fill=0, dtype="uint8")
    out = np.zeros((*shape, 3))
    for c in lab.classes:
        out[ids == c["id"]] = to_rgb(colors.get(c["name"], "#000000"))
    return out


def write_preview(
    path: str | os.PathLike[str], scene: str | os.PathLike[str], *,
    classes: Sequence[ClassInfo], prediction: str | os.PathLike[str] | None = None,
    detections: str | os.PathLike[str] | None = None,
    labels: str | os.PathLike[str] | None = None, class_field: str | None = None,
    truth_boxes: str | os.PathLike[str] | None = None, title: str | None = None,
    bands: Sequence[int] | None = None,
) -> Path:
    """Write a PNG: scene, labels, predicted classes, detections over the scene, side by side.

    Panels appear for what is given; detections are drawn in yellow, label objects in cyan.
    ``bands``: the scene's 1-based bands drawn as red, green, blue (None: found by name,
    else 1, 2, 3; see :func:`geovision.geo.display.preview_bands`).

    Raises:
        InputError: ``bands`` names a band the scene does not have.

    Returns:
        The PNG's path.
    """
    import geopandas as gpd
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    with rasterio.open(scene) as ds:
        scale = min(1.0, PANEL / max(ds.width, ds.height))
        shape = (max(1, round(ds.height * scale)), max(1, round(ds.width * scale)))
        crs, inv = ds.crs, ~ds.transform
        sx, sy = shape[1] / ds.width, shape[0] / ds.height
    rgb = _rgb(str(scene), bands, shape)
    by_name = {c.name: c.color or "#000000" for c in classes}
    by_id = {c.id: c.color or "#000000" for c in classes}
    panels: list[tuple[str, np.ndarray]] = [("scene", rgb)]
    if labels is not None and prediction is not None:
        panels.append(("labels", _labels_image(str(labels), str(scene), shape, class_field,
                                               by_name)))
    if prediction is not None:
        panels.append(("prediction", _class_image(str(prediction), shape, by_id)))
    if detections is not None:
        panels.append(("detections", rgb))
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5.4), squeeze=False)
    for ax, (name, image) in zip(axes[0], panels, strict=True):
        ax.imshow(image, interpolation="nearest")
        ax.set_title(name)
        ax.set_axis_off()
        if name != "detections":
            continue
        for source, color in ((truth_boxes, "cyan"), (detections, "yellow")):
            if source is None:
                continue
            frame = gpd.read_file(source)
            if len(frame) == 0:
                continue
            frame = frame.to_crs(crs.to_wkt())
            for geom in frame.geometry.values:
                x0, y0, x1, y1 = geom.bounds
                c0, r0 = inv @ (x0, y1)
                c1, r1 = inv @ (x1, y0)
                ax.add_patch(Rectangle((min(c0, c1) * sx, min(r0, r1) * sy),
                                       abs(c1 - c0) * sx, abs(r1 - r0) * sy, fill=False,
                                       edgecolor=color, linewidth=0.8))
    handles = [Patch(color=c.color or "#000000", label=c.name) for c in classes]
    if prediction is not None:
        fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False)
    if title:
        fig.suptitle(title)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout(rect=(0, 0.05, 1, 0.95))
    with atomic_path(out, keep_suffix=True) as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
    return out
