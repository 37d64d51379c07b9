"""What geovision owns on disk, and the only way it deletes anything.

Every output geovision writes carries a mark, a small JSON file ``.geovision-owned``:

- in a folder that geovision created (a tile store, a training session, a demo or job
  workdir, an evaluation folder, an inference scratch folder), the mark says so
  (``folder: true``) and lists the top-level ``names`` the stage may write there (exact
  names or ``fnmatch`` patterns, declared when the folder is claimed, before anything is
  written, so a crash never leaves an unlisted entry);
- in a user's folder that geovision writes single files into (``predictions/*.class.tif``,
  ``generate``'s ``scene.tif``, an export beside a bundle), the mark (``folder: false``) is
  a manifest of those ``files``, each with the size and modification time it had when
  geovision finished it.

:func:`remove_owned` deletes only what carries the mark and refuses everything else with an
:class:`~geovision.errors.OutputError` naming the path and the first foreign entry: a folder
that holds a user's file, an input of the very command, the current folder or one of its
parents, a symbolic link, a file geovision did not write or that changed since. Only
top-level entries of a folder are checked: an entry a stage declared (``image/`` of a tile
store) is the stage's whole.

:func:`safe_name` keeps names that become paths (a session ``name``) inside their parent;
:func:`check_writable` says before any work starts that an output cannot be written.
"""

from __future__ import annotations

import datetime as dt
import errno
import fcntl
import fnmatch
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from geovision.errors import InputError, OutputError, OutputInUseError

#: File name of the mark, in every folder that holds something geovision wrote.
MARK_NAME = ".geovision-owned"
#: Suffix of the lock file beside an output (see ``geovision.locks``).
LOCK_SUFFIX = ".geovision-lock"
_FORMAT = {"format": "owned", "version": 1}

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class FileRecord:
    """A file geovision finished writing: its size and modification time then."""

    size: int
    mtime_ns: int
    command: str = ""
    written: str = ""


@dataclass(frozen=True)
class Mark:
    """The content of a ``.geovision-owned`` file.

    Attributes:
        kind: what wrote it: ``tiles``, ``session``, ``predictions``, ``evaluation``,
            ``demo``, ``job``, ``sample``, ``export``, ``scratch`` (free text).
        folder: geovision created the folder (True) or writes files into a user's folder.
        names: top-level names (or ``fnmatch`` patterns) the stage may write in its folder.
        files: single files geovision wrote here, by name.
        created: when the mark was first written (ISO 8601, UTC).
        command: the command line that first wrote it.
    """

    kind: str
    folder: bool
    names: tuple[str, ...] = ()
    files: Mapping[str, FileRecord] = field(default_factory=dict)
    created: str = ""
    command: str = ""

    def to_json(self) -> dict[str, Any]:
        """The mark as written on disk."""
        return {"geovision": _FORMAT, "kind": self.kind, "folder": self.folder,
                "names": list(self.names),
                "files": {k: vars(v) for k, v in sorted(self.files.items())},
                "created": self.created, "command": self.command}


def command_line(argv: list[str] | None = None) -> str:
    """The running command as a user would type it (``geovision tile a.tif ...``)."""
    args = list(sys.argv if argv is None else argv)
    if not args:
        return "python"
    head = os.path.basename(args[0])
    if head in ("geovision", "__main__.py", "-m") or head.startswith("geovision"):
        head = "geovision"
    text = " ".join([head, *args[1:]])
    return text if len(text) <= 200 else text[:197] + "..."


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _display(path: PathLike) -> str:
    """A path as the user gave it; folders end with a slash."""
    text = os.fspath(path)
    return text if text.endswith("/") or not os.path.isdir(text) else text + "/"


def read_mark(folder: PathLike) -> Mark | None:
    """The mark of ``folder``, or None if it has none (or an unreadable one)."""
    path = Path(folder) / MARK_NAME
    try:
        raw = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("geovision", {}).get("format") != "owned":
        return None
    try:
        files = {str(k): FileRecord(**v) for k, v in (raw.get("files") or {}).items()}
        return Mark(kind=str(raw.get("kind", "")), folder=bool(raw.get("folder")),
                    names=tuple(str(n) for n in raw.get("names") or ()), files=files,
                    created=str(raw.get("created", "")), command=str(raw.get("command", "")))
    except TypeError:
        return None


@contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on a folder while its mark is read and rewritten."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write_mark(folder: Path, mark: Mark) -> None:
    tmp = folder / f"{MARK_NAME}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(mark.to_json(), indent=1) + "\n")
    os.replace(tmp, folder / MARK_NAME)


def claim_folder(path: PathLike, kind: str, *, names: Iterable[str] = (),
                 command: str | None = None, adopt: bool = False,
                 option: str = "--output") -> Path:
    """Create ``path`` as a folder geovision owns, or take up one it owns already.

    Call it before writing anything into the folder: the mark lists ``names``, the top-level
    entries the stage may write, so that :func:`remove_owned` later deletes the folder only
    while it holds nothing else.

    Args:
        path: the folder (created with its parents if missing).
        kind: what owns it (``tiles``, ``session``, ...); a folder owned by another kind is
            refused.
        names: top-level names or ``fnmatch`` patterns the stage writes.
        command: the command line to record (default: this process's).
        adopt: also take up an existing folder without a mark whose every entry matches
            ``names`` (outputs written before marks existed; the caller checks its signature).
        option: the option that named the path, for messages.

    Returns:
        The folder.

    Raises:
        OutputError: the path is a file or a link, the folder holds entries that are not
            geovision's, it is owned by another kind of output, or it cannot be created.
    """
    folder = Path(path)
    names = tuple(names)
    if folder.is_symlink():
        raise OutputError(f"{folder}: a symbolic link (to {os.readlink(folder)}); give the "
                          f"real folder or another {option}")
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: a file, where a folder is needed; choose another "
                          f"{option}")
    if not folder.exists():
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            pass
        except OSError as exc:
            from geovision.failures import os_error

            raise os_error(exc, path=folder, option=option) from exc
    with _folder_locked(folder):
        mark = read_mark(folder)
        if mark is not None and mark.folder:
            if mark.kind != kind:
                raise OutputError(f"{_display(folder)}: holds a geovision {mark.kind} output, "
                                  f"not {kind}; choose another {option}")
            merged = mark.names + tuple(n for n in names if n not in mark.names)
            if merged != mark.names:
                _write_mark(folder, Mark(kind, True, merged, mark.files, mark.created,
                                         mark.command))
            return folder
        entries = [e for e in _entries(folder) if not _is_internal(e.name)]
        recorded = dict(mark.files) if mark is not None else {}
        foreign = [e.name for e in entries
                   if e.name not in recorded and not _is_lock_name(e.name)
                   and not (adopt and not e.is_symlink() and _matches(e.name, names))]
        if foreign:
            raise OutputError(f"{_display(folder)}: holds {foreign[0]}, which geovision did "
                              f"not write; give an empty or new folder with {option}")
        _write_mark(folder, Mark(kind, True, names, recorded, _now(),
                                 command or command_line()))
    return folder


def record_files(folder: PathLike, *names: str, kind: str = "files",
                 command: str | None = None) -> None:
    """Record files geovision finished writing in ``folder`` (call it once each is complete).

    A folder without a mark gets a manifest (``folder: false``): it stays the user's, and
    only the recorded files, unchanged since, may be replaced.

    Raises:
        FileNotFoundError: a named file does not exist (a bug of the caller).
    """
    base = Path(folder)
    with _folder_locked(base):
        mark = read_mark(base) or Mark(kind, False, created=_now(),
                                       command=command or command_line())
        files = dict(mark.files)
        for name in names:
            st = os.stat(base / name, follow_symlinks=False)
            files[name] = FileRecord(st.st_size, st.st_mtime_ns, command or command_line(),
                                     _now())
        _write_mark(base, Mark(mark.kind, mark.folder, mark.names, files, mark.created,
                               mark.command))


def _forget_files(folder: Path, names: Iterable[str]) -> None:
    with _folder_locked(folder):
        mark = read_mark(folder)
        if mark is None:
            return
        files = {k: v for k, v in mark.files.items() if k not in set(names)}
        if not files and not mark.folder:
            (folder / MARK_NAME).unlink(missing_ok=True)
        else:
            _write_mark(folder, Mark(mark.kind, mark.folder, mark.names, files,
                                     mark.created, mark.command))


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as it:
        return sorted(it, key=lambda e: e.name)


def _matches(name: str, patterns: Iterable[str]) -> bool:
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def _is_lock_name(name: str) -> bool:
    return name.startswith(".") and name.endswith(LOCK_SUFFIX)


