"""The keys table: the idempotency key of every stored event, by aggregate.

A contact or an address in the cache is compacted (see :mod:`dnd_ledger.storage.cache`):
it forgets its idempotency keys, so its memory does not grow with its history, and
asks this table (through :class:`~dnd_ledger.domain.keys.KeyLookup`) for any key it does
not hold. The table must therefore hold the key of every stored event:

- a batch writes its events' keys in the transaction that stores the events
  (:meth:`KeysTable.put_in`), on every backend;
- a ledger made before the table existed is backfilled from the log when opened, in
  one transaction that also writes the marker: a row :data:`MARKER` of owner ``""`` (no
  aggregate's) in each of the two tables, so a table dropped or emptied loses its marker
  with its rows and is backfilled again. Until this process has seen both markers, no
  lookup answers (:class:`KeysNotReady`);
- a lookup that fails raises (the command fails, nothing is acknowledged): the table
  never answers "not held" for want of an answer.

``dnd_keys`` holds every key (primary key: owner, key); ``dnd_request_keys`` the last
key recorded under each request id (primary key: owner, request), for the request-id
rule of :func:`~dnd_ledger.domain.keys.is_held`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent

from dnd_ledger.domain.address import Address
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.keys import request_id
from dnd_ledger.storage.persistence import Sql

#: The key (and request id) of the row, of owner ``""``, saying the table is complete.
MARKER = "complete: the key of every stored event is here"
#: Events read from the log per query while backfilling.
PAGE = 5000


class KeysNotReady(RuntimeError):
    """The keys table is not known to be complete: no lookup may answer from it."""


def recorded_key(event: object) -> str | None:
    """The idempotency key an aggregate keeps for ``event`` (None: it keeps none); the
    same events as the aggregates' own ``keys`` (a test checks it on replayed ones)."""
    if isinstance(event, Address.SignalRecorded):
        return event.idempotency_key
    if isinstance(
        event,
        Contact.Registered | Contact.AddressesAdded | Contact.AddressRemoved | Contact.DndEvent,
    ):
        return event.idempotency_key or None
    return None


