"""One log line per request, and the request metrics: an ASGI middleware around the app.

Each line holds the time, method, route *template* (``/v1/locations/{location_id}/...``,
never the raw path, which holds contact ids), status, duration, location, the
bearer token's *name*, and for a refusal the reason the service gave (the
``detail`` of its JSON error: a bad signature, a stale timestamp, a replayed
token, a missing role...). Error details never echo input, so no token, secret,
phone number, email address or message body reaches the log.

``--log-format json`` (the default) writes one JSON object per line, ``text``
the same fields as ``key=value`` pairs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dnd_ledger.web import metrics
from dnd_ledger.web.limits import header

LogFormat = Literal["json", "text"]
LOGGER = logging.getLogger("dnd_ledger.http")
_DETAIL_BYTES = 2048  # of an error body, to find its "detail"
_WEBHOOK_PROVIDERS = ("twilio", "mailgun")
_LOGGED = "dnd_ledger.logged"


def configure(fmt: LogFormat) -> None:
    """Send the request log to stderr, one line per record, as written."""
    if not any(getattr(h, "dnd_ledger", False) for h in LOGGER.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.dnd_ledger = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter("%(message)s"))
        LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False


def line(fields: dict[str, Any], fmt: LogFormat) -> str:
    if fmt == "json":
        return orjson.dumps(fields).decode()
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        if not text or any(ch in text for ch in ' "=\\'):
            text = orjson.dumps(text).decode()
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _reason(status: int, body: bytes) -> str | None:
    if status < 400:
        return None
    try:
        found = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    detail = found.get("detail") if isinstance(found, dict) else None
    return detail[:300] if isinstance(detail, str) else None


class RequestLog:
    """Logs and counts every HTTP request ``app`` answers.

    ``token_name(authorization_header)`` names the caller's bearer token, or None.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token_name: Callable[[str | None], str | None],
        fmt: LogFormat = "json",
        enabled: bool = True,
    ) -> None:
        self.app = app
        self.token_name = token_name
        self.fmt = fmt
        self.enabled = enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _LOGGED in scope:  # (logged by an outer RequestLog)
            await self.app(scope, receive, send)
            return
        scope[_LOGGED] = True
        started = time.perf_counter()
        status = 500
        error_body = bytearray()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and status >= 400:
                room = _DETAIL_BYTES - len(error_body)
                if room > 0:
                    error_body.extend(message.get("body", b"")[:room])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self._done(scope, status, time.perf_counter() - started, bytes(error_body))

    def _done(self, scope: Scope, status: int, seconds: float, error_body: bytes) -> None:
        route = _template(scope)
        method: str = scope.get("method", "")
        metrics.REQUESTS.labels(route, method, str(status)).inc()
        metrics.LATENCY.labels(route, method).observe(seconds)
        if "/webhooks/" in route:
            provider = next((p for p in _WEBHOOK_PROVIDERS if p in route), "other")
            metrics.WEBHOOKS.labels(provider, metrics.webhook_outcome(status)).inc()
        if not self.enabled:
            return
        fields = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "method": method,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "location": scope.get("path_params", {}).get("location_id"),
            "token": self.token_name(header(scope, b"authorization")),
            "reason": _reason(status, error_body),
        }
        LOGGER.info(line(fields, self.fmt))


def _template(scope: Scope) -> str:
    """The matched route's path template; for a mount (the docs' assets), its prefix."""
    route = getattr(scope.get("route"), "path", None)
    if route:
        return str(route)
    mounted = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    if mounted:
        return f"{mounted}/{{path}}"
    if "endpoint" in scope and not scope.get("path_params"):
        return str(scope.get("path", ""))  # a route without parameters: its path is its template
    return "(no route)"
