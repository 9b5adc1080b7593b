"""What every request handler reaches: the process's one ledger, the configuration, the tokens.

One :class:`DndLedger` serves the whole process. FastAPI runs sync handlers in a
thread pool; the ledger serialises its aggregate writes behind its own lock
(``execute_many``), and its queries read the views through the datastore's
connection pool, so handlers share it without further locking.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dnd_ledger.application import DndLedger
from dnd_ledger.settings import ApiToken, Role, Settings
from dnd_ledger.web.auth import SESSION_COOKIE, AuthError, TokenBook


@dataclass
class WebState:
    ledger: DndLedger
    config: Settings
    tokens: TokenBook
    clock: Callable[[], datetime]
    public_url: str
    dev: bool = False

    @property
    def secure_cookies(self) -> bool:
        return urlsplit(self.public_url).scheme == "https"


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


async def _state(request: Request) -> WebState:
    # Dependencies that never block are async: FastAPI runs a sync dependency in
    # the thread pool, a hop that costs more than the work on the hot path.
    return web_state(request)


State = Annotated[WebState, Depends(_state)]

# Declared for the OpenAPI document (the "Authorize" button at /docs); the
# check itself is ours, so a missing token is a 401 and not FastAPI's 403.
_bearer = HTTPBearer(auto_error=False, description="A token from the [[tokens]] configuration.")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _token(request: Request, state: WebState, session: bool = False) -> ApiToken:
    header = request.headers.get("authorization")
    if session and not header:
        found = state.tokens.from_session(request.cookies.get(SESSION_COOKIE))
        if found is not None:
            return found
    return state.tokens.from_header(header)


def for_location(role: Role, *, session: bool = False) -> Callable[..., Awaitable[ApiToken]]:
    """A dependency: a bearer token with ``role`` for the path's ``location_id``.

    With ``session``, a signed-in browser's session cookie stands in for the header
    (read-only downloads linked from the audit page).
    """

    async def dependency(
        request: Request, location_id: str, state: State, _credentials: Bearer
    ) -> ApiToken:
        token = _token(request, state, session)
        TokenBook.check(token, role, location_id)
        return token

    return dependency


def any_location(role: Role) -> Callable[..., Awaitable[ApiToken]]:
    """A dependency: a bearer token with ``role`` (locations are checked by the handler)."""

    async def dependency(request: Request, state: State, _credentials: Bearer) -> ApiToken:
        token = _token(request, state)
        TokenBook.check(token, role)
        return token

    return dependency


__all__ = ["AuthError", "Bearer", "State", "WebState", "any_location", "for_location", "web_state"]
