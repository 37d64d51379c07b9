"""Sliding-window inference over whole scenes: blended rasters, merged detections."""

from __future__ import annotations

from typing import TYPE_CHECKING

from geovision.lazy import exports

if TYPE_CHECKING:
    from geovision.inference.api import infer
    from geovision.options.infer import InferOptions

__all__ = ["InferOptions", "infer"]
__getattr__ = exports(__name__, {"InferOptions": "geovision.options.infer",
                                 "infer": "geovision.inference.api"})
