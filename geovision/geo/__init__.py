"""Geospatial primitives: rasters, windows and grids, vectors, CRS handling. No torch here."""
