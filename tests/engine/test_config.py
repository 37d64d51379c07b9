"""Config errors name the key, say what was expected, and suggest the closest valid key."""

import pytest
import yaml

from geovision.cli.main import main
from geovision.engine.config import apply_overrides, load_config
from geovision.errors import ConfigError


@pytest.fixture
def base(tmp_path):
    store = tmp_path / "t.zarr"
    store.mkdir()
    return {"data": {"dataset": str(store)}, "model": {"name": "unet"}}


def test_defaults_are_filled(base):
    cfg = load_config(base)
    assert cfg.train.epochs == 10 and cfg.train.optimizer.name == "AdamW"
    assert cfg.train.optimizer.params["lr"] == 1e-3
    assert cfg.data.augment.rot90 is True


@pytest.mark.parametrize(("override", "message"), [
    ("data.batchsize=4", "unknown key 'data.batchsize'; did you mean 'data.batch_size'?"),
    ("trian.epochs=2", "unknown key 'trian'; did you mean 'train'?"),
    ("train.optimizer.nmae=SGD", "did you mean 'train.optimizer.name'?"),
    ("train.epochs=many", "train.epochs: expected an integer, got 'many'"),
    ("train.grad_clip=[1]", "train.grad_clip: expected a number"),
    ("data.dataset=/no/such/tiles.zarr", "data.dataset: /no/such/tiles.zarr not found"),
])
def test_errors_name_the_key(base, override, message):
    with pytest.raises(ConfigError) as err:
        load_config(base, [override])
    assert message in str(err.value)


def test_missing_section(base):
    del base["model"]
    with pytest.raises(ConfigError, match="required key 'model' is missing"):
        load_config(base)


def test_overrides_parse_yaml_values(base):
    cfg = load_config(base, ["train.epochs=3", "train.scheduler=null",
                             "model.params={base_channels: 8}", "train.optimizer.name=SGD",
                             "train.optimizer.params.lr=0.1"])
    assert cfg.train.epochs == 3 and cfg.train.scheduler is None
    assert cfg.model.params == {"base_channels": 8}
    assert cfg.train.optimizer.params == {"lr": 0.1}  # AdamW's defaults do not leak into SGD


def test_override_through_a_value_fails():
    with pytest.raises(ConfigError, match="'a' is a value"):
        apply_overrides({"a": 1}, ["a.b=2"])
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])


def test_cli_reports_one_line_and_exit_2(base, tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base | {"train": {"epocs": 3}}))
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "unknown key 'train.epocs'; did you mean 'train.epochs'?" in err
    assert str(path) in err


def test_unknown_architecture_and_optimizer_are_config_errors(base, tmp_path):
    from geovision.engine import train
    from geovision.errors import GeovisionError

    base["data"]["dataset"] = str(tmp_path / "missing.zarr")
    with pytest.raises(ConfigError, match="not found"):
        train(base)
    assert issubclass(ConfigError, GeovisionError)


def test_readme_config_reference_is_the_config_models():
    from pathlib import Path

    from geovision.engine.config import config_reference

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert config_reference() in readme, (
        "the README's config table differs from the config model; paste the output of "
        "python -c 'from geovision.engine.config import config_reference as c; print(c())'")
