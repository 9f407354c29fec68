"""``python -m order_flow``."""

import sys

from order_flow.cli import main

sys.exit(main())
