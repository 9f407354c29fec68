"""``python -m http_api``: the HTTP API and dashboard (same flags as ``marketfeed api``)."""

import sys

from http_api.cli import main

sys.exit(main())
