"""``python -m marketfeed``."""

import sys

from marketfeed.cli import main

sys.exit(main())
