"""The options of `score`: one frozen value that a command line can be generated from."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from geovision.errors import InputError
from geovision.evaluation import ScoreOptions, option_specs


def test_every_option_is_described_for_a_command_line() -> None:
    specs = {s.name: s for s in option_specs()}
    assert list(specs) == [f.name for f in dataclasses.fields(ScoreOptions)]
    assert specs["class_field"].flag == "--class-field"
    assert specs["class_field"].type is str and specs["class_field"].default is None
    assert specs["unlabeled"].choices == ("background", "ignore")
    assert specs["replicates"].type is int and specs["replicates"].min == 0
    assert specs["overwrite"].type is bool and specs["overwrite"].default is False
    assert all(s.help for s in specs.values())


def test_options_are_frozen_and_checked() -> None:
    opts = ScoreOptions(class_field="kind")
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.class_field = "other"  # type: ignore[misc]
    assert opts.check() is opts
    assert opts.to_json()["class_field"] == "kind"
    with pytest.raises(InputError, match=r"--replicates: must be at least 0, got -1"):
        ScoreOptions(replicates=-1).check()
    with pytest.raises(InputError, match=r"--seed: expected a whole number, got 1.5"):
        ScoreOptions(seed=1.5).check()  # type: ignore[arg-type]


def test_the_package_does_not_load_torch() -> None:
    code = ("import sys, geovision.evaluation, geovision.evaluation.curves, "
            "geovision.evaluation.detection; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_options_from_a_job_step() -> None:
    opts = ScoreOptions.from_dict({"class-field": "kind", "replicates": 10}, source="job.yaml")
    assert opts == ScoreOptions(class_field="kind", replicates=10)
    with pytest.raises(InputError, match=r"job.yaml: unknown score option 'class_feild' "
                                         r"\(did you mean 'class_field'\?\)"):
        ScoreOptions.from_dict({"class_feild": "kind"}, source="job.yaml")
