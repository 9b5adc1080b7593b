"""A webhook receiver on 127.0.0.1 for the delivery tests: a small threaded http.server
that records what it is sent and fails on demand."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    delivery: str
    signature: str
    body: bytes

    @property
    def change(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


@dataclass
class Receiver:
    url: str = ""
    received: list[Received] = field(default_factory=list)
    #: Answer 500 to a change when this says so (it is still recorded as attempted).
    fail: Callable[[dict[str, Any]], bool] = lambda change: False
    attempts: int = 0
    delay: float = 0.0
    #: Once this many changes are recorded, hold every answer until :meth:`release`:
    #: the sender is then stuck mid-stream, however fast or slow the machine is.
    hold_after: int | None = None
    released: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def release(self) -> None:
        self.hold_after = None
        self.released.set()

    def ids(self) -> list[int]:
        with self.lock:
            return [int(r.delivery) for r in self.received]


@contextmanager
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            change = json.loads(body)
            with state.lock:
                state.attempts += 1
                failing = state.fail(change)
                if not failing:
                    state.received.append(
                        Received(
                            self.headers.get("X-Dnd-Ledger-Delivery", ""),
                            self.headers.get("X-Dnd-Ledger-Signature", ""),
                            body,
                        )
                    )
                hold = state.hold_after is not None and len(state.received) >= state.hold_after
            if hold:
                state.released.wait(120)
            if state.delay:
                time.sleep(state.delay)
            self.send_response(500 if failing else 204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.release()
        server.shutdown()
        server.server_close()
