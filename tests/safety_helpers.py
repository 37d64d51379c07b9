"""Helpers of the safety tests: processes without root's write override, and lock holders.

Tests may run as root, whom ``chmod`` does not stop. A read-only folder then needs a
process without the capabilities that ignore file permissions: ``setpriv`` drops them
(``CAP_DAC_OVERRIDE``, ``CAP_DAC_READ_SEARCH``, ``CAP_FOWNER``) for the child it runs. Where
that is impossible, the read-only assertions are skipped with the reason.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_CAPS = "-dac_override,-dac_read_search,-fowner"


def child_env() -> dict[str, str]:
    """The environment of a child Python that imports this checkout's geovision."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    return env


@functools.cache
def _restricted_prefix() -> tuple[str, ...] | str:
    """The command prefix for a process that file permissions stop, or why there is none."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return "running as root, where chmod does not stop writes, and setpriv is missing"
    prefix = (setpriv, f"--bounding-set={_CAPS}", f"--inh-caps={_CAPS}", "--")
    probe = subprocess.run([*prefix, "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return ("running as root, where chmod does not stop writes, and setpriv cannot drop "
                f"capabilities here ({probe.stderr.strip()[:80]})")
    return prefix


def run_restricted(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` in a process that file permissions stop (root or not).

    Skips the calling test where no such process can be made.
    """
    prefix = _restricted_prefix()
    if isinstance(prefix, str):
        pytest.skip(prefix)
    return subprocess.run([*prefix, sys.executable, "-c", code], capture_output=True,
                          text=True, cwd=cwd, env=child_env(), timeout=60)


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run Python ``code`` in another process, with this checkout's geovision."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, env=child_env(), timeout=60)


def readonly_folder(path: Path) -> Path:
    """Make ``path`` a folder with mode 0555 (undo with ``chmod(0o755)``)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    return path


HOLD_LOCK = """
import sys, time
from geovision.locks import output_lock
with output_lock(sys.argv[1], command=sys.argv[2]):
    print("locked", flush=True)
    time.sleep(120)
"""


def hold_lock(output: Path, command: str) -> subprocess.Popen[str]:
    """A child process that holds the lock on ``output`` until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(output), command],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=child_env())
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if line != "locked":
        proc.kill()
        raise AssertionError(f"lock holder did not start: {line!r} {proc.stderr.read()}")
    return proc
