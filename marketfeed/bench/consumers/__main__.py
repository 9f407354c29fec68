"""``python -m marketfeed.bench.consumers``."""

import sys

from marketfeed.bench.consumers.command import main

sys.exit(main())
