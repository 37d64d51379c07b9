import math

import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from geovision.geo.grid import Grid
from geovision.geo.resolution import PixelSize, compare_resolution


@pytest.fixture(scope="module")
def elev(luxembourg):
    with rasterio.open(luxembourg / "elev.tif") as ds:
        return Grid.of(ds)


def test_same_crs_in_degrees_is_one(elev):
    # A model trained on this very raster: before, degrees were compared with metres (78,784x).
    model = PixelSize.of(elev)
    assert model.unit == "degree"
    match = compare_resolution(model, elev)
    assert match.factor == 1.0 and match.unit == "degree" and not match.differs(0.05)


def test_degrees_against_metres_at_the_scene_centre(elev):
    model = PixelSize(30.0, 30.0, CRS.from_epsg(32632).to_wkt())
    match = compare_resolution(model, elev)
    assert match.unit == "metre" and match.model == (30.0, 30.0)
    _, bottom, _, top = elev.bounds
    lat = math.radians((bottom + top) / 2)
    # Pixel ground size on a sphere of the WGS 84 mean radius, to 0.5%.
    r = 6_371_008.8
    x = math.radians(elev.res[0]) * r * math.cos(lat)
    y = math.radians(elev.res[1]) * r
    assert match.scene[0] == pytest.approx(x, rel=0.005)
    assert match.scene[1] == pytest.approx(y, rel=0.005)
    assert match.factors == pytest.approx((x / 30, y / 30), rel=0.005)
    assert match.factor == pytest.approx(math.sqrt(x * y) / 30, rel=0.005)
    # And the other way round: a model in degrees on a scene in metres.
    utm = Grid(CRS.from_epsg(32632), Affine(600.0, 0, 280_000, 0, -600.0, 5_560_000), 100, 100)
    back = compare_resolution(PixelSize.of(elev), utm)
    assert back.unit == "metre" and back.scene == (600.0, 600.0)
    assert back.model[0] == pytest.approx(x, rel=0.01)


def test_linear_units_are_converted():
    feet = Grid(CRS.from_epsg(2263), Affine(10.0, 0, 1e6, 0, -10.0, 2e5), 10, 10)  # US feet
    model = PixelSize(3.048006096, 3.048006096, CRS.from_epsg(32618).to_wkt())
    match = compare_resolution(model, feet)
    assert match.unit == "metre" and match.factor == pytest.approx(1.0, rel=1e-6)


def test_unknown_crs_compares_in_scene_units(elev):
    match = compare_resolution(PixelSize(elev.res[0] * 2, elev.res[1] * 2), elev)
    assert match.factor == pytest.approx(0.5) and match.unit == "degree"
    assert PixelSize(1.0, 1.0).describe() == {"x": 1.0, "y": 1.0, "unit": None, "crs": None}
