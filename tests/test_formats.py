"""Classes and bands: frozen values read from and written to the files' records."""

from geovision.formats import BandInfo, ClassInfo, bands_from_json, classes_from_json


def test_records_round_trip_and_missing_fields_stay_missing():
    records = [{"id": 0, "name": "background", "color": "#000000"}, {"id": 1, "name": "x"}]
    classes = classes_from_json(records)
    assert classes[1] == ClassInfo(1, "x") and [c.to_json() for c in classes] == records
    bands = bands_from_json([{"name": "red", "dtype": "uint8"}, {"index": 4, "name": "nir"}])
    assert bands == (BandInfo(1, "red", "uint8"), BandInfo(4, "nir"))
    assert bands[1].to_json() == {"index": 4, "name": "nir"}