def _is_internal(name: str) -> bool:
    """The mark, its temporary copy, or a writability probe left by a crash."""
    return (name == MARK_NAME or name.startswith(f"{MARK_NAME}.tmp-")
            or name.startswith(".geovision-probe-"))


def _lock_busy(path: Path) -> bool:
    """Whether another process holds the lock file ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN)
    finally:
        os.close(fd)
    return False


def _file_verdict(path: Path, mark: Mark | None) -> str | None:
    """None if the file is geovision's, else why not."""
    if mark is None:
        return "not written by geovision"
    if mark.folder and _matches(path.name, mark.names):
        return None
    rec = mark.files.get(path.name)
    if rec is None:
        return "not written by geovision"
    st = os.stat(path, follow_symlinks=False)
    if (st.st_size, st.st_mtime_ns) != (rec.size, rec.mtime_ns):
        return "changed since geovision wrote it"
    return None


def _foreign_in(folder: Path, mark: Mark) -> tuple[str, str] | None:
    """The first entry of an owned folder that is not geovision's, and why; None if none."""
    for entry in _entries(folder):
        name, path = entry.name, folder / entry.name
        if _is_internal(name):
            continue
        if _is_lock_name(name):
            if _lock_busy(path):
                return name, "a lock held by a running geovision command"
            continue
        if entry.is_symlink():
            return name, "a symbolic link geovision did not make"
        if entry.is_dir(follow_symlinks=False):
            if _matches(name, mark.names):
                continue
            sub = read_mark(path)
            if sub is not None and sub.folder:
                inner = _foreign_in(path, sub)
                if inner is None:
                    continue
                return f"{name}/{inner[0]}", inner[1]
            return name, "not written by geovision"
        verdict = _file_verdict(path, mark)
        if verdict is not None:
            return name, verdict
    return None


def local_file(path: PathLike) -> Path | None:
    """The local file behind a path as GDAL reads it, to stat, protect or fingerprint.

    ``/vsizip/data/a.zip/x.tif`` -> ``data/a.zip`` (the nearest existing part); an ordinary
    path -> itself; a URL, a network or in-memory GDAL path (``/vsicurl/``, ``/vsis3/``,
    ``/vsimem/``, ...) -> None.
    """
    text = os.fspath(path)
    if text.startswith("/vsi"):
        rest = text.split("/", 2)[2] if text.count("/") >= 2 else ""
        if "://" in rest or text.startswith(("/vsicurl", "/vsis3", "/vsigs", "/vsiaz",
                                               "/vsioss", "/vsiswift", "/vsihdfs",
                                               "/vsiwebhdfs", "/vsimem")):
            return None
        candidate = Path(rest.replace("{", "").replace("}", ""))
        while not candidate.exists() and candidate != candidate.parent:
            candidate = candidate.parent
        return candidate if str(candidate) not in ("", ".", "/") else None
    if "://" in text:
        return None
    return Path(text)


def _absolute(path: Path) -> Path:
    """Absolute path with ``..`` resolved through real folders (the link itself kept)."""
    parent = path.parent.resolve()
    name = path.name
    if name in ("", ".", ".."):
        return path.resolve()
    return parent / name


def _check_placement(path: Path, inputs: Iterable[PathLike], option: str) -> None:
    """Refuse outputs that are links, the current folder or its parents, or hold inputs."""
    if path.is_symlink():
        raise OutputError(f"{path}: a symbolic link (to {os.readlink(path)}); geovision never "
                          f"deletes through a link; give the real path or another {option}")
    where = _absolute(path)
    cwd = Path.cwd().resolve()
    if where == cwd or where in cwd.parents:
        what = "the current folder" if where == cwd else "a parent of the current folder"
        raise OutputError(f"{_display(path)}: {what}; geovision never replaces it; choose "
                          f"another {option}")
    for item in inputs:
        local = local_file(item)
        if local is None:
            continue
        src = local.resolve()
        if src == where or where in src.parents:
            what = "is" if src == where else "holds"
            raise OutputError(f"{_display(path)}: {what} {item}, an input of this command; "
                              f"choose another {option}")


