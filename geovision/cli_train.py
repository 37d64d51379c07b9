"""`geovision train` and `geovision evaluate` commands (registered on the group in cli.py)."""

from __future__ import annotations
