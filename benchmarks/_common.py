"""Helpers shared by the benchmark scripts: timed child processes and JSON reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def peak_rss_mb() -> float:
    """This process's peak resident set in MB since it started its program.

    Linux's VmHWM starts afresh at exec; ``ru_maxrss`` does not (a child forked from a large
    parent inherits the parent's peak), so VmHWM is read where there is one.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_child(args: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run ``python <args>`` in a fresh process that prints one JSON line; add peak RSS.

    The child reports its own figures (seconds, ``peak_rss_mb`` from :func:`peak_rss_mb`, ...)
    as the last line of stdout; the parent adds ``wall_s``.
    """
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    _, status, _ = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    out = proc.stdout.read() if proc.stdout else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"benchmark child failed: {' '.join(args)}\n{out}")
    result = json.loads(out.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result


def write_report(out_dir: str | os.PathLike[str], name: str, report: dict[str, Any]) -> Path:
    """Write ``<out_dir>/<name>.json`` and return its path."""
    path = Path(out_dir) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return path
