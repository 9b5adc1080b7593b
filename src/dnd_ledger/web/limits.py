"""The door of the HTTP service: what every request meets before any route reads its body.

An ASGI middleware, in this order:

1. A URL under ``/v1/`` whose path or query holds a control character or a
   bidirectional override, whose path is not UTF-8, or whose query repeats a
   parameter is refused (422): ids reach the database only checked, and no part
   of the service can read another value of a parameter than the rest.
2. A bearer-only write (``POST`` to the JSON API) without a known bearer token
   is refused (401) from its headers, before a byte of its body is read.
3. Every body is capped while it is read: ``max_body_bytes`` (1 MB) for the API,
   ``max_webhook_bytes`` (64 KB) for webhooks. A declared ``Content-Length``
   over the cap is refused at once; a body that grows past it as it streams is
   refused when it does (413).
4. Every response under ``/v1/`` carries ``Cache-Control: no-store`` (exports and
   authenticated JSON must not sit in a browser's or a proxy's cache).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dnd_ledger.textcheck import problem
from dnd_ledger.web.auth import AuthError

#: Routes that read a bearer token only (never a cookie), so it can be checked first.
_BEARER_WRITES = re.compile(
    r"/v1/(can-send:batch|locations/[^/]+/"
    r"(contacts(/[^/]+/[^/]+)?|confirmations|reviews/[^/]+/resolution))"
)
_WEBHOOK = re.compile(r"/v1/locations/[^/]+/webhooks/")


def body_limit(path: str, api_limit: int, webhook_limit: int) -> int:
    """The largest body (bytes) accepted on ``path``."""
    return webhook_limit if _WEBHOOK.match(path) else api_limit


def url_problem(scope: Scope) -> str | None:
    """Why the request's path or query cannot be passed on, or None."""
    path: str = scope.get("path", "")
    if (why := problem(path)) is not None:
        return f"the URL path {why}"
    if "\ufffd" in path:  # what the server made of bytes that are not UTF-8
        return "the URL path is not valid UTF-8"
    raw = scope.get("query_string", b"").decode("latin-1")
    query = unquote(raw, errors="replace")
    if (why := problem(query)) is not None:
        return f"the query string {why}"
    # No route takes a list in its query: a repeated parameter is a mistake (or an attempt
    # to have one part of a stack read the first value and another the last), never chosen.
    seen: set[str] = set()
    for key, _ in parse_qsl(raw, keep_blank_values=True):
        if key in seen:
            return f"the query parameter {key[:40]!r} is given more than once"
        seen.add(key)
    return None


class RequestGuard:
    """The checks above, around the FastAPI application ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("path", "").startswith("/v1/"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if (why := url_problem(scope)) is not None:
            await _reply(send, 422, why)
            return
        state = scope["app"].state.web
        if scope.get("method") == "POST" and _BEARER_WRITES.fullmatch(path):
            try:
                state.tokens.from_header(header(scope, b"authorization"))
            except AuthError as e:
                await _reply(send, e.status, e.detail, [(b"www-authenticate", b"Bearer")])
                return
        limit = body_limit(path, state.config.max_body_bytes, state.config.max_webhook_bytes)
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _reply(send, 413, f"the body is over the {limit}-byte limit")
            return
        await self.app(scope, _capped(receive, limit), _no_store(send))


def _capped(receive: Receive, limit: int) -> Receive:
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                # FastAPI passes an HTTPException raised while reading the body through.
                raise HTTPException(413, f"the body is over the {limit}-byte limit")
        return message

    return wrapped


def _no_store(send: Send) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            if not any(name.lower() == b"cache-control" for name, _ in headers):
                headers.append((b"cache-control", b"no-store"))
            message = {**message, "headers": headers}
        await send(message)

    return wrapped


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


async def _reply(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = orjson.dumps({"detail": detail})
    headers: list[Any] = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def batch_within_limit(request: Request) -> None:
    """A dependency of ``can-send:batch``: count the items before any is validated.

    The body is already capped (``max_body_bytes``); counting it here refuses an
    oversized batch (422) without building and validating thousands of items.
    """
    limit: int = request.app.state.web.config.max_batch
    try:
        data = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        return  # FastAPI's own parse reports it (422)
    items = data.get("items") if isinstance(data, dict) else None
    if isinstance(items, list) and len(items) > limit:
        raise HTTPException(422, f"items: {len(items)} checks, over the limit of {limit}")
