"""``python -m order_entry``: exits at once when it has stopped (``common.cli.exit_now``)."""

from common.cli import exit_now
from order_entry.cli import main

exit_now(main())
