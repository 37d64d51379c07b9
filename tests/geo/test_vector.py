import geopandas as gpd
import pytest
import shapely

from geovision.errors import InputError, InputFileError
from geovision.geo.vector import read_labels


def test_classes_sorted_from_field(sample_two_crs):
    lab = read_labels(sample_two_crs.labels, class_field="kind")
    assert [c["name"] for c in lab.classes] == ["background", "building", "crop", "forest",
                                                  "water"]
    kinds = gpd.read_file(sample_two_crs.labels)["kind"]
    expected = kinds.map({"building": 1, "crop": 2, "forest": 3, "water": 4}).to_numpy()
    assert (lab.frame["class_id"].to_numpy() == expected).all()


def test_no_field_is_one_class(sample_two_crs):
    lab = read_labels(sample_two_crs.objects)
    assert [c["name"] for c in lab.classes] == ["background", "objects"]
    assert set(lab.frame["class_id"]) == {1}


def test_invalid_geometry_repaired_and_counted(tmp_path):
    bowtie = shapely.Polygon([(0, 0), (10, 10), (10, 0), (0, 10)])
    frame = gpd.GeoDataFrame({"kind": ["a", "b"]}, geometry=[bowtie, shapely.box(0, 0, 1, 1)],
                             crs="EPSG:32633")
    path = tmp_path / "bad.geojson"
    frame.to_file(path)
    lab = read_labels(path, class_field="kind")
    assert lab.repaired == 1
    assert shapely.is_valid(lab.frame.geometry.values).all()


def test_missing_field_lists_fields(sample_two_crs):
    with pytest.raises(InputError, match=r"field 'klass' not found; fields are: kind"):
        read_labels(sample_two_crs.labels, class_field="klass")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.gpkg"
    gpd.GeoDataFrame({"kind": []}, geometry=[], crs="EPSG:4326").to_file(path)
    with pytest.raises(InputError, match="empty.gpkg: the label file holds no features"):
        read_labels(path)


def test_missing_and_unreadable(tmp_path):
    with pytest.raises(InputFileError, match="nope.shp: file not found"):
        read_labels(tmp_path / "nope.shp")
    junk = tmp_path / "junk.geojson"
    junk.write_text("{not json")
    with pytest.raises(InputFileError, match="junk.geojson: not a vector file"):
        read_labels(junk)


def test_unknown_layer(sample_two_crs):
    with pytest.raises(InputError, match="layer 'roads' not found; layers are: landcover"):
        read_labels(sample_two_crs.labels, layer="roads")
