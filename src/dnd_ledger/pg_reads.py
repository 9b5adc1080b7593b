"""The view reads' connections on PostgreSQL: one bounded pool per process.

Every read of the views (the freshness check of each query, the status rows)
borrows an autocommit connection from one pool shared by every thread of the
process, and gives it back after its one statement. A thread that finds the pool
busy waits for a connection (up to ``WAIT_SECONDS``) instead of opening one: a
process never holds more than ``DND_LEDGER_PG_POOL`` reading connections, however
many request threads it runs. Writes go through the eventsourcing datastore's own
pool (``WRITE_CONNECTIONS`` at most). So a process opens at most
``DND_LEDGER_PG_POOL + WRITE_CONNECTIONS`` connections, and ``serve --workers N``
needs ``N * (DND_LEDGER_PG_POOL + WRITE_CONNECTIONS)`` below the server's
``max_connections`` (leaving room for everything else that connects).
"""

from __future__ import annotations

import os
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from dnd_ledger.domain.errors import InvalidInput, LedgerUnavailable
from dnd_ledger.storage.persistence import Database

POOL_ENV = "DND_LEDGER_PG_POOL"
DEFAULT_POOL = 8
#: The eventsourcing datastore's pool: POSTGRES_POOL_SIZE + POSTGRES_MAX_OVERFLOW.
WRITE_CONNECTIONS = 12
#: How long a read waits for a free connection before it fails closed.
WAIT_SECONDS = 10.0


def pool_size(environ: dict[str, str] | None = None) -> int:
    """``DND_LEDGER_PG_POOL`` (default 8), or InvalidInput naming it."""
    raw = (environ if environ is not None else os.environ).get(POOL_ENV, "").strip()
    if not raw:
        return DEFAULT_POOL
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise InvalidInput(f"{POOL_ENV} must be a whole number from 1 to 1000: {raw!r}")
    return int(raw)


class PgReads:
    """One statement at a time on a pooled autocommit connection, bounded in time."""

    def __init__(self, db: Database, timeout_ms: int, size: int | None = None) -> None:
        self.size = size if size is not None else pool_size()
        self.timeout_ms = timeout_ms
        self.pool = ConnectionPool(
            min_size=1, max_size=self.size, timeout=WAIT_SECONDS, open=False,
            kwargs={
                "host": db.host, "port": db.port, "dbname": db.dbname, "user": db.user,
                "password": db.password or None, "autocommit": True, "connect_timeout": 5,
                "options": f"-c statement_timeout={timeout_ms}",
            },
        )  # fmt: skip
        self.pool.open(wait=False)  # connects in the background, never fails the open

    def read(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        for attempt in (1, 2):
            try:
                with self.pool.connection() as conn:
                    rows: list[tuple[Any, ...]] = conn.execute(statement, params).fetchall()
                    return rows
            except PoolTimeout:
                raise LedgerUnavailable(
                    f"no database connection was free within {WAIT_SECONDS:g} s"
                    f" ({POOL_ENV}={self.size})"
                ) from None
            except (psycopg.errors.QueryCanceled, psycopg.errors.LockNotAvailable) as e:
                # A lock held too long (or a server too slow): never wait unbounded.
                raise LedgerUnavailable(
                    f"the views did not answer within {self.timeout_ms} ms: {type(e).__name__}"
                ) from None
            except psycopg.OperationalError as e:
                # The connection broke (server restart, idle timeout): the pool drops it
                # (it is returned broken); one retry on another.
                if attempt == 2:
                    raise LedgerUnavailable(
                        f"the database does not answer: {type(e).__name__}"
                    ) from None
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.pool.close()
