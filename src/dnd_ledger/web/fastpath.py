"""The decision routes' fast path: ``GET .../can-send`` and ``POST /v1/can-send:batch``
without FastAPI's per-request machinery.

The API's routes (``web/api.py``) stay the contract and the OpenAPI document. In
front of each, :func:`install` puts a bare ASGI route on the same path that
answers a well-formed request itself: the query or body parsed by dictionary
look-ups, the bearer token from a table, then the ledger's own call (which
passes the freshness check of every decision first). Anything else (a missing
or unknown parameter value, ``as_of``/``known_at``, a body that is not exactly
the documented shape) is handed, untouched, to the FastAPI route behind, so its
errors stay FastAPI's. Errors the ledger or the token check raise go to the
application's exception handlers, as from the FastAPI route: same status, same
body.

Blocking: on SQLite the decision runs on the event loop (a cached freshness
check is one ``PRAGMA data_version`` on the thread's read connection, a miss
one primary-key SELECT, both microseconds); on PostgreSQL each is a network
round trip, so it runs in the thread pool. A batch always runs in the pool.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.routing import Match, Route
from starlette.types import Message, Receive, Scope, Send

from dnd_ledger import textcheck
from dnd_ledger.domain.errors import LedgerError, LedgerUnavailable, UnknownContact
from dnd_ledger.domain.values import Channel, Direction, Mode, Purpose
from dnd_ledger.settings import ApiToken
from dnd_ledger.web import metrics
from dnd_ledger.web.auth import TokenBook
from dnd_ledger.web.bare_asgi import (
    CHANNELS,
    DIRECTIONS,
    JSON_TYPE,
    MODES,
    bearer,
    can_send_query,
    respond,
)
from dnd_ledger.web.front import install_front
from dnd_ledger.web.limits import header
from dnd_ledger.web.state import WebState

CAN_SEND = "/v1/locations/{location_id}/contacts/{contact_id}/can-send"
BATCH = "/v1/can-send:batch"

_ITEM_KEYS = frozenset({"location_id", "contact_id", "channel", "mode", "direction"})
_ID_MAX = 128  # api.Id

_JSON_TEXT = JSON_TYPE.decode()

T = TypeVar("T")

#: One (location, contact, channel, mode, direction, purpose, at) check of a batch.
Check = tuple[str, str, Channel, Mode, Direction, Purpose | None, datetime | None]


def batch_results(state: WebState, token: ApiToken, checks: list[Check]) -> dict[str, Any]:
    """``can-send:batch``'s answer: one freshness check for the call, then each item
    answered in order with its decision or its own error (failing closed item by item)."""
    for loc in sorted({c[0] for c in checks}):
        TokenBook.check(token, "read", loc)
    ledger = state.ledger
    unavailable: LedgerUnavailable | None = None
    try:
        ledger.ensure_current()  # one check, started after the request arrived
    except LedgerUnavailable as e:
        unavailable = e
    results = []
    for location_id, contact_id, channel, mode, direction, purpose, at in checks:
        result: dict[str, Any] = {
            "location_id": location_id,
            "contact_id": contact_id,
            "channel": channel.value,
        }
        bad = textcheck.problem(location_id) or textcheck.problem(contact_id)
        if bad is not None:  # checked before any query: this item fails, not the batch
            result["error"] = {"status": 422, "detail": f"an id {bad}"}
        elif unavailable is not None:
            # Fail closed, item by item: no decision from views that may be stale.
            result["error"] = {"status": 503, "detail": str(unavailable)}
            metrics.decision(channel.value, None)
        else:
            try:
                decision = ledger.rules.can_send(
                    location_id, contact_id, channel, direction=direction, mode=mode,
                    checked=True, purpose=purpose, at=at,
                )  # fmt: skip
                result["decision"] = decision.to_json()
                metrics.decision(channel.value, decision.allowed)
            except UnknownContact as e:
                result["error"] = {"status": 404, "detail": str(e)}
            except LedgerUnavailable as e:  # a read of the views failed for this item
                result["error"] = {"status": 503, "detail": str(e)}
                metrics.decision(channel.value, None)
            except LedgerError as e:
                result["error"] = {"status": 422, "detail": str(e)}
        results.append(result)
    return {"results": results}


def _id(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= _ID_MAX else None


def _checks(data: Any, limit: int) -> list[Check] | None:
    """The items of a body of exactly the documented shape (else None: FastAPI says why)."""
    if not isinstance(data, dict) or data.keys() != {"items"}:
        return None
    items = data["items"]
    if not isinstance(items, list) or not 0 < len(items) <= limit:
        return None
    checks: list[Check] = []
    for item in items:
        if not isinstance(item, dict) or not item.keys() <= _ITEM_KEYS:
            return None
        loc, cid = _id(item.get("location_id")), _id(item.get("contact_id"))
        channel = CHANNELS.get(item.get("channel"))  # type: ignore[arg-type]
        mode = MODES.get(item.get("mode", "automated"))
        direction = DIRECTIONS.get(item.get("direction", "outbound"))
        if loc is None or cid is None or channel is None or mode is None or direction is None:
            return None
        checks.append((loc, cid, channel, mode, direction, None, None))
    return checks


class _Repeated(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _Repeated(key)
        found[key] = value
    return found


_NOT_JSON = object()


def _loads(body: bytes) -> Any:
    """``body`` parsed, or ``_NOT_JSON`` (FastAPI's route says why). A key repeated in one
    object raises ``_Repeated``: parsers keep the last one silently, so ``"channel": "sms",
    "channel": "email"`` would ask about email."""
    try:
        return json.loads(body, object_pairs_hook=_unique)
    except _Repeated:
        raise
    except ValueError:
        return _NOT_JSON


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return again


_DEFERRED = "dnd_ledger.deferred"


class _FastRoute(Route):
    """A route that steps aside for a request it handed on (see :meth:`_Fast.defer`),
    with exactly its methods (Starlette adds HEAD to GET; FastAPI's routes do not)."""

    def __init__(self, path: str, app: _Fast, method: str) -> None:
        super().__init__(path, app, methods=[method], include_in_schema=False)
        self.methods = {method}

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if _DEFERRED in scope:
            return Match.NONE, {}
        match, child = super().matches(scope)
        return match, ({**child, "route": self} if match is Match.FULL else child)


class _Fast(ABC):
    """The ASGI app of one fast route."""

    @abstractmethod
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None: ...

    @staticmethod
    async def defer(scope: Scope, receive: Receive, send: Send) -> None:
        """Route the request again, past the fast routes: to the FastAPI route."""
        await scope["app"].router({**scope, _DEFERRED: True}, receive, send)

    @staticmethod
    async def run(call: Callable[[], T], *, inline: bool) -> T:
        return call() if inline else await run_in_threadpool(call)


class _CanSend(_Fast):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parsed = can_send_query(scope)
        if parsed is None:
            await self.defer(scope, receive, send)
            return
        state: WebState = scope["app"].state.web
        location_id, contact_id = (
            scope["path_params"]["location_id"],
            scope["path_params"]["contact_id"],
        )
        token = bearer(state, scope)
        TokenBook.check(token, "read", location_id)
        channel, mode, direction = parsed

        def decide() -> Any:
            decision = state.ledger.can_send(
                location_id, contact_id, channel, direction=direction, mode=mode
            )
            metrics.decision(channel.value, decision.allowed)
            return decision.to_json()

        inline = state.ledger.db.engine != "postgres"
        await respond(send, await self.run(decide, inline=inline))


class _Batch(_Fast):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state: WebState = scope["app"].state.web
        token = bearer(state, scope)
        TokenBook.check(token, "read")
        body = await _read_body(receive)
        try:
            data = _loads(body)
        except _Repeated as e:
            detail = f"body: the key {e.key[:40]!r} appears twice in one object"
            error = {"loc": ["body"], "msg": detail, "type": "value_error"}
            await respond(send, {"detail": detail, "errors": [error]}, status=422)
            return
        checks = None if data is _NOT_JSON else _checks(data, state.config.max_batch)
        if checks is None or not (header(scope, b"content-type") or "").startswith(_JSON_TEXT):
            await self.defer(scope, _replay(body, receive), send)
            return
        await respond(send, await run_in_threadpool(batch_results, state, token, checks))


def install(app: FastAPI) -> None:
    """Put the fast routes in front of the API's ``can-send`` routes (after the API router
    is included). The FastAPI routes stay: they document the API and answer the rest."""
    fast = [
        _FastRoute(CAN_SEND, _CanSend(), "GET"),
        _FastRoute(BATCH, _Batch(), "POST"),
    ]
    app.router.routes[0:0] = fast
    install_front(app, fast[0])
