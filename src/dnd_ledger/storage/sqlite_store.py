"""SQLite storage whose write transactions wait for the write lock.

eventsourcing's SQLite datastore opens every transaction with a plain (deferred)
``BEGIN``: the transaction starts as a reader and becomes a writer at its first
write. When another connection wrote meanwhile, SQLite refuses that upgrade at
once with "database is locked", whatever the busy timeout, since waiting could
not make the reader's snapshot current. Here a transaction that will commit
starts with ``BEGIN IMMEDIATE``: it takes the write lock first, waiting up to
the lock timeout (``SQLITE_LOCK_TIMEOUT``) for it, and then reads and writes a
current snapshot. Read-only transactions keep the deferred ``BEGIN`` (under WAL
they never wait for writers).

Each connection keeps ``SQLITE_CACHE_MIB`` MiB of database pages in memory (SQLite's
own default is 2 MiB): past a few hundred thousand events the index pages a batch
touches no longer fit in 2 MiB, and every miss is a read and a decode of a page.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.sqlite import (
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteFactory,
    SQLiteTransaction,
)

from dnd_ledger.domain.errors import InvalidInput


class _WriterFirstTransaction(SQLiteTransaction):
    def __enter__(self) -> SQLiteCursor:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE" if self.commit else "BEGIN")
        return cursor


class _Connection(SQLiteConnection):
    @contextmanager
    def transaction(self, *, commit: bool) -> Iterator[SQLiteCursor]:
        with _WriterFirstTransaction(self, commit=commit) as curs, curs:
            yield curs


#: Pages each connection keeps in memory, in MiB, unless ``SQLITE_CACHE_MIB`` says otherwise.
DEFAULT_CACHE_MIB = 32
#: The most SQLite can be asked for (its cache_size is a 32-bit count of KiB): 1 TiB.
MAX_CACHE_MIB = 1 << 20


class _Pool(SQLiteConnectionPool):
    cache_mib: int = DEFAULT_CACHE_MIB

    def _create_connection(self) -> SQLiteConnection:
        conn = super()._create_connection()
        conn.__class__ = _Connection  # same state, transactions that lock before they read
        if self.cache_mib:
            _raw(conn).execute(f"PRAGMA cache_size = -{int(self.cache_mib) * 1024}")
        return conn


def _raw(conn: SQLiteConnection) -> Any:
    return conn._sqlite_conn


class WaitingSQLiteFactory(SQLiteFactory):
    """``eventsourcing.sqlite``'s factory, with a pool of writer-first connections."""

    def __init__(self, env: Any) -> None:
        super().__init__(env)
        # The pool has made no connection yet: every one comes from _Pool.
        pool: Any = self.datastore.pool
        pool.__class__ = _Pool
        cache = env.get("SQLITE_CACHE_MIB")
        if cache:
            mib = int(cache)
            if not 0 <= mib <= MAX_CACHE_MIB:
                raise InvalidInput(
                    f"the SQLite page cache must be from 0 to {MAX_CACHE_MIB} MiB: {cache!r}"
                )
            pool.cache_mib = mib
