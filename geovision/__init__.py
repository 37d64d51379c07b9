"""geovision: georeferenced imagery and vector labels to georeferenced predictions."""

__version__ = "0.1.0"
