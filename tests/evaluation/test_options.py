"""The options of `score`: defined once (geovision/options/score.py), offered everywhere."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from geovision.errors import InputError
from geovision.evaluation import ScoreOptions
from geovision.options import convert_fields, fields_of


def test_every_option_is_an_option_field_with_its_flag_and_check() -> None:
    fields = {f.name: f for f in fields_of(ScoreOptions)}
    assert list(fields) == [f.name for f in dataclasses.fields(ScoreOptions)]
    assert fields["class_field"].flag == "--class-field"
    assert fields["class_field"].kind.base is str and fields["class_field"].default is None
    assert fields["unlabeled"].spec.choices == ("background", "ignore")
    assert fields["replicates"].kind.base is int and fields["replicates"].spec.min == 0
    assert not fields["block_size"].spec.fingerprint  # a memory knob, not a result
    assert "overwrite" not in fields  # a keyword of score(), as for every command
    assert all(f.spec.help for f in fields.values())


def test_options_are_frozen_and_checked() -> None:
    opts = ScoreOptions(class_field="kind")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.class_field = "other"  # type: ignore[misc]
    opts.check()
    with pytest.raises(InputError, match=r"^--replicates: -1 must be at least 0$"):
        ScoreOptions(replicates=-1).check()
    with pytest.raises(InputError, match=r"^--unlabeled: 'none' is not a choice for unlabeled "
                                         r"pixels; choose one of background, ignore$"):
        ScoreOptions(unlabeled="none").check()


def test_options_from_a_job_step_are_converted_as_on_the_command_line() -> None:
    values, problems = convert_fields(ScoreOptions, {"class_field": "kind", "replicates": "10",
                                                     "bootstrap_block": 32})
    assert problems == [] and ScoreOptions(**values) == ScoreOptions(
        class_field="kind", replicates=10, bootstrap_block=32)
    _, problems = convert_fields(ScoreOptions, {"seed": 1.5, "block_size": 8})
    assert problems == ["--block-size: 8 must be at least 16 (pixels)",
                        "--seed: '1.5' is not an integer"]


def test_the_package_does_not_load_torch() -> None:
    code = ("import sys, geovision.evaluation, geovision.evaluation.curves, "
            "geovision.evaluation.detection, geovision.options.score; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
