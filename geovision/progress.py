"""Progress bars that follow the command's verbosity."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from tqdm import tqdm

_QUIET = False


def set_quiet(quiet: bool) -> None:
    """Hide every progress bar (the CLI's ``-q``)."""
    global _QUIET
    _QUIET = quiet


def progress_bar(*, total: int | None, desc: str, unit: str, disable: bool = False,
                 **kwargs: Any) -> tqdm:
    """A tqdm bar on stderr, hidden under ``-q``.

    A hidden bar is a stand-in whose every method does nothing (tqdm is not even imported:
    its import costs a library call such as ``tile()`` some 40 ms).
    """
    if disable or _QUIET:
        return cast("tqdm", _Hidden())
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=disable or _QUIET,
                file=sys.stderr, dynamic_ncols=True, leave=False, **kwargs)


class _Hidden:
    """A progress bar that shows nothing.

    Every method (``update``, ``set_postfix``...) is a no-op; it is its own context manager.
    """

    n = 0

    def __enter__(self) -> _Hidden:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return _nothing


def _nothing(*args: Any, **kwargs: Any) -> None:
    return None