def check_removable(path: PathLike, *, inputs: Iterable[PathLike] = (),
                    kind: Literal["dir", "file"] | None = None,
                    option: str = "--output") -> None:
    """Check that :func:`remove_owned` may delete ``path``, without deleting anything.

    Call it before any work starts, with the command's inputs, when ``--overwrite`` is given.

    Args:
        path: the output that ``--overwrite`` would replace.
        inputs: the inputs of the command.
        kind: what the output is (``dir`` or ``file``); an existing path of the other kind
            is refused, whoever wrote it.
        option: the option that named the path, for messages.

    Raises:
        OutputError: ``path`` is or holds something that is not geovision's (the message
            names it), an input, the current folder or a parent of it, or a link.
        OutputInUseError: a running geovision command holds a lock inside it.
    """
    p = Path(path)
    if not os.path.lexists(p):
        return
    _check_placement(p, inputs, option)
    if kind == "dir" and not p.is_dir():
        raise OutputError(f"{p}: a file, where a folder is needed; nothing was deleted; "
                          f"choose another {option}")
    if kind == "file" and p.is_dir():
        raise OutputError(f"{p}/: a folder, where a file is needed; nothing was deleted; "
                          f"choose another {option}")
    if not p.is_dir():
        verdict = _file_verdict(p, read_mark(p.parent))
        if verdict is not None:
            raise OutputError(f"{p}: {verdict}; nothing was deleted; choose another {option} "
                              "or move it away")
        _probe(p.parent, option)
        return
    mark = read_mark(p)
    if mark is None:
        if any(True for _ in _entries(p)):
            raise OutputError(f"{_display(p)}: holds {_entries(p)[0].name} (not written by "
                              f"geovision); nothing was deleted; choose another {option} or "
                              "move it away")
        _probe(p.parent, option)
        return
    # a user's folder with a manifest: only its recorded files may go, the folder stays
    found = _foreign_in(p, mark if mark.folder else Mark(mark.kind, True, (), mark.files))
    if found is not None:
        name, why = found
        cls = OutputInUseError if why.startswith("a lock held") else OutputError
        raise cls(f"{_display(p)}: holds {name} ({why}); nothing was deleted; choose "
                  f"another {option} or move it away")
    _probe(p, option)
    if mark.folder:
        _probe(p.parent, option)


def remove_owned(path: PathLike, *, inputs: Iterable[PathLike] = (),
                 kind: Literal["dir", "file"] | None = None,
                 option: str = "--output") -> bool:
    """Delete ``path`` if, and only if, it is geovision's (see the module's rules).

    A folder geovision created goes with everything in it; in a user's folder that holds a
    manifest, only the recorded files go and the folder stays; a recorded file goes and
    leaves its manifest entry. Nothing is deleted unless everything to delete passed the
    checks of :func:`check_removable`.

    Args:
        path: the output to remove (a folder or a file); a missing path is nothing to do.
        inputs: the inputs of the command, never removed nor any folder holding them.
        kind: what the output is (``dir`` or ``file``); the other kind is refused.
        option: the option that named the path, for messages.

    Returns:
        Whether anything was deleted.

    Raises:
        OutputError: see :func:`check_removable`.
    """
    p = Path(path)
    if not os.path.lexists(p):
        return False
    check_removable(p, inputs=inputs, kind=kind, option=option)
    if not p.is_dir():
        p.unlink()
        _forget_files(p.parent, [p.name])
        return True
    mark = read_mark(p)
    if mark is None:  # empty, unmarked
        p.rmdir()
        return True
    if not mark.folder:
        names = [n for n in mark.files if (p / n).exists()]
        for n in names:
            (p / n).unlink()
        _forget_files(p, mark.files)
        return bool(names)
    _remove_owned_folder(p)
    return True


def _remove_owned_folder(folder: Path) -> None:
    """Delete a checked owned folder entry by entry, the mark last, then the folder."""
    for entry in _entries(folder):
        if entry.name == MARK_NAME:
            continue
        path = folder / entry.name
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    (folder / MARK_NAME).unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise
        left = ", ".join(e.name for e in _entries(folder))
        raise OutputError(f"{_display(folder)}: {left} appeared while geovision removed its "
                          "own files; left in place") from None


def is_owned(path: PathLike) -> bool:
    """Whether :func:`remove_owned` would delete ``path`` (inputs and cwd aside)."""
    p = Path(path)
    if not os.path.lexists(p) or p.is_symlink():
        return False
    if p.is_dir():
        mark = read_mark(p)
        return mark is not None and mark.folder and _foreign_in(p, mark) is None
    return _file_verdict(p, read_mark(p.parent)) is None


