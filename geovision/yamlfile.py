"""Reading YAML files that must hold a mapping, with errors that name the file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from geovision.errors import ConfigError


def read_mapping(path: str | os.PathLike[str], *, what: str, shape: str) -> dict[str, Any]:
    """Read a YAML file whose top level is a mapping.

    Args:
        path: the file.
        what: what the file is, for messages ("config file", "job file").
        shape: what the mapping should hold, for the message when it is not one.

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: {what} not found")
    try:
        raw = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: not valid YAML ({str(exc).splitlines()[0]})") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected {shape}")
    return raw
