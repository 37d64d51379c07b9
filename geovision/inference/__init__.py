"""Sliding-window inference over whole scenes: blended rasters, merged detections."""

from geovision.inference.api import InferOptions, infer

__all__ = ["InferOptions", "infer"]
