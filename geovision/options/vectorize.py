"""The polygon options: of ``geovision vectorize``, and of ``geovision infer --vectors``.

:class:`PolygonOptions` defines each option once. ``vectorize`` offers them as they are
(``--classes``, ``--format``, ``--layer``, ...); ``infer`` reuses the same fields in
:class:`~geovision.options.infer.InferOptions` under its own spelling where a name would be
ambiguous beside its other options (``--vector-classes``, ``--vector-format``,
``--vector-layer``), so that a message names the flag the user typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from geovision.options import check_fields, option

#: Output formats: GeoPackage in the raster's CRS, or RFC 7946 GeoJSON (WGS 84).
FORMATS = ("gpkg", "geojson")
#: Units of ``min_area``: pixels, or square metres (the unit of the ``area`` attribute).
AREA_UNITS = ("pixels", "m2")
#: Table name prefixes a GeoPackage reserves for itself.
RESERVED_LAYER_PREFIXES = ("gpkg_", "rtree_", "sqlite_")


def layer_problem(name: str | None) -> str | None:
    """Why ``name`` cannot name a GeoPackage layer, or None."""
    if name is None:
        return None
    if not name.strip():
        return "the layer name must not be empty"
    if name.lower().startswith(RESERVED_LAYER_PREFIXES):
        return (f"'{name}' starts with a prefix GeoPackage reserves "
                f"({', '.join(RESERVED_LAYER_PREFIXES)}); choose another name")
    return None


@dataclass(frozen=True)
class PolygonOptions:
    """How a class raster becomes polygons (the options of ``geovision vectorize``).

    Attributes:
        classes: classes to vectorize, by name or id; empty: every class but background (0).
        min_area: drop regions smaller than this, in ``min_area_unit``.
        min_area_unit: ``pixels``, or ``m2`` (the ``area`` attribute's unit).
        simplify: topology-preserving simplification tolerance in pixels (0: none).
        format: ``gpkg`` (the raster's CRS) or ``geojson`` (RFC 7946, WGS 84).
        layer: GeoPackage layer name (None: the command's default, see its help).
    """

    classes: tuple[str, ...] = option(
        (), "Classes to vectorize, by name or id (repeat or comma-separate); default: every "
        "class but background (id 0).", metavar="CLASS", multiple=True)
    min_area: float = option(
        0.0, "Drop regions smaller than this, in --min-area-unit (0: keep all).", min=0,
        metavar="AREA", hint="an area in --min-area-unit")
    min_area_unit: str = option(
        "pixels", "Unit of --min-area: pixels, or m2 (square metres, as the area attribute: "
        "on the ellipsoid for geographic CRSs; square CRS units without a CRS).",
        choices=AREA_UNITS, noun="unit")
    simplify: float = option(
        0.0, "Simplify edges with this tolerance in pixels; neighbouring polygons keep "
        "sharing their edges (0: exact pixel edges).", min=0, metavar="PIXELS",
        hint="a tolerance in pixels")
    format: str = option(
        "gpkg", "gpkg: GeoPackage in the raster's CRS; geojson: RFC 7946 GeoJSON in WGS 84.",
        choices=FORMATS, noun="vector format", fingerprint=False)
    layer: str | None = option(
        None, "GeoPackage layer name.", metavar="NAME", rule=layer_problem,
        show_default="the class raster's name", fingerprint=False)

    def __post_init__(self) -> None:
        """Take a single class as a tuple of one, and check every value.

        Raises:
            InputError: a value is out of range or not one of the choices (named as the
                command line spells it).
        """
        if isinstance(self.classes, str):
            object.__setattr__(self, "classes", (self.classes,))
        else:
            object.__setattr__(self, "classes", tuple(str(c) for c in self.classes))
        self.check()

    def check(self) -> None:
        """Raise :class:`~geovision.errors.InputError` naming the option that is wrong."""
        check_fields(self)

    @property
    def suffix(self) -> str:
        """File name ending of the output (``.polygons.gpkg`` or ``.polygons.geojson``)."""
        return f".polygons.{self.format}"
