"""``python -m order_flow``: exits at once when it has stopped (``common.cli.exit_now``)."""

from common.cli import exit_now
from order_flow.cli import main

exit_now(main())
