"""What the two bare-ASGI decision paths share: the fast routes (:mod:`.fastpath`)
and the front before the middleware (:mod:`.front`).

The ``can-send`` query parsed by dictionary look-ups, the request's bearer token
from the token table, and a JSON response sent without Starlette's Response.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.types import Scope, Send

from dnd_ledger.domain.values import Channel, Direction, Mode
from dnd_ledger.settings import ApiToken
from dnd_ledger.web.limits import header
from dnd_ledger.web.state import WebState

CHANNELS = {c.value: c for c in Channel}
MODES = {m.value: m for m in Mode}
DIRECTIONS = {d.value: d for d in Direction}
JSON_TYPE = b"application/json"


def can_send_query(scope: Scope) -> tuple[Channel, Mode, Direction] | None:
    """channel, mode and direction of a query holding only those, each once and valid."""
    text = scope.get("query_string", b"").decode("latin-1")
    if "%" in text or "+" in text:
        pairs = parse_qsl(text, keep_blank_values=True)
    else:  # nothing to unescape: parse_qsl's split, without its decoding
        pairs = [(k, v) for k, _, v in (p.partition("=") for p in text.split("&") if p)]
    found: dict[str, str] = {}
    for key, value in pairs:
        if key in found:
            return None
        found[key] = value
    channel = CHANNELS.get(found.pop("channel", ""))
    mode = MODES.get(found.pop("mode", "automated"))
    direction = DIRECTIONS.get(found.pop("direction", "outbound"))
    if found or channel is None or mode is None or direction is None:
        return None
    return channel, mode, direction


def bearer(state: WebState, scope: Scope) -> ApiToken:
    """The request's bearer token (AuthError 401 as ever)."""
    return state.tokens.from_header(header(scope, b"authorization"))


async def respond(send: Send, data: Any, *extra: tuple[bytes, bytes], status: int = 200) -> None:
    """``data`` as a JSON response, with the ``extra`` headers."""
    body = orjson.dumps(data)
    headers = [(b"content-length", str(len(body)).encode()), (b"content-type", JSON_TYPE), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
