"""The floors the HTTP decision path is measured against (``scripts/measure_http.py``).

Two apps on the ledger's own store, served by the same uvicorn as ``dnd-ledger
serve``. Each answers ``GET /v1/locations/{loc}/contacts/{cid}/can-send`` with one
primary-key SELECT of the status row and a decision-shaped JSON object (orjson),
and ``POST /v1/can-send:batch`` with one SELECT per item:

- ``raw_app``: a bare ASGI callable, the SELECT inline on the event loop;
- ``fastapi_app``: a FastAPI ``def`` route (thread pool, query parameters and a
  pydantic body validated by FastAPI).

No authentication, no freshness check: they are the cost of the framework plus
one read. The store comes from ``DND_LEDGER_BENCH_DB`` (a SQLite path or a
``postgresql://`` URL); the factories are for ``uvicorn --factory``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ConfigDict

from dnd_ledger.projections.status_row import COLUMNS, cause_fields

DB_ENV = "DND_LEDGER_BENCH_DB"
#: The contact's status row, that channel's two columns (see projections.status_row).
_SELECT = {
    ch.value: f"SELECT {st}, {cause} FROM dnd_status_contacts"
    " WHERE location_id = {p} AND contact_id = {p}"
    for ch, (st, cause) in COLUMNS.items()
}


class _Reader:
    """SQLite: a read-only connection per thread. PostgreSQL: a pool of autocommit
    connections as large as the ledger's (``DND_LEDGER_PG_POOL``), so that two
    workers of each server fit in the database's ``max_connections``."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.postgres = db.startswith(("postgres://", "postgresql://"))
        p = "%s" if self.postgres else "?"
        self.statements = {ch: s.replace("{p}", p) for ch, s in _SELECT.items()}
        self._local = threading.local()
        self._pool: Any = None
        if self.postgres:
            from psycopg_pool import ConnectionPool

            from dnd_ledger.pg_reads import pool_size

            self._pool = ConnectionPool(
                db, min_size=1, max_size=pool_size(), kwargs={"autocommit": True}, open=True
            )

    def _cursor(self) -> Any:
        cursor = getattr(self._local, "cursor", None)
        if cursor is None:
            uri = "file:" + os.path.abspath(self.db) + "?mode=ro"
            cursor = sqlite3.connect(uri, uri=True, check_same_thread=False).cursor()
            self._local.cursor = cursor
        return cursor

    def _row(self, statement: str, params: tuple[str, str]) -> Any:
        if self._pool is not None:
            with self._pool.connection() as conn:
                return conn.execute(statement, params).fetchone()
        cursor = self._cursor()
        cursor.execute(statement, params)
        return cursor.fetchone()

    def decision(self, location_id: str, contact_id: str, channel: str, mode: str) -> Any:
        statement = self.statements.get(channel)
        row = None if statement is None else self._row(statement, (location_id, contact_id))
        if row is None:
            return None
        status = row[0]
        _since, code, _message, event, _event_id = cause_fields(row[1])
        return {
            "allowed": status == "inactive",
            "channel": channel,
            "direction": "outbound",
            "mode": mode,
            "status": status,
            "reason": "no DND on this channel" if status == "inactive" else f"{status} DND",
            "code": code,
            "rule": "dnd",
            "event": event,
        }


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid")
    location_id: str
    contact_id: str
    channel: str


class Batch(BaseModel):
    items: list[Item]


def _reader() -> _Reader:
    return _Reader(os.environ[DB_ENV])


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_JSON = [(b"content-type", b"application/json")]


def raw_app() -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    reader = _reader()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        parts = scope["path"].split("/")
        status: int = 404
        data: Any = {"detail": "Not Found"}
        if scope["method"] == "GET" and len(parts) == 7 and parts[6] == "can-send":
            query = dict(parse_qsl(scope["query_string"].decode("latin-1")))
            found = reader.decision(
                parts[3], parts[5], query.get("channel", ""), query.get("mode", "automated")
            )
            if found is not None:
                status, data = 200, found
        elif scope["method"] == "POST" and scope["path"] == "/v1/can-send:batch":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            items = orjson.loads(body)["items"]
            results = [
                {**i, "decision": reader.decision(i["location_id"], i["contact_id"],
                                                  i["channel"], "automated")}
                for i in items
            ]  # fmt: skip
            status, data = 200, {"results": results}
        payload = orjson.dumps(data)
        headers = [*_JSON, (b"content-length", str(len(payload)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    return app


def fastapi_app() -> Any:
    from fastapi import FastAPI, HTTPException, Response

    reader = _reader()
    app = FastAPI()

    @app.get("/v1/locations/{location_id}/contacts/{contact_id}/can-send")
    def can_send(
        location_id: str, contact_id: str, channel: str, mode: str = "automated"
    ) -> Response:
        found = reader.decision(location_id, contact_id, channel, mode)
        if found is None:
            raise HTTPException(404, "unknown contact")
        return Response(orjson.dumps(found), media_type="application/json")

    @app.post("/v1/can-send:batch")
    def batch(body: Batch) -> Response:
        results = [
            {**i.model_dump(), "decision": reader.decision(i.location_id, i.contact_id,
                                                           i.channel, "automated")}
            for i in body.items
        ]  # fmt: skip
        return Response(orjson.dumps({"results": results}), media_type="application/json")

    return app
