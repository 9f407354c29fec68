"""``python -m marketfeed.bench.soak``."""

import sys

from marketfeed.bench.soak.command import main

sys.exit(main())
