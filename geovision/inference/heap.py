"""Keeping the model's working memory mapped between batches (glibc's allocator).

A network's activations are large (a U-Net of width 8 on four 512-pixel windows makes 32 MiB
feature maps; wider ones, hundreds of MiB), and torch frees them after every layer. glibc
serves every request above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
returns it with ``munmap`` on free, so every batch touches its activations' pages for the
first time again: the kernel zeroes and maps them one 4 KiB fault at a time. On the 2-core
benchmark machine that was 2.5-6 million page faults and 5-12 CPU seconds of system time per
4096-pixel scene, a third of the model's own time.

:func:`steady_heap` asks glibc, while a scene runs, to serve large requests from its heap
(``M_MMAP_MAX`` 0) and to keep freed memory instead of giving it back (``M_TRIM_THRESHOLD``),
so the second batch reuses the first one's pages. The process's peak memory is what the
largest batch needs, as before; the defaults are restored when the scene is done and the
memory is returned (``malloc_trim``, on a thread of its own). Elsewhere (another C library,
another OS) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
#: glibc's defaults, restored afterwards.
_DEFAULT_MMAP_MAX = 65536
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
#: Freed memory kept at the top of the heap before it is given back, while a scene runs
#: (mallopt takes an int: 2 GiB, its largest value).
KEEP_BYTES = 2**31 - 1

_lock = threading.Lock()
_depth = 0
_trim: threading.Thread | None = None  # the last malloc_trim, on a thread of its own


@functools.lru_cache(maxsize=1)
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (with ``mallopt`` and ``malloc_trim``), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        for name in ("gnu_get_libc_version", "mallopt", "malloc_trim"):
            getattr(libc, name)  # glibc's, all three
    except (OSError, AttributeError):
        return None
    return libc


def available() -> bool:
    """Whether :func:`steady_heap` can change anything here (glibc on Linux)."""
    return _glibc() is not None


@contextmanager
def steady_heap() -> Iterator[bool]:
    """Serve large allocations from a heap that keeps freed memory, for the duration.

    Nested and concurrent uses share one setting; the last to leave restores glibc's
    defaults and returns the kept memory to the system.

    Yields:
        Whether the setting is in effect (False where the C library is not glibc).
    """
    global _depth
    libc = _glibc()
    if libc is None:
        yield False
        return
    with _lock:
        if _depth == 0:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES)
        _depth += 1
    try:
        yield True
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
                # returning a scene's worth of pages takes the kernel ~25 ms per GiB: on a
                # thread of its own (ctypes lets go of the GIL), not on the caller's way out
                global _trim
                _trim = threading.Thread(target=libc.malloc_trim, args=(0,), daemon=True,
                                         name="geovision-trim")
                _trim.start()


def returned() -> None:
    """Wait until the memory kept by the last :func:`steady_heap` has been returned."""
    if _trim is not None:
        _trim.join()
