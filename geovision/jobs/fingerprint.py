"""What a job step's outputs were made from, and why a step runs again.

A step's **fingerprint** is what its outputs depend on:

* ``options``: every option of the step as resolved (defaults filled in; a train step's
  whole resolved config, keys dotted as in ``--set``), paths inside the workdir written
  relative to it;
* ``inputs``: each input file as it is now: size and modification time for a local file,
  :func:`geovision.geo.paths.fingerprint` for a virtual one (``/vsis3/...``, a URL), and for a
  folder (a tile store) the count, total size and a digest of the sizes and modification
  times of the files under it. Globs are expanded, so a file that starts or stops matching
  changes the fingerprint too. Outputs of earlier steps that a step reads (a tile store, a
  ``model.pt``, a class raster) are inputs like any other, fingerprinted when the step
  starts: an earlier step that ran again wrote them anew, so every later step that reads
  them runs again.

Each step's fingerprint is stored when the step starts (``status: running``) and marked
``complete`` when it ends, in ``<workdir>/.geovision-job/<job name>/<step name>.json`` (not
inside the outputs: those belong to their stage, whose ``--overwrite`` removes only what it
wrote). :func:`decide` compares it with the fingerprint of now.
"""

from __future__ import annotations

import datetime as dt
import glob
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geovision.atomic import write_text

#: Folder of the step records, in the job's workdir.
STATE_DIR = ".geovision-job"
_FORMAT = {"format": "job-step", "version": 1}
#: Changes listed in a reason before "and N more".
SHOWN_CHANGES = 4


# ------------------------------------------------------------------------ fingerprints

