"""The one error hierarchy of geovision.

Every error that a user can fix by changing their input derives from :class:`GeovisionError`;
the command line prints such errors as one line and exits with code 2. Anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations


class GeovisionError(Exception):
    """Base class of every error geovision raises on purpose."""


class InputError(GeovisionError, ValueError):
    """An input file, option or value is wrong; the message says which and what to do."""


class InputFileError(GeovisionError, OSError):
    """An input file is missing, unreadable or truncated."""


class OutputExistsError(GeovisionError, FileExistsError):
    """The output exists already and neither ``overwrite`` nor ``resume`` was asked for."""


class ConfigError(GeovisionError, ValueError):
    """A configuration file or override is invalid."""


class ModelFileError(GeovisionError, ValueError):
    """A model file is not a valid geovision model bundle."""


class OutputError(GeovisionError, OSError):
    """An output cannot be written, replaced or removed.

    The message names the path and why: it holds files geovision did not write (never
    deleted), it is an input of the command, the current folder or one of its parents, a
    symbolic link, a file where a folder is needed (or the reverse), not writable, or full.
    """


class OutputInUseError(OutputError):
    """Another run holds the lock on the output; the message names its process."""