def safe_name(name: object, parent: PathLike, *, option: str = "name",
              what: str = "folder") -> Path:
    """``parent / name``, for a name that must stay a plain entry strictly inside ``parent``.

    Args:
        name: a user-given name (a session ``name``, a job step's output).
        parent: the folder it lives in (need not exist).
        option: the option or config key that gave it, for the message.
        what: ``folder`` or ``file``, for the message.

    Returns:
        The path inside ``parent``.

    Raises:
        InputError: the name is not a string, is empty, ``.`` or ``..``, absolute, holds a
            path separator or a control character, or resolves outside ``parent`` (through a
            link); the message names the option, e.g. ``name: '../../escape' must be a plain
            folder name inside runs/``.
    """
    where = os.fspath(parent).rstrip("/") + "/"
    plain = f"{option}: {name!r} must be a plain {what} name inside {where}"
    if not isinstance(name, str):
        raise InputError(plain)
    seps = {"/", "\\", *(s for s in (os.sep, os.altsep) if s)}
    if (name in ("", ".", "..") or name.strip() != name or any(s in name for s in seps)
            or any(ord(c) < 32 or ord(c) == 127 for c in name)):
        raise InputError(plain)
    path = Path(parent) / name
    base = Path(parent).resolve()
    if path.resolve().parent != base:
        raise InputError(f"{plain}; it resolves to {path.resolve()}")
    return path


def safe_subpath(value: object, parent: PathLike, *, option: str = "output") -> Path:
    """``parent / value``, for a relative path that must stay strictly inside ``parent``.

    Like :func:`safe_name`, for values that may hold several parts (a job step's
    ``output: predictions/seg`` below the job's workdir).

    Raises:
        InputError: the value is not a string, is empty or ``.``, absolute, has a ``..``
            part or a control character, or resolves outside ``parent`` (through a link):
            ``steps[3].output: '../x' must be a relative path inside work/``.
    """
    where = os.fspath(parent).rstrip("/") + "/"
    plain = f"{option}: {value!r} must be a relative path inside {where}"
    if not isinstance(value, str) or not value.strip("/") or value.strip() != value:
        raise InputError(plain)
    parts = Path(value).parts
    if (not parts or os.path.isabs(value) or "\\" in value or ".." in parts
            or any(ord(c) < 32 or ord(c) == 127 for c in value)):
        raise InputError(plain)
    path = Path(parent) / value
    base = Path(parent).resolve()
    if base not in path.resolve().parents:
        raise InputError(f"{plain}; it resolves to {path.resolve()}")
    return path


def check_writable(path: PathLike, *, kind: Literal["dir", "file"] = "dir",
                   option: str = "--output") -> None:
    """Check, before any work, that ``path`` can be written as a ``kind``.

    The nearest existing folder is probed by creating (and removing) a hidden temporary
    file in it, which also catches read-only mounts and holds for root.

    Raises:
        OutputError: ``path`` is a file where a folder is needed or the reverse, a part of
            it is a file, or its folder is not writable (``out/: not writable (permission
            denied); choose another --output``).
    """
    p = Path(path)
    if p.exists():
        if kind == "dir" and not p.is_dir():
            raise OutputError(f"{p}: a file, where a folder is needed; choose another "
                              f"{option}")
        if kind == "file" and p.is_dir():
            raise OutputError(f"{p}/: a folder, where a file is needed; choose another "
                              f"{option}")
        folder = p if kind == "dir" else (p.parent if str(p.parent) else Path("."))
    else:
        folder = p.parent
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise OutputError(f"{p}: {folder} is a file, where a folder is needed; choose "
                              f"another {option}")
    _probe(folder, option)


def _probe(folder: Path, option: str) -> None:
    """Create and remove a hidden file in ``folder``, or say why it cannot be written."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".geovision-probe-", dir=folder)
    except OSError as exc:
        reason = {errno.EROFS: "read-only file system", errno.ENOSPC: "no space left",
                  errno.EDQUOT: "disk quota exceeded", errno.EACCES: "permission denied",
                  errno.EPERM: "permission denied"}.get(exc.errno or 0,
                                                        (exc.strerror or str(exc)).lower())
        shown = os.fspath(folder).rstrip("/") or "."
        raise OutputError(f"{shown}/: not writable ({reason}); choose another {option}"
                          ) from None
    os.close(fd)
    os.unlink(probe)
