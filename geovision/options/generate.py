"""The options of ``geovision generate`` (and of ``generate`` steps in job files)."""

from __future__ import annotations

from dataclasses import dataclass

from geovision.options import check_fields, option

#: Pixel types of generated rasters.
DTYPES = ("uint8", "uint16", "int16", "float32")


@dataclass(frozen=True)
class GenerateOptions:
    """What synthetic sample to write (see :func:`geovision.synthetic.make_sample`).

    Attributes:
        size: raster width and height in pixels.
        crss: one raster per CRS, over neighbouring areas.
        bands: band count.
        dtype: pixel type.
        res: pixel size in metres (about, for geographic CRSs).
        seed: random seed.
        n_regions: land-cover regions (None: by area).
        n_objects: buildings (None: by area).
        stem: file name stem of the rasters.
    """

    size: int = option(1024, "Raster width and height in pixels.", min=16)
    crss: tuple[str, ...] = option(("EPSG:32633",), "CRS of a raster; repeat for several "
                                                    "rasters over neighbouring areas.",
                                   flag="--crs", multiple=True)
    bands: int = option(4, "Band count.", min=1)
    dtype: str = option("uint8", "Pixel type.", choices=DTYPES, noun="pixel type")
    res: float = option(10.0, "Pixel size in metres (about, for geographic CRSs).", min=0,
                        min_open=True)
    seed: int = option(0, "Random seed.")
    n_regions: int | None = option(None, "Land-cover regions [default: by area].", min=0,
                                   cli=False)
    n_objects: int | None = option(None, "Buildings [default: by area].", min=0, cli=False)
    stem: str = option("scene", "File name stem of the rasters.", cli=False)

    def check(self) -> None:
        """Raise :class:`~geovision.errors.InputError` naming the option that is wrong."""
        check_fields(self)
