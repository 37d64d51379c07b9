"""Atomic file writes: a file appears under its name only once it is complete.

Every file geovision writes goes through :func:`atomic_path`: the content is written to a
hidden temporary name in the same folder and renamed when complete (a rename within a
folder is atomic), so a crash, a kill or a concurrent reader never sees half a file, and a
failed write leaves nothing behind.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporary_name(path: Path, *, keep_suffix: bool = False) -> Path:
    """The hidden temporary name of ``path`` for this process and thread.

    ``keep_suffix`` keeps the file's extension last, for writers that choose the format by it
    (matplotlib, ``np.savez``).
    """
    tag = f"tmp-{os.getpid()}-{threading.get_ident()}"
    if keep_suffix:
        return path.with_name(f".{path.stem}.{tag}{path.suffix}")
    return path.with_name(f".{path.name}.{tag}")


@contextmanager
def atomic_path(path: str | os.PathLike[str], *, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; renamed to ``path`` on success.

    Example::

        with atomic_path(out) as tmp:
            np.save(tmp, array)

    The temporary file is removed if the block raises. The parent folder must exist.
    """
    target = Path(path)
    tmp = temporary_name(target, keep_suffix=keep_suffix)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Replace a text file in one step; returns its path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
