"""Sliding-window inference over whole scenes: blended rasters, merged detections."""

import os

# Reading and writing threads share the cores with torch's OpenMP threads; spinning OpenMP
# threads then wait a whole time slice at every barrier. Sleeping instead keeps the model at
# full speed while the other stages run. Effective when set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from geovision.inference.api import InferOptions, infer

__all__ = ["InferOptions", "infer"]
