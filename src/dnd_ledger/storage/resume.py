"""Resume points: where a cache miss starts instead of replaying an aggregate's history.

An aggregate not in the cache was rebuilt by replaying every one of its events: a
contact with years of history costs a read and a decode and a fold per event, on
every miss, and past a few hundred thousand stored events most loads miss. Here an
aggregate's compacted state (:mod:`dnd_ledger.domain.memento`) is written, in the
transaction that stores its events, each time its version passes a multiple of
``every``; a miss reads that one row by primary key and applies only the events
stored after it (fewer than ``every``).

The rows are a cache of the log, never a source: each names the version it holds, the
events after it are always read from the log, a row of an unknown shape is ignored
(the aggregate is replayed), and deleting any or all of them is always safe.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

import orjson

from dnd_ledger.domain import memento
from dnd_ledger.domain.address import Address
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.keys import KeyLookup
from dnd_ledger.storage.persistence import Sql

#: A resume point every this many events of an aggregate: a miss applies fewer.
EVERY = 4


class ResumePoints:
    TABLE = "dnd_resume_points"

    def __init__(self, sql: Sql, keys: KeyLookup, every: int = EVERY) -> None:
        self.sql = sql
        self.keys = keys  # where a resumed aggregate's idempotency keys are
        self.every = every
        self._upsert = sql.q(
            f"INSERT INTO {self.TABLE} (aggregate_id, version, state) VALUES (?, ?, ?)"
            " ON CONFLICT (aggregate_id) DO UPDATE SET version = excluded.version,"
            f" state = excluded.state WHERE excluded.version > {self.TABLE}.version"
        )

    def create_table(self) -> None:
        self.sql.execute(
            f"CREATE TABLE IF NOT EXISTS {self.TABLE} (aggregate_id TEXT PRIMARY KEY,"
            " version BIGINT NOT NULL, state TEXT NOT NULL)"
        )

    def due(self, aggregates: Iterable[tuple[Contact | Address, int]]) -> list[Contact | Address]:
        """Of (aggregate, events it gains in this batch), those whose version passes a
        multiple of ``every``."""
        every = self.every
        return [
            agg
            for agg, new in aggregates
            if new and agg.version // every > (agg.version - new) // every
        ]

    def put_in(self, c: Any, aggregates: list[Contact | Address]) -> None:
        """Write the aggregates' resume points in the caller's transaction (the one that
        stores the events they are at)."""
        if aggregates:
            c.executemany(
                self._upsert,
                [
                    (a.id.hex, a.version, orjson.dumps(memento.memento(a)).decode())
                    for a in aggregates
                ],
            )

    def load(self, aggregate_id: UUID) -> Contact | Address | None:
        """The aggregate at its last resume point (compacted), or None if there is none
        (or it is of a shape this code does not read)."""
        row = self.sql.fetchone(
            f"SELECT version, state FROM {self.TABLE} WHERE aggregate_id = ?", (aggregate_id.hex,)
        )
        if row is None:
            return None
        return memento.restore(aggregate_id, int(row[0]), orjson.loads(row[1]), self.keys)
