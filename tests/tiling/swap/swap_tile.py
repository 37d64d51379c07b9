"""pytest plugin (``-p swap_tile``): the tests' ``tile`` is the one-pass prototype.

See sitecustomize.py beside it; the plugin is imported before the test modules, so their
``from geovision.tiling import tile`` gets ``tile_fast``.
"""

import geovision.tiling
from geovision.tiling.fastpass import tile_fast

geovision.tiling.tile = tile_fast  # type: ignore[assignment]