class KeysTable:
    """The keys of every stored event (see the module's notes); a ``KeyLookup``."""

    KEYS = "dnd_keys"
    REQUESTS = "dnd_request_keys"

    def __init__(self, sql: Sql) -> None:
        self.sql = sql
        #: Whether this process has seen the marker: the table holds every stored key.
        self.ready = False
        self._insert_key = sql.q(
            f"INSERT INTO {self.KEYS} (owner, key) VALUES (?, ?) ON CONFLICT DO NOTHING"
        )
        insert_request = f"INSERT INTO {self.REQUESTS} (owner, request, key) VALUES (?, ?, ?)"
        # A batch's rows are its events', newer than any stored: the last key wins.
        self._upsert_request = sql.q(
            f"{insert_request} ON CONFLICT (owner, request) DO UPDATE SET key = excluded.key"
        )
        # The backfill's are older than any a writer of this code stored meanwhile.
        self._backfill_request = sql.q(f"{insert_request} ON CONFLICT DO NOTHING")
        self._holds = sql.q(f"SELECT 1 FROM {self.KEYS} WHERE owner = ? AND key = ?")
        self._request = sql.q(f"SELECT key FROM {self.REQUESTS} WHERE owner = ? AND request = ?")

    def create_table(self) -> None:
        self.sql.execute(
            f"CREATE TABLE IF NOT EXISTS {self.KEYS} (owner TEXT NOT NULL, key TEXT NOT NULL,"
            " PRIMARY KEY (owner, key))"
        )
        self.sql.execute(
            f"CREATE TABLE IF NOT EXISTS {self.REQUESTS} (owner TEXT NOT NULL,"
            " request TEXT NOT NULL, key TEXT NOT NULL, PRIMARY KEY (owner, request))"
        )

    # -- writing ----------------------------------------------------------------------
    def put_in(self, c: Any, events: Iterable[Any]) -> None:
        """Write the keys of a batch's ``events`` in its transaction ``c``."""
        keys, requests = _rows(events)
        if keys:
            c.executemany(self._insert_key, keys)
        if requests:
            c.executemany(self._upsert_request, requests)

    def open(self, events_table: str, decode: Callable[[StoredEvent], Any]) -> int:
        """Make sure the table holds every stored event's key: if the marker is missing,
        read the whole log (``decode`` makes a stored event a domain event) and write its
        keys and the marker in one transaction. Returns the events read (0: the marker
        was there). Run where the tables are created (on PostgreSQL, under their lock);
        two processes doing it at once both end with the same table."""
        read = 0
        if not self._is_marked():  # else a write transaction, whose lock may be waited for
            with self.sql.transaction() as c:
                if not self._marked(c):  # nobody did it meanwhile
                    read = self._backfill(c, events_table, decode)
                    c.execute(self._insert_key, ("", MARKER))
                    c.execute(self._backfill_request, ("", MARKER, MARKER))
            if not self._is_marked():
                raise KeysNotReady("the keys table's completion marker is missing after backfill")
        self.ready = True
        return read

    def _is_marked(self) -> bool:
        with self.sql.transaction(commit=False) as c:
            return self._marked(c)

    def _marked(self, c: Any) -> bool:
        keys = self.sql.fetchall_in(
            c, f"SELECT 1 FROM {self.KEYS} WHERE owner = '' AND key = ?", (MARKER,)
        )
        requests = self.sql.fetchall_in(
            c, f"SELECT 1 FROM {self.REQUESTS} WHERE owner = '' AND request = ?", (MARKER,)
        )
        return bool(keys) and bool(requests)

    def _backfill(self, c: Any, events_table: str, decode: Callable[[StoredEvent], Any]) -> int:
        position = "notification_id" if self.sql.engine == "postgres" else "rowid"
        select = (
            f"SELECT {position}, originator_id, originator_version, topic, state"
            f" FROM {events_table} WHERE {position} > ? ORDER BY {position} LIMIT {PAGE}"
        )
        last, read = 0, 0
        while True:
            rows = self.sql.fetchall_in(c, select, (last,))
            if not rows:
                return read
            read += len(rows)
            last = int(rows[-1][0])
            events = [
                decode(StoredEvent(originator_id=r[1], originator_version=int(r[2]),
                                   topic=str(r[3]), state=bytes(r[4])))
                for r in rows
                if _may_hold_a_key(str(r[3]))
            ]  # fmt: skip
            keys, requests = _rows(events)
            if keys:
                c.executemany(self._insert_key, keys)
            if requests:
                c.executemany(self._backfill_request, requests)

    # -- reading (KeyLookup) ----------------------------------------------------------
    def holds(self, owner: UUID, key: str) -> bool:
        self._check_ready()
        return self.sql.lookup(self._holds, (owner.hex, key)) is not None

    def request_key(self, owner: UUID, request: str) -> str | None:
        self._check_ready()
        row = self.sql.lookup(self._request, (owner.hex, request))
        return None if row is None else str(row[0])

    def _check_ready(self) -> None:
        if not self.ready:
            raise KeysNotReady(
                "the keys table is not known to hold every stored key (its backfill has not "
                "completed in this process): no idempotency key can be looked up"
            )


def _may_hold_a_key(topic: str) -> bool:
    """Whether an event of this topic may carry a key (the others are not decoded)."""
    return ":Address." not in topic or topic.endswith(".SignalRecorded")


def _rows(events: Iterable[Any]) -> tuple[list[tuple[str, str]], list[tuple[str, str, str]]]:
    """The (owner, key) rows and the (owner, request id, key) rows of ``events``, the
    last key of each request id of each owner only (events in the order stored)."""
    keys: dict[tuple[str, str], None] = {}
    requests: dict[tuple[str, str], str] = {}
    for event in events:
        key = recorded_key(event)
        if key is None:
            continue
        owner = _hex(event.originator_id)
        keys[owner, key] = None
        request = request_id(key) if isinstance(event, Contact.Event) else None
        if request is not None:
            requests[owner, request] = key
    return list(keys), [(o, r, k) for (o, r), k in requests.items()]


def _hex(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else UUID(originator_id).hex
