"""Helpers of the engine tests."""

import numpy as np
import zarr


def split_labels(store, name, split=1):
    g = zarr.open_group(str(store), mode="r")
    keep = np.asarray(g["split"][:]) == split
    return np.asarray(g[name][:])[keep]
