"""The ``geovision`` command line: a thin layer over the library functions.

:mod:`geovision.cli.main` holds the group and imports every command module; the commands
import only :mod:`geovision.cli.options` (shared options and state) and, when they run, the
library function they call. The console script is ``geovision.cli.main:run``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geovision.lazy import exports

if TYPE_CHECKING:
    from geovision.cli.main import cli, main, run

__all__ = ["cli", "main", "run"]
__getattr__ = exports(__name__, {name: "geovision.cli.main" for name in __all__})
