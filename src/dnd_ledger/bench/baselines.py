"""The baselines: plain sqlite3 / psycopg connections doing the same jobs without the ledger.

- :class:`Crud`: the table a team would otherwise build: a flag row per contact
  (one column per channel) and an audit table. Per item: one UPDATE of the
  contact's row and one audit INSERT, one transaction per batch. It checks no
  idempotency key, resolves no address and keeps no personal-data vault: it is
  the cheapest honest version of the job.
- :class:`RawEvents`: a table with the same columns as the ledger's stored
  events, fed the very rows the ledger stored: ``executemany`` per batch, or one
  INSERT per transaction.
- :meth:`RawDb.fetchone`: the primary-key SELECT of a status view row.

SQLite connections are opened as the eventsourcing datastore opens its own
(autocommit mode, explicit ``BEGIN``, WAL journal, the default ``synchronous``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from dnd_ledger.bench.workload import Crud as CrudIntent
from dnd_ledger.storage.persistence import Database

CHANNEL_COLUMNS = ("email", "sms", "call", "fb", "gmb", "whatsapp")


class RawDb:
    """One plain connection, in the engine's own dialect (statements use ``?``)."""

    def __init__(self, db: Database) -> None:
        self.engine = db.engine
        self._conn: Any
        if db.engine == "postgres":
            import psycopg

            self._conn = psycopg.connect(
                host=db.host, port=db.port, dbname=db.dbname, user=db.user,
                password=db.password or None, autocommit=True,
            )  # fmt: skip
            self.schema = db.schema or "public"
        else:
            self._conn = sqlite3.connect(
                db.path, isolation_level=None, check_same_thread=False, timeout=30
            )
            self._conn.execute("PRAGMA journal_mode=WAL")
            self.schema = ""
        self._cur = self._conn.cursor()

    def q(self, statement: str) -> str:
        return statement.replace("?", "%s") if self.engine == "postgres" else statement

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        if self.engine == "postgres":
            with self._conn.transaction():
                yield self._cur
            return
        cur = self._cur
        cur.execute("BEGIN")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def execute(self, statement: str, params: Sequence[Any] = ()) -> None:
        self._cur.execute(self.q(statement), params)

    def fetchone(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """``statement`` already in the engine's dialect (see :meth:`q`): the hot path."""
        self._cur.execute(statement, params)
        return self._cur.fetchone()

    def fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        self._cur.execute(self.q(statement), params)
        return list(self._cur.fetchall())

    def close(self) -> None:
        self._conn.close()


class Crud:
    """The per-contact flag table and its audit table (``<prefix>_contacts``, ``<prefix>_audit``)."""

    def __init__(self, db: RawDb, prefix: str = "bench_crud") -> None:
        self.db = db
        self.contacts, self.audit = f"{prefix}_contacts", f"{prefix}_audit"
        pg = db.engine == "postgres"
        flags = ", ".join(f"ch_{c} TEXT NOT NULL DEFAULT 'inactive'" for c in CHANNEL_COLUMNS)
        with db.transaction():
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.contacts} (location_id TEXT NOT NULL,"
                f" contact_id TEXT NOT NULL, {flags}, updated_at TEXT,"
                " PRIMARY KEY (location_id, contact_id))"
            )
            db.execute(
                f"CREATE TABLE IF NOT EXISTS {self.audit} ("
                f" id {'BIGSERIAL' if pg else 'INTEGER'} PRIMARY KEY,"
                " location_id TEXT NOT NULL, contact_id TEXT NOT NULL, occurred_at TEXT NOT NULL,"
                " recorded_at TEXT NOT NULL, event TEXT NOT NULL, channels TEXT NOT NULL,"
                " value TEXT NOT NULL, detail TEXT NOT NULL)"
            )
        self._insert_contact = db.q(
            f"INSERT INTO {self.contacts} (location_id, contact_id, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (location_id, contact_id) DO NOTHING"
        )
        self._audit = db.q(
            f"INSERT INTO {self.audit} (location_id, contact_id, occurred_at, recorded_at,"
            " event, channels, value, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._updates: dict[tuple[str, ...], str] = {}

    def _update(self, columns: tuple[str, ...]) -> str:
        found = self._updates.get(columns)
        if found is None:
            sets = "".join(f"ch_{c} = ?, " for c in columns)
            found = self.db.q(
                f"UPDATE {self.contacts} SET {sets}updated_at = ?"
                " WHERE location_id = ? AND contact_id = ?"
            )
            self._updates[columns] = found
        return found

    def reset(self) -> None:
        """Empty both tables."""
        with self.db.transaction() as c:
            c.execute(f"DELETE FROM {self.audit}")
            c.execute(f"DELETE FROM {self.contacts}")

    def apply(self, batch: Sequence[CrudIntent]) -> None:
        """One transaction: per item, the contact row's UPDATE and an audit INSERT."""
        recorded = datetime.now(UTC).isoformat(timespec="microseconds")
        with self.db.transaction() as c:
            for it in batch:
                if it.register:
                    c.execute(self._insert_contact, (it.location_id, it.contact_id, recorded))
                else:
                    c.execute(
                        self._update(it.columns),
                        (*([it.value] * len(it.columns)), recorded, it.location_id, it.contact_id),
                    )
                c.execute(
                    self._audit,
                    (it.location_id, it.contact_id, it.occurred_at, recorded, it.event,
                     ",".join(it.columns), it.value, it.detail),
                )  # fmt: skip


class RawEvents:
    """A table shaped like the ledger's stored events, written without the ledger."""

    TABLE = "bench_raw_events"

    def __init__(self, db: RawDb) -> None:
        self.db = db
        with db.transaction():
            if db.engine == "postgres":
                # As eventsourcing's PostgreSQL application recorder makes its table.
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.TABLE} (originator_id uuid NOT NULL,"
                    " originator_version bigint NOT NULL, topic text, state bytea,"
                    " notification_id bigserial, PRIMARY KEY (originator_id, originator_version))"
                )
                db.execute(
                    f"CREATE UNIQUE INDEX IF NOT EXISTS {self.TABLE}_notification_id"
                    f" ON {self.TABLE} (notification_id ASC)"
                )
            else:
                # As eventsourcing's SQLite application recorder makes its table.
                db.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.TABLE} (originator_id TEXT,"
                    " originator_version INTEGER, topic TEXT, state BLOB,"
                    " PRIMARY KEY (originator_id, originator_version))"
                )
        self._insert = db.q(
            f"INSERT INTO {self.TABLE} (originator_id, originator_version, topic, state)"
            " VALUES (?, ?, ?, ?)"
        )

    def executemany(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """One transaction, one ``executemany`` of the rows."""
        with self.db.transaction() as c:
            c.executemany(self._insert, rows)

    def insert_one(self, row: tuple[Any, ...]) -> None:
        """One transaction holding one INSERT."""
        with self.db.transaction() as c:
            c.execute(self._insert, row)


class StoredRows:
    """Reads the ledger's stored event rows by notification id (outside any timing)."""

    def __init__(self, db: RawDb, table: str) -> None:
        self.db = db
        if db.engine == "postgres":
            self._select = (
                f"SELECT originator_id, originator_version, topic, state FROM {db.schema}.{table}"
                " WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id"
            )
        else:
            self._select = (
                f"SELECT originator_id, originator_version, topic, state FROM {table}"
                " WHERE rowid > ? AND rowid <= ? ORDER BY rowid"
            )

    def between(self, after: int, upto: int) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.db.fetchall(self._select, (after, upto))]


__all__ = ["CHANNEL_COLUMNS", "Crud", "RawDb", "RawEvents", "StoredRows"]
