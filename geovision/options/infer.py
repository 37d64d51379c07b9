"""The options of ``geovision infer`` (and of ``infer`` steps in job files).

Adding an option: a field here, and its use where the work needs it (``SceneWork.options``
carries this value to every block, on this machine or a Dask worker). The command line, job
files, the checks and the run summary follow from the field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from geovision.device import device_problem
from geovision.errors import InputError
from geovision.options import check_fields, flag_of, option, reuse
from geovision.options.scenes import SceneOptions
from geovision.options.vectorize import PolygonOptions

#: Weights of overlapping windows (see geovision.inference.blend).
BLENDS = ("gaussian", "linear", "none")
#: Stored type of probability rasters.
PROB_DTYPES = ("uint8", "float32")
#: Coordinates of GeoJSON outputs: RFC 7946 WGS 84, or the scene's CRS.
CRS_CHOICES = ("wgs84", "native")
#: The output folder when none is given.
OUTPUT = "predictions"
#: Fields of :class:`InferOptions` that are polygon options, by their name in
#: :class:`~geovision.options.vectorize.PolygonOptions` (where each is defined).
POLYGON_FIELDS = {"classes": "vector_classes", "min_area": "min_area",
                  "min_area_unit": "min_area_unit", "simplify": "simplify",
                  "format": "vector_format", "layer": "vector_layer"}
#: ``infer`` resamples a scene to the model's pixel size by itself (unless ``resample`` is
#: False) when the two differ by more than this factor, either way.
AUTO_RESAMPLE_FACTOR = 1.5


@dataclass(frozen=True)
class InferOptions(SceneOptions):
    """How scenes are predicted (the options of ``geovision infer``).

    The options that say how scenes are read (``assets``, ``bands``, ``resolution``,
    ``resampling``, ``stack``, ``stack_folders``) are :class:`SceneOptions`', shared with
    ``geovision tile``.

    Attributes:
        window: window side in pixels (None: for fully convolutional models, the largest
            multiple of the tile size within ``window_memory``, at least 256 px, at most
            what the scene needs; for others the tile size; see
            :mod:`geovision.inference.window`).
        window_memory: memory budget in MB of the default window (a batch of windows
            through the model and a block's accumulators).
        overlap: share of a window shared with each neighbour, ``0 <= overlap < 1``.
        batch_size: windows per model call.
        blend: ``gaussian``, ``linear`` or ``none`` (segmentation).
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        probabilities: also write ``<stem>.prob.tif`` (segmentation).
        prob_dtype: ``uint8`` (compact, scaled 0..1) or ``float32``.
        score_threshold: lowest detection score kept.
        nms_iou: IoU at which two detections of one class are one object.
        ios: intersection over the smaller box at which a box cut by a window edge matches.
        crs: GeoJSON coordinates: ``wgs84`` (RFC 7946) or ``native`` (the scene's CRS).
        tta: average the predictions of flips and a rotation (segmentation, classification).
        block_windows: windows per block side (memory grows with its square).
        preview: also write ``<stem>.preview.png``, a quicklook of the scene and the
            predictions side by side.
        preview_bands: the scene's 1-based bands drawn as red, green, blue in the preview
            (None: the bands named red/green/blue or B04/B03/B02, ..., else 1, 2, 3).
        resample: read the scene through a warped view at the model's pixel size (aligned
            to the scene's origin, covering its extent; outputs are on that grid). None: only
            when the pixel sizes differ by more than :data:`AUTO_RESAMPLE_FACTOR`; False:
            never.
        vectors: also write ``<stem>.polygons.gpkg``: a polygon per connected region of a
            class (segmentation).
        vector_classes: classes made polygons (``--vector-classes``; default: all but
            background).
        min_area: regions smaller than this are dropped, in ``min_area_unit``.
        min_area_unit: ``pixels`` or ``m2``.
        simplify: topology-preserving simplification tolerance in pixels.
        vector_format: ``gpkg`` (scene CRS) or ``geojson`` (RFC 7946).
        vector_layer: GeoPackage layer name (None: the model's run name).
    """

    window: int | None = option(
        None, "Window side in pixels.", min=8, hint="pixels",
        show_default="fully convolutional models: the largest multiple of the tile size "
                     "within --window-memory, at least 256, at most the scene; others: the "
                     "tile size")
    window_memory: int = option(
        1024, "Memory budget (MB) that sets the default window of fully convolutional "
              "models.", min=16, hint="megabytes")
    overlap: float = option(0.25, "Share of a window shared with each neighbour.", min=0,
                            max=1, max_open=True, hint="a share of the window, e.g. 0.25")
    batch_size: int = option(4, "Windows per model call.", min=1)
    blend: str = option("gaussian", "Weights of overlapping windows (segmentation).",
                        choices=BLENDS, noun="blend")
    device: str = option("auto", "auto, cpu, cuda, cuda:N or mps.", rule=device_problem)
    probabilities: bool = option(True, "Also write <stem>.prob.tif (segmentation).")
    prob_dtype: str = option("uint8", "uint8: 0..254 with scale 1/254 (readers see 0..1).",
                             choices=PROB_DTYPES, noun="probability type")
    score_threshold: float = option(0.5, "Lowest detection score kept.", min=0, max=1)
    nms_iou: float = option(0.5, "IoU at which two detections of a class are one object.",
                            min=0, max=1)
    ios: float = option(0.5, "Intersection over the smaller box at which a box cut by a "
                             "window edge is the same object.", min=0, max=1)
    crs: str = option("wgs84", "GeoJSON coordinates: RFC 7946 WGS 84, or the scene's CRS.",
                      choices=CRS_CHOICES, noun="GeoJSON CRS")
    tta: bool = option(False, "Average flips and a rotation (segmentation, classification).")
    block_windows: int = option(4, "Windows per block side: the unit of reading, resuming "
                                   "and cluster tasks.", min=1)
    preview: bool = option(False, "Also write <stem>.preview.png: the scene and the "
                                  "predictions side by side.", fingerprint=False)
    preview_bands: tuple[int, int, int] | None = option(
        None, "The scene's 1-based bands drawn as red, green, blue in the preview, e.g. "
              "4,3,2.", min=1, metavar="R,G,B", fingerprint=False,
        show_default="bands named red/green/blue or B04/B03/B02, else 1,2,3")
    resample: bool | None = option(
        None, "Read scenes at the model's pixel size (outputs on that grid, aligned to the "
              "scene's origin).", show_default=f"when the pixel sizes differ by more than "
                                               f"{AUTO_RESAMPLE_FACTOR:g}x")
    vectors: bool = option(False, "Also write <stem>.polygons.gpkg: one polygon per connected "
                                  "region of a class, seam-exact (segmentation).")
    vector_classes: tuple[str, ...] = reuse(PolygonOptions, "classes", flag="--vector-classes")
    min_area: float = reuse(PolygonOptions, "min_area")
    min_area_unit: str = reuse(PolygonOptions, "min_area_unit")
    simplify: float = reuse(PolygonOptions, "simplify")
    vector_format: str = reuse(PolygonOptions, "format", flag="--vector-format")
    vector_layer: str | None = reuse(PolygonOptions, "layer", flag="--vector-layer",
                                     show_default="the model's run name")

    def check(self) -> None:
        """Raise :class:`~geovision.errors.InputError` naming the option that is wrong."""
        check_fields(self)
        if not self.vectors:
            for name in POLYGON_FIELDS.values():
                default = next(f.default for f in fields(self) if f.name == name)
                if getattr(self, name) != default:
                    flag = flag_of(InferOptions, name)
                    raise InputError(f"{flag}: applies to the polygons of --vectors; add "
                                     "--vectors, or leave it out")

    def polygon_options(self) -> PolygonOptions:
        """The polygon options of ``--vectors`` (as :func:`geovision.geo.vectorize` takes)."""
        return PolygonOptions(**{name: getattr(self, field)
                                 for name, field in POLYGON_FIELDS.items()})
