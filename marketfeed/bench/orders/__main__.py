"""``python -m marketfeed.bench.orders``."""

import sys

from marketfeed.bench.orders.command import main

sys.exit(main())
