"""``python -m geovision``."""

import sys

from geovision.cli import main

sys.exit(main())
