"""``python -m marketfeed.bench.access``."""

import sys

from marketfeed.bench.access.command import main

sys.exit(main())
