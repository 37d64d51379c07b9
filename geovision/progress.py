"""Progress bars that follow the command's verbosity."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tqdm import tqdm

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Hide every progress bar (the CLI's ``-q``)."""
    global _QUIET
    _QUIET = quiet


def progress_bar(*, total: int | None, desc: str, unit: str, disable: bool = False,
                 **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr, hidden under ``-q``."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=disable or _QUIET,
                file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)
