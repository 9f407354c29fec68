"""``python -m order_entry``."""

import sys

from order_entry.cli import main

sys.exit(main())
