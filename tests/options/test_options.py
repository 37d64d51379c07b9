"""Options are defined once: the command line and job files accept the same values."""

from __future__ import annotations

import dataclasses

import pytest

from geovision.errors import InputError
from geovision.options import check_fields, convert, convert_fields, fields_of
from geovision.options.evaluate import EvaluateOptions
from geovision.options.export import ExportOptions
from geovision.options.generate import GenerateOptions
from geovision.options.infer import POLYGON_FIELDS, InferOptions
from geovision.options.tile import TileOptions
from geovision.options.vectorize import PolygonOptions

ALL = [TileOptions, InferOptions, EvaluateOptions, GenerateOptions, ExportOptions,
       PolygonOptions]


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_option_has_help_and_its_defaults_pass_the_checks(cls):
    assert fields_of(cls) and all(opt.spec.help for opt in fields_of(cls))
    # Its own options in order, then those it shares (SceneOptions), in order.
    own = [f.name for f in dataclasses.fields(cls) if f.name in cls.__annotations__]
    shared = [f.name for f in dataclasses.fields(cls) if f.name not in cls.__annotations__]
    assert [o.name for o in fields_of(cls)] == own + shared
    check_fields(cls())


def _field(cls, name):
    return next(o for o in fields_of(cls) if o.name == name)


@pytest.mark.parametrize(("cls", "name", "text", "listed", "value"), [
    (TileOptions, "fractions", "0.6,0.2,0.2", [0.6, 0.2, 0.2], (0.6, 0.2, 0.2)),
    (TileOptions, "bands", "3,2,1", [3, 2, 1], (3, 2, 1)),
    (TileOptions, "bands", "4", 4, (4,)),
    (TileOptions, "tile_size", "64", 64, 64),
    (InferOptions, "overlap", "0.5", 0.5, 0.5),
    (InferOptions, "tta", "true", True, True),
    (GenerateOptions, "crss", "EPSG:32633,EPSG:3035", ["EPSG:32633", "EPSG:3035"],
     ("EPSG:32633", "EPSG:3035")),
])
def test_command_line_text_and_yaml_values_give_the_same_option(cls, name, text, listed,
                                                                value):
    opt = _field(cls, name)
    assert convert(opt, text) == convert(opt, listed) == value


@pytest.mark.parametrize(("cls", "values", "message"), [
    (TileOptions, {"fractions": "0.6,x,0.2"}, "--fractions: '0.6,x,0.2' is not 3 "
                                              "comma-separated numbers"),
    (TileOptions, {"fractions": [0.6, 0.2]}, "--fractions: '0.6,0.2' is not 3"),
    (TileOptions, {"fractions": "0.6,0.2,0.1"}, "--fractions: (0.6, 0.2, 0.1) must be three "
                                                "shares (train,val,test) that add up to 1"),
    (TileOptions, {"task": "segmantation"}, "--task: 'segmantation' is not a task; choose one "
                                            "of segmentation, classification, detection"),
    (TileOptions, {"tile_size": 4}, "--tile-size: 4 must be at least 8 (pixels)"),
    (InferOptions, {"overlap": 1.0}, "--overlap: 1.0 must lie in [0, 1) (a share of the "
                                     "window, e.g. 0.25)"),
    (InferOptions, {"batch_size": "many"}, "--batch-size: 'many' is not an integer"),
    (InferOptions, {"device": "tpu"}, "--device: 'tpu' is not a device"),
    (EvaluateOptions, {"split": "tset"}, "--split: 'tset' is not a split"),
    (InferOptions, {"vector_format": "shp"}, "--vector-format: 'shp' is not a vector format; "
                                             "choose one of gpkg, geojson"),
    (InferOptions, {"min_area": -2}, "--min-area: -2.0 must be at least 0 (an area in "
                                       "--min-area-unit)"),
    (InferOptions, {"vector_layer": " "}, "--vector-layer: the layer name must not be empty"),
    (PolygonOptions, {"format": "shp"}, "--format: 'shp' is not a vector format"),
])
def test_bad_values_are_named_as_on_the_command_line(cls, values, message):
    _, problems = convert_fields(cls, values)
    assert len(problems) == 1 and message in problems[0], problems


def test_library_checks_use_the_same_messages():
    with pytest.raises(InputError, match=r"--min-box-visible: 0.0 must lie in \(0, 1\]"):
        TileOptions(min_box_visible=0.0).check()
    with pytest.raises(InputError, match="--blend: 'cosine' is not a blend"):
        InferOptions(blend="cosine").check()


def test_polygon_options_are_defined_once_and_infer_spells_them_its_way():
    """Every polygon option is an infer option with the same default, help and checks."""
    infer = {o.name: o for o in fields_of(InferOptions)}
    polygon = fields_of(PolygonOptions)
    assert sorted(POLYGON_FIELDS) == sorted(o.name for o in polygon)
    for opt in polygon:
        mine = infer[POLYGON_FIELDS[opt.name]]
        assert mine.default == opt.default and mine.kind == opt.kind
        assert dataclasses.replace(mine.spec, flag="", show_default=None) == \
            dataclasses.replace(opt.spec, flag="", show_default=None)
    assert infer["vector_classes"].flag == "--vector-classes"
    assert infer["simplify"].flag == "--simplify"
    values, problems = convert_fields(InferOptions, {"vectors": True, "vector_classes":
                                                     ["water", "crop"], "min_area": "25"})
    assert not problems
    options = InferOptions(**values)
    options.check()
    assert options.polygon_options() == PolygonOptions(classes=("water", "crop"), min_area=25)
