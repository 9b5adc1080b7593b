"""One process per installation: a lock in the database decides who delivers or publishes.

PostgreSQL: a session advisory lock on a connection of its own (released by the
server when the process dies). SQLite: a lease row (owner, expiry) taken and
renewed with ``BEGIN IMMEDIATE`` transactions; a killed holder's lease expires
after ``lease`` seconds.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger

LEASES = (
    "CREATE TABLE IF NOT EXISTS dnd_leases ("
    " name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires DOUBLE PRECISION NOT NULL)"
)


class LockLost(Exception):
    """Another process holds the lock now (this one's lease expired)."""


class InstallationLock:
    def __init__(self, ledger: DndLedger, name: str, *, lease: float = 15.0) -> None:
        self.ledger = ledger
        self.sql = ledger.sql
        self.name = name
        self.lease = lease
        self.owner = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._conn: Any = None
        self.held = False
        if self.sql.dialect == "sqlite":
            self.sql.execute(LEASES)

    def _key(self) -> int:
        digest = hashlib.sha256(f"dnd-ledger lock {self.name}".encode()).digest()
        return int.from_bytes(digest[:8], "big", signed=True)

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it (or keep it, renewed); True when held."""
        if self.sql.dialect == "postgres":
            if self._conn is None:
                import psycopg

                db = self.ledger.db
                self._conn = psycopg.connect(
                    host=db.host, port=db.port, dbname=db.dbname, user=db.user,
                    password=db.password or None, autocommit=True,
                )  # fmt: skip
            if not self.held:
                row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key(),))
                self.held = bool(row.fetchone()[0])
            return self.held
        now = time.time()
        with self.sql.transaction() as c:
            rows = self.sql.fetchall_in(
                c, "SELECT owner, expires FROM dnd_leases WHERE name = ?", (self.name,)
            )
            if rows and rows[0][0] != self.owner and float(rows[0][1]) > now:
                if self.held:
                    self.held = False
                    raise LockLost(f"the {self.name} lease went to {rows[0][0]}")
                return False
            c.execute(
                self.sql.q(
                    "INSERT INTO dnd_leases (name, owner, expires) VALUES (?, ?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                    " expires = excluded.expires"
                ),
                (self.name, self.owner, now + self.lease),
            )
        self.held = True
        return True

    def holder(self) -> str | None:
        """Who holds the lease (SQLite), if anyone; None on PostgreSQL or when free."""
        if self.sql.dialect == "postgres":
            return None
        row = self.sql.fetchone(
            "SELECT owner, expires FROM dnd_leases WHERE name = ?", (self.name,)
        )
        return str(row[0]) if row and float(row[1]) > time.time() else None

    def release(self) -> None:
        if self.sql.dialect == "postgres":
            if self._conn is not None:
                self._conn.close()  # the session's advisory locks go with it
                self._conn = None
        elif self.held:
            self.sql.execute(
                "DELETE FROM dnd_leases WHERE name = ? AND owner = ?", (self.name, self.owner)
            )
        self.held = False
