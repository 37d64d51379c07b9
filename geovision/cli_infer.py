"""`geovision infer` command (registered on the group in cli.py)."""

from __future__ import annotations