def _local_stat(path: str) -> dict[str, Any]:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def folder_fingerprint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Count, total size and a digest of every file's relative path, size and mtime.

    Entries whose name starts with a dot (ownership marks, locks, scratch folders) are left
    out, at every depth.
    """
    root = Path(path)
    digest = hashlib.sha256()
    files = size = 0
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(n for n in names if not n.startswith(".")):
            full = os.path.join(folder, name)
            try:
                st = os.stat(full)
            except OSError:
                continue
            rel = os.path.relpath(full, root)
            digest.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
            files += 1
            size += st.st_size
    return {"files": files, "size": size, "digest": digest.hexdigest()[:16]}


def path_fingerprint(path: str) -> dict[str, Any]:
    """What identifies an input now (see the module's docstring); ``{"missing": true}``."""
    from geovision.geo.paths import is_local

    if not is_local(path):
        from geovision.errors import GeovisionError
        from geovision.geo.paths import fingerprint

        try:
            found: dict[str, Any] = fingerprint(path)
        except GeovisionError:
            return {"missing": True}
        found.pop("path", None)
        return found
    local = path.removeprefix("file://")
    if os.path.isdir(local):
        return folder_fingerprint(local)
    if os.path.exists(local):
        return _local_stat(local)
    return {"missing": True}


def expand(pattern: str) -> list[str]:
    """The paths a pattern names now: the sorted matches of a glob, else the path itself."""
    if glob.has_magic(pattern) and "://" not in pattern and not pattern.startswith("/vsi"):
        return sorted(glob.glob(pattern, recursive=True))
    return [pattern]


def input_fingerprints(patterns: Iterable[str], workdir: Path) -> dict[str, Any]:
    """``{path as shown: fingerprint}`` of every path the patterns name (globs expanded)."""
    out: dict[str, Any] = {}
    for pattern in patterns:
        for path in expand(pattern):
            out[shown_path(path, workdir)] = path_fingerprint(path)
    return out


def shown_path(path: str, workdir: Path) -> str:
    """A path relative to the workdir when it lies inside, else as it is."""
    base = str(workdir).rstrip("/") + "/"
    return path[len(base):] if path.startswith(base) else path


def relative_values(value: Any, workdir: Path) -> Any:
    """Plain JSON values with absolute paths inside the workdir made relative to it."""
    if isinstance(value, Mapping):
        return {str(k): relative_values(v, workdir) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [relative_values(v, workdir) for v in value]
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, str):
        return shown_path(value, workdir)
    return value


def flatten(doc: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as dotted keys (``{"train": {"epochs": 3}}`` -> ``train.epochs``)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


@dataclass(frozen=True)
class Fingerprint:
    """What a step's outputs are made from (see the module's docstring)."""

    kind: str
    options: dict[str, Any]
    inputs: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Plain JSON values."""
        return {"kind": self.kind, "options": self.options, "inputs": self.inputs}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Fingerprint:
        """Read back what :meth:`to_json` wrote."""
        return cls(kind=str(doc.get("kind")), options=dict(doc.get("options") or {}),
                   inputs=dict(doc.get("inputs") or {}))


# ------------------------------------------------------------------------ differences

def _show(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class Change:
    """One difference between a stored fingerprint and the one of now.

    Attributes:
        what: ``option``, ``input`` or ``kind``.
        key: the option (as spelled in the job file) or the input's path.
        old: the value then (None: absent).
        new: the value now (None: absent).
        cause: the step of this run that remade the input, if one did.
    """

    what: str
    key: str
    old: Any = None
    new: Any = None
    cause: str | None = None

    def describe(self) -> str:
        """One phrase: ``train.epochs changed 30 -> 5``, ``input tiles.zarr changed``."""
        if self.what == "kind":
            return f"step kind changed {self.old} -> {self.new}"
        if self.what == "option":
            return f"{self.key} changed {_show(self.old)} -> {_show(self.new)}"
        by = f" (made again by step '{self.cause}')" if self.cause else ""
        if self.old is None or self.old.get("missing"):
            return f"input {self.key} is new{by}"
        if self.new is None or self.new.get("missing"):
            return f"input {self.key} is gone"
        return f"input {self.key} changed{by}"


_ABSENT = object()


def differences(old: Fingerprint, new: Fingerprint) -> list[Change]:
    """What changed from ``old`` to ``new``: options first (in ``new``'s order), then inputs."""
    if old.kind != new.kind:
        return [Change("kind", "kind", old.kind, new.kind)]
    changes = []
    for key in [*new.options, *(k for k in old.options if k not in new.options)]:
        before, after = old.options.get(key, _ABSENT), new.options.get(key, _ABSENT)
        if before != after:
            changes.append(Change("option", key, None if before is _ABSENT else before,
                                  None if after is _ABSENT else after))
    for key in [*new.inputs, *(k for k in old.inputs if k not in new.inputs)]:
        before, after = old.inputs.get(key), new.inputs.get(key)
        if before != after:
            changes.append(Change("input", key, before, after))
    return changes


def summarize(changes: list[Change]) -> str:
    """The changes as one phrase, the first few named."""
    shown = "; ".join(c.describe() for c in changes[:SHOWN_CHANGES])
    more = len(changes) - SHOWN_CHANGES
    return shown + (f"; and {more} more" if more > 0 else "")


# ------------------------------------------------------------------------ step records

def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass
class StepState:
    """The record of a step in the workdir: its fingerprint and whether it finished.

    Attributes:
        path: the record file.
        fingerprint: what the outputs were (or are being) made from.
        status: ``running`` (started; an interrupted or failed run) or ``complete``.
        started: when the step started (ISO 8601, UTC).
        finished: when it finished, or None.
        outputs: the outputs, as shown.
    """

    path: Path
    fingerprint: Fingerprint
    status: str = "running"
    started: str = field(default_factory=_now)
    finished: str | None = None
    outputs: list[str] = field(default_factory=list)

    def write(self) -> None:
        """Write the record atomically."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        doc = {"geovision": _FORMAT, "status": self.status, "started": self.started,
               "finished": self.finished, "outputs": self.outputs,
               "fingerprint": self.fingerprint.to_json()}
        write_text(self.path, json.dumps(doc, indent=1) + "\n")

    def complete(self) -> None:
        """Mark the step finished and write the record."""
        self.status, self.finished = "complete", _now()
        self.write()


def record_path(workdir: Path, job: str, step: str) -> Path:
    """Where a step's record lives (job and step names are plain names, checked by the spec)."""
    return workdir / STATE_DIR / job / f"{step}.json"


def read_state(path: Path) -> StepState | None:
    """The record at ``path``, or None when there is none (or it cannot be read)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or doc.get("geovision") != _FORMAT:
        return None
    return StepState(path=path, fingerprint=Fingerprint.from_json(doc.get("fingerprint") or {}),
                     status=str(doc.get("status")), started=str(doc.get("started")),
                     finished=doc.get("finished"), outputs=list(doc.get("outputs") or []))


# ------------------------------------------------------------------------ the decision

#: What the runner does with a step.
SKIP, RESUME, RUN = "skip", "resume", "run"


@dataclass(frozen=True)
class Decision:
    """Whether a step runs, and why.

    Attributes:
        action: ``skip``, ``resume`` (finish an interrupted run of the same fingerprint) or
            ``run`` (from the start, replacing the outputs).
        reason: one phrase for the report.
        changes: what changed since the outputs were made, one phrase each.
    """

    action: str
    reason: str
    changes: tuple[str, ...] = ()


def decide(stored: StepState | None, now: Fingerprint, complete: bool, *,
           causes: Mapping[str, str] | None = None) -> Decision:
    """Skip a step only when its outputs are complete and were made from ``now``.

    Args:
        stored: the step's record, or None.
        now: the fingerprint of the step's options and inputs now.
        complete: the stage says the outputs are complete.
        causes: ``{input as shown: step name}`` for inputs that a step of this run made
            again, named in the reason.

    Returns:
        The decision and its reason.
    """
    if stored is None:
        reason = ("outputs exist but hold no record of what they were made from" if complete
                  else "not run before")
        return Decision(RUN, reason)
    changes = differences(stored.fingerprint, now)
    if changes:
        named = [Change(c.what, c.key, c.old, c.new, (causes or {}).get(c.key))
                 if c.what == "input" else c for c in changes]
        return Decision(RUN, summarize(named), tuple(c.describe() for c in named))
    if stored.status == "complete" and complete:
        return Decision(SKIP, "complete, made with the same options and inputs")
    if stored.status == "complete":
        return Decision(RESUME, "outputs incomplete or removed since; same options and inputs")
    return Decision(RESUME, "an earlier run stopped before the end; finishing it (same "
                            "options and inputs)")
