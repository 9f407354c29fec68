"""Who may use the API: the holder of its token (``--api-token``), no one else.

The API places orders and shows positions, so on a machine shared with other users a loopback
port is not a boundary: any local user can reach it. With a token, every request must carry it,
either as ``Authorization: Bearer <token>`` (programs, ``curl``) or as the session cookie a browser
gets from ``GET /login?token=<token>`` (the dashboard: ``marketfeed dashboard`` prints that link
for the running ``up``). The cookie is HttpOnly and SameSite=Strict: another site's page cannot
send it along (no cross-site request forgery), and script on the page cannot read it.

Open without a token: ``/metrics`` (Prometheus scrapes it; counts only), ``/v1/health`` (whether
it is up), ``/static/`` (the dashboard's code, no data) and ``/login`` itself. Tokens are
compared in constant time. A pure ASGI middleware, so that the quote stream (SSE) passes
through unbuffered.
"""

from __future__ import annotations

import hmac
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qs

from starlette.responses import RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from http_api.errors import Reason, answer

COOKIE = "marketfeed_api"
OPEN_PATHS = frozenset({"/metrics", "/v1/health", "/login"})
OPEN_PREFIXES = ("/static/",)
LOGIN = "/login"
HOW = (
    "this API wants its token: `Authorization: Bearer <token>`, or open /login?token=<token> "
    "in a browser (`marketfeed dashboard` prints that link for the running up)"
)


class TokenGate:
    """ASGI middleware: a request without the token gets 401, with one line saying how."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path == LOGIN:
            await self._login(scope, receive, send)
        elif path in OPEN_PATHS or path.startswith(OPEN_PREFIXES) or self._holds_token(scope):
            await self.app(scope, receive, send)
        else:
            await _refused(scope, receive, send)

    def _valid(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self._token)

    def _holds_token(self, scope: Scope) -> bool:
        headers = dict(scope["headers"])
        scheme, _, credentials = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
        if scheme.lower() == "bearer" and self._valid(credentials.strip()):
            return True
        return self._valid(_cookie(headers.get(b"cookie", b"").decode("latin-1")))

    async def _login(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if not self._valid((query.get("token") or [None])[0]):
            await _refused(scope, receive, send)
            return
        # 303: the browser then GETs the dashboard, and the token leaves the address bar.
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE, self._token.decode(), httponly=True, samesite="strict", path="/"
        )
        await response(scope, receive, send)


def _cookie(header: str) -> str | None:
    try:
        morsel = SimpleCookie(header).get(COOKIE)
    except CookieError:
        return None
    return None if morsel is None else morsel.value


async def _refused(scope: Scope, receive: Receive, send: Send) -> None:
    response = answer(401, Reason.UNAUTHORIZED, HOW, **{"WWW-Authenticate": "Bearer"})
    await response(scope, receive, send)
