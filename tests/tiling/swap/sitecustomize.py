"""Opt-in: with GEOVISION_FASTPASS=1, `geovision.tiling.tile` is the one-pass prototype.

Lets the classic tiling tests (including the CLI ones, which start `python -m geovision`) run
against `tiling.fastpass.tile_fast` unchanged:

    GEOVISION_FASTPASS=1 PYTHONPATH=$PWD:tests/tiling/swap \
        pytest -p swap_tile tests/tiling/test_tile.py tests/tiling/test_cli_tile.py
"""

import os

if os.environ.get("GEOVISION_FASTPASS"):
    import geovision.tiling
    from geovision.tiling.fastpass import tile_fast

    geovision.tiling.tile = tile_fast  # type: ignore[assignment]
