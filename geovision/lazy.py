"""Package attributes imported on first use, so that importing a package stays cheap.

The command line imports the option definitions of every stage to build its options and to
check a command before any work; a package whose ``__init__`` imported its library functions
would load torch for that. Packages list what they export with :func:`exports` instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``name`` from ``where[name]`` when first asked.

    Args:
        package: the package's ``__name__``, for the error message.
        where: the module that defines each exported name.
    """

    def getattr_(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return getattr_
