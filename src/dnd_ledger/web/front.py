"""Before the middleware: a ``GET .../can-send`` that succeeds, answered at once.

FastAPI's middleware stack (error handling, telemetry, body limits, the
:class:`~dnd_ledger.web.limits.RequestGuard`, exception handling, routing) costs
more per request than a decision. :func:`install_front` puts one ASGI callable in
front of it that answers a well-formed, authorised ``can-send`` itself: the same
checks as the guard (the URL's characters), the same parsing and token table as
the fast route, the same ledger call (freshness check first), the same JSON and
``Cache-Control: no-store``. Anything else, and any request whose answer is not a
decision (an unknown contact, a bad token...), goes through the whole stack as
before, so every error is rendered by it. Views that cannot be shown current are
answered here, by the application's own handler for LedgerUnavailable (503), so
a failed freshness check is never waited for twice.

The request log (:mod:`dnd_ledger.web.request_log`) wraps the front, so the requests
it answers are logged and counted like the others. It steps aside when the
application has other middleware, which then sees every request.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dnd_ledger.domain.errors import LedgerUnavailable
from dnd_ledger.web import metrics
from dnd_ledger.web.auth import AuthError, TokenBook
from dnd_ledger.web.bare_asgi import bearer, can_send_query, respond
from dnd_ledger.web.limits import RequestGuard, _no_store, url_problem
from dnd_ledger.web.request_log import RequestLog
from dnd_ledger.web.state import WebState

_NO_STORE = (b"cache-control", b"no-store")


def _plain(scope: Scope) -> bool:
    """A path and query of printable ASCII without escapes: url_problem's character
    checks find nothing in them (they refuse controls and non-ASCII), so skip it. Its
    other check, a repeated parameter, is ``can_send_query``'s too: such a request goes on to
    the stack, whose guard refuses it."""
    path: str = scope["path"]
    query: bytes = scope.get("query_string", b"")
    return (
        path.isascii() and path.isprintable()
        and query.isascii() and b"%" not in query and query.decode().isprintable()
    )  # fmt: skip


class Front:
    def __init__(self, app: FastAPI, stack: ASGIApp, route: Route) -> None:
        self.app = app
        self.stack = stack
        self.route = route  # the fast can-send route: its template names the request
        self.inline = app.state.web.ledger.db.engine != "postgres"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            parts = scope["path"].split("/")
            ours = (
                len(parts) == 7 and parts[6] == "can-send" and parts[1] == "v1"
                and parts[2] == "locations" and parts[4] == "contacts" and parts[3] and parts[5]
            )  # fmt: skip
            if ours and await self.answer(scope, receive, send, parts[3], parts[5]):
                return
        await self.stack(scope, receive, send)

    async def answer(
        self, scope: Scope, receive: Receive, send: Send, location_id: str, contact_id: str
    ) -> bool:
        """True once answered; False hands the request to the stack, untouched."""
        parsed = can_send_query(scope)
        if parsed is None or (not _plain(scope) and url_problem(scope) is not None):
            return False
        state: WebState = self.app.state.web
        try:
            token = bearer(state, scope)
            TokenBook.check(token, "read", location_id)
        except AuthError:
            return False
        channel, mode, direction = parsed
        scope["route"] = self.route
        scope["path_params"] = {"location_id": location_id, "contact_id": contact_id}

        def decide() -> Any:
            try:
                decision = state.ledger.can_send(
                    location_id, contact_id, channel, direction=direction, mode=mode
                )
            except LedgerUnavailable as e:
                return e  # counted by the application's handler, which renders it
            except Exception:  # an unknown contact, say: the stack renders it
                return None
            metrics.decision(channel.value, decision.allowed)
            return decision.to_json()

        found = decide() if self.inline else await run_in_threadpool(decide)
        if found is None:
            return False
        if isinstance(found, LedgerUnavailable):
            handler: Any = self.app.exception_handlers[LedgerUnavailable]
            response: Any = handler(Request(scope, receive), found)  # the sync handler
            await response(scope, receive, _no_store(send))
            return True
        await respond(send, found, _NO_STORE)
        return True


def install_front(app: FastAPI, route: Route) -> None:
    """Wrap the middleware stack when it is built (at the first request)."""
    build = app.build_middleware_stack

    def build_with_front() -> ASGIApp:
        stack = build()
        kinds: list[Any] = [m.cls for m in app.user_middleware]
        if any(kind not in (RequestGuard, RequestLog) for kind in kinds):
            return stack  # other middleware wants to see every request
        front = Front(app, stack, route)
        log: Any = next((m for m in app.user_middleware if m.cls is RequestLog), None)  # type: ignore[comparison-overlap]
        # The log around the front too; inside the stack it then lets requests pass.
        return front if log is None else RequestLog(front, *log.args, **log.kwargs)

    setattr(app, "build_middleware_stack", build_with_front)  # noqa: B010
