"""``python -m http_api``: the HTTP API and dashboard (same flags as ``marketfeed api``); exits
at once when it has stopped (``common.cli.exit_now``), as the services do under ``up``."""

from common.cli import exit_now
from http_api.cli import main

exit_now(main())
