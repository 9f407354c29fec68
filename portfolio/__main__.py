"""``python -m portfolio``: exits at once when it has stopped (``common.cli.exit_now``)."""

from common.cli import exit_now
from portfolio.cli import main

exit_now(main())
