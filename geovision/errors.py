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
