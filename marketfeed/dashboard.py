"""``marketfeed dashboard``: the login link of the running ``up``'s dashboard.

The API of ``up`` wants the run's token (``http_api.auth``): this prints the link that gives a
browser its session cookie, ``http://127.0.0.1:PORT/login?token=...``, and with ``--open`` opens
it in the default browser. It prints a credential on purpose, to whoever runs it: only the user
who can read up.json (0600) can.
"""

from __future__ import annotations

import argparse
import webbrowser
from dataclasses import dataclass
from urllib.parse import quote

from common.cli import EXIT_OK
from common.config import add_arguments, build, setting
from common.errors import StateNotFoundError
from marketfeed.state import load_state


@dataclass(frozen=True, slots=True, kw_only=True)
class DashboardSettings:
    open: bool = setting(False, help="open the link in the default browser too")


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser, DashboardSettings)


def login_link() -> str:
    state = load_state(hint="start `marketfeed up` first")
    if not state.api:
        raise StateNotFoundError("the running `marketfeed up` has no API")
    if not state.api_token:
        return state.api  # an API without a token is open
    return f"{state.api}login?token={quote(state.api_token, safe='')}"


async def run(args: argparse.Namespace) -> int:
    settings = build(DashboardSettings, args)
    link = login_link()
    print(link)
    if settings.open:
        webbrowser.open(link)
    return EXIT_OK
