"""uvicorn's HTTP parser for ``serve``: httptools where installed, else h11.

httptools (a C parser) costs a fraction of h11 per request, but uvicorn applies
``h11_max_incomplete_event_size`` (the configuration's ``max_header_bytes``) only
to h11. :class:`CappedHttpTools` applies the same cap to a request's head (request
line and headers) with httptools, and answers a head past it as h11 does: 400,
``Invalid HTTP request received.``, connection closed. Without httptools,
:data:`PROTOCOL` is uvicorn's h11 protocol, whose own cap applies.
"""

from __future__ import annotations

import asyncio
from typing import Any

PROTOCOL: type[asyncio.Protocol]
#: The value for ``uvicorn.run(http=...)``.
NAME = "dnd_ledger.web.http_protocol:PROTOCOL"

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools wheel for this platform: h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    PROTOCOL = H11Protocol
else:

    class CappedHttpTools(HttpToolsProtocol):
        """httptools, with the head of each request capped at the h11 limit."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            limit = self.config.h11_max_incomplete_event_size
            self._head_limit: int = limit if limit is not None else 16 * 1024  # h11's default
            self._in_head = True
            self._head_bytes = 0  # bytes read while the head is unfinished
            self._head_size = 0  # request line and headers parsed so far

        def data_received(self, data: bytes) -> None:
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            over = self._in_head and self._head_bytes > self._head_limit
            if over and not self.transport.is_closing():
                self.logger.warning("Request head over %d bytes.", self._head_limit)
                self.send_400_response("Invalid HTTP request received.")

        def on_url(self, url: bytes) -> None:
            self._head_size += len(url)
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._head_size += len(name) + len(value) + 4  # ": " and CRLF
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            if self._head_size > self._head_limit:
                # httptools raises it from feed_data as a parser error: uvicorn's 400.
                raise ValueError("request head over the limit")
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head = True  # the next request's head counts from its first read
            self._head_bytes = 0
            self._head_size = 0

    PROTOCOL = CappedHttpTools

__all__ = ["NAME", "PROTOCOL"]
