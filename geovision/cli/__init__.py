"""The ``geovision`` command line: a thin layer over the library functions.

:mod:`geovision.cli.main` holds the group and imports every command module; the commands
import only :mod:`geovision.cli.options` (shared options and state) and, when they run, the
library function they call. The console script is ``geovision.cli.main:run``; ``cli`` and
``run`` are also importable from here, for scripts installed before the package was split.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geovision.lazy import exports

if TYPE_CHECKING:
    from geovision.cli.main import cli, run

__all__ = ["cli", "run"]
__getattr__ = exports(__name__, {name: "geovision.cli.main" for name in __all__})
