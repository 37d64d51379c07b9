"""``python -m geovision``."""

import sys

from geovision.cli.main import main

sys.exit(main())
