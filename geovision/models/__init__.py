"""Architecture registry and the model bundle; everything inference needs, nothing of training."""

from __future__ import annotations

from geovision.models.bundle import Bundle, format_bundle_summary, load_bundle, save_bundle
from geovision.models.registry import TASKS, architectures, build_model

__all__ = [
    "TASKS",
    "Bundle",
    "architectures",
    "build_model",
    "format_bundle_summary",
    "load_bundle",
    "save_bundle",
]
