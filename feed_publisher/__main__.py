"""``python -m feed_publisher``."""

import sys

from feed_publisher.cli import main

sys.exit(main())
