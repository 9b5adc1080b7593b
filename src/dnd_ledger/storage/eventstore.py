"""The event store: eventsourcing's ``Application`` wired for the ledger, and the batched insert.

The only module that knows eventsourcing's recorders and their internals: the
environment a database URL becomes, the transcoder, the aggregate cache, the
batch of stored events inserted in the caller's transaction (one ``executemany``
on SQLite; the recorder's own locked insert on PostgreSQL), loading and
restoring aggregates without the library's per-event runtime checks.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import StoredEvent, Tracking, Transcoder
from eventsourcing.utils import Environment

from dnd_ledger.domain.address import Address
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.errors import HistoryNotLoaded
from dnd_ledger.files import private_file
from dnd_ledger.storage.cache import DEFAULT_ENTRIES, AggregateCache
from dnd_ledger.storage.keys import KeysTable
from dnd_ledger.storage.persistence import Database, Sql
from dnd_ledger.storage.resume import ResumePoints
from dnd_ledger.storage.sqlite_store import DEFAULT_CACHE_MIB
from dnd_ledger.storage.transcoding import LedgerTranscoder


def eventsourcing_env(db: Database) -> dict[str, str]:
    if db.engine == "memory":
        # An in-memory SQLite database, private to this process: one code path for all.
        name = f"file:dnd_ledger_{uuid.uuid4().hex}?mode=memory&cache=shared"
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": name}
    if db.engine == "sqlite":
        private_file(Path(db.path))  # 0600 before SQLite opens it: -wal/-shm inherit the mode
        return {
            # Write transactions take the lock first, waiting for it (see sqlite_store).
            "PERSISTENCE_MODULE": "dnd_ledger.storage.sqlite_store:WaitingSQLiteFactory",
            "SQLITE_DBNAME": db.path,
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": db.dbname,
        "POSTGRES_HOST": db.host,
        "POSTGRES_PORT": db.port,
        "POSTGRES_USER": db.user,
        "POSTGRES_PASSWORD": db.password,
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_MAX_OVERFLOW": "8",
        "POSTGRES_CONNECT_TIMEOUT": "10",
        "POSTGRES_LOCK_TIMEOUT": "30",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT": "30",
    }
    if db.schema:
        env["POSTGRES_SCHEMA"] = db.schema
    return env


@dataclass(frozen=True)
class Staged:
    """A batch's new events, collected from their aggregates and mapped to stored events."""

    processing: ProcessingEvent[UUID]
    stored: list[StoredEvent]

    @property
    def events(self) -> list[DomainEventProtocol[UUID]]:
        return self.processing.events


class EventStore(Application[UUID]):
    """The ledger's aggregates and their events, stored in one database."""

    name = "dnd_ledger"

    def construct_env(self, name: str, env: Any = None) -> Environment:
        """The library's settings from the ledger's own arguments only. The library also
        reads the process environment, where ``DND_LEDGER_<KEY>`` (this application's
        name) would override any of them: an unrelated variable could change the
        database it opens, or the cache a caller asked for, and a variable set for
        another eventsourcing application (a compressor, a cipher) would change how
        this one stores its events."""
        return Environment(name, {**type(self).env, **(env or {})})

    def __init__(
        self,
        db: Database,
        *,
        env: dict[str, str] | None = None,
        cache_entries: int = DEFAULT_ENTRIES,
        sqlite_cache_mib: int = DEFAULT_CACHE_MIB,
    ) -> None:
        self.db = db
        full_env = eventsourcing_env(db)
        full_env["AGGREGATE_CACHE_MAXSIZE"] = "1"  # replaced below by an AggregateCache
        full_env["DEEPCOPY_FROM_AGGREGATE_CACHE"] = "n"
        # Saved aggregates stay cached as they are; another process's newer
        # events surface as a version conflict on save, which evicts and retries.
        full_env["AGGREGATE_CACHE_FASTFORWARD"] = "n"
        full_env["SQLITE_CACHE_MIB"] = str(sqlite_cache_mib)  # read by sqlite_store
        if db.engine == "postgres":
            full_env["CREATE_TABLE"] = "n"  # created once, under a lock, by create_tables
        full_env.update(env or {})
        super().__init__(env=full_env)
        # The SQL recorders (SQLite, PostgreSQL) expose their datastore and tables.
        self._sql_recorder = _untyped(self.recorder)
        self.sql = Sql(self._sql_recorder.datastore, db.engine)
        #: The idempotency keys of every stored event (see storage/keys.py): where a
        #: compacted aggregate looks up the keys it no longer holds. Its tables are
        #: created, and backfilled, by the ledger with the others (:meth:`open_keys`).
        self.keys = KeysTable(self.sql)
        self.repository.cache = AggregateCache(cache_entries, keys=self.keys)
        #: Where a cache miss resumes (see storage/resume.py); its table is created by
        #: the ledger with the others.
        self.resume = ResumePoints(self.sql, self.keys)

    @property
    def events_table(self) -> str:
        return str(self._sql_recorder.events_table_name)

    def qualified(self, table: str) -> str:
        """A table's name as a query names it: on PostgreSQL with the schema the library
        created it in, quoted as the library quotes both."""
        if self.db.engine != "postgres":
            return table
        schema = str(getattr(self._sql_recorder.datastore, "schema", "") or "public")
        return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))

    @property
    def events_by_position(self) -> tuple[str, str]:
        """The events table as a query names it and its column of notification ids
        (SQLite's ``rowid``), for joins on a log position."""
        column = "notification_id" if self.db.engine == "postgres" else "rowid"
        return self.qualified(self.events_table), column

    def stored_id(self, aggregate_id: UUID) -> Any:
        """An aggregate id as the events table's ``originator_id`` column holds it (for a
        lookup through its index): hex text on SQLite, a uuid on PostgreSQL."""
        return aggregate_id if self.db.engine == "postgres" else _hex(aggregate_id)

    def decode_stored(self, originator_id: Any, version: int, topic: str, state: bytes) -> Any:
        """A row of the events table (its originator id, version, topic and state) as
        its domain event, decoded as an aggregate's events are (transcoder, upcasting)."""
        convert = getattr(self._sql_recorder, "convert_originator_id", None)
        if convert is not None and isinstance(originator_id, str):
            originator_id = convert(originator_id)
        return self.mapper.to_domain_event(
            StoredEvent(originator_id, int(version), str(topic), bytes(state))
        )

    def construct_transcoder(self) -> Transcoder:
        transcoder = LedgerTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def create_tables(self, *creators: Callable[[], None]) -> None:
        """The events table, then the others (``creators``); on PostgreSQL under a lock,
        since concurrent CREATE TABLE there can fail."""
        if self.db.engine != "postgres":
            for create in creators:
                create()
            return
        with self._sql_recorder.datastore.get_connection() as conn:
            conn.execute("SELECT pg_advisory_lock(74201)")
            try:
                self._sql_recorder.create_table()
                for create in creators:
                    create()
            finally:
                conn.execute("SELECT pg_advisory_unlock(74201)")

    # -- writing ----------------------------------------------------------------
    def stage(self, aggregates: Iterable[Contact | Address]) -> Staged:
        """``Application.save``'s first half for our own aggregates: the library's
        ``save`` checks each object against runtime protocols, which costs more than
        storing the events; ours are known aggregates."""
        processing = ProcessingEvent[UUID]()
        for agg in aggregates:
            processing.events.extend(agg.collect_events())
            processing.aggregates[agg.id] = agg
        return Staged(processing, [self.mapper.to_stored_event(e) for e in processing.events])

    def insert_events(self, c: Any, stored: list[StoredEvent]) -> list[int]:
        """The application recorder's insert, in the caller's transaction; returns
        the notification ids."""
        recorder = self._sql_recorder
        if self.db.engine == "postgres":
            # Locks the table (commit order = id order), notifies, inserts ... RETURNING.
            recorder._insert_stored_events(c, stored)
            ids = recorder._fetch_ids_after_insert_events(c, stored)
        else:
            # One executemany (the insert comes first: it takes the write lock).
            # Each row gets max(rowid) + 1 and nobody else writes meanwhile, so
            # the batch's rowids (its notification ids) are consecutive; the
            # first one is checked to hold the batch's first event.
            table = recorder.events_table_name
            c.executemany(
                recorder.insert_events_statement,
                [(_hex(s.originator_id), s.originator_version, s.topic, s.state) for s in stored],
            )
            c.execute(f"SELECT MAX(rowid) FROM {table}")
            last = int(c.fetchone()[0])
            first = last - len(stored) + 1
            c.execute(
                f"SELECT originator_id, originator_version FROM {table} WHERE rowid = ?", (first,)
            )
            head = stored[0]
            if tuple(c.fetchone() or ()) != (_hex(head.originator_id), head.originator_version):
                raise RuntimeError(f"the batch's events are not at rowids {first}..{last}")
            ids = list(range(first, last + 1))
        if ids is None or len(ids) != len(stored):
            raise RuntimeError("the recorder did not return a notification id per event")
        return list(ids)

    def open_keys(self) -> None:
        """Backfill the keys table from the log unless it is marked complete (run with
        the tables' creators: on PostgreSQL under their lock)."""
        self.keys.open(self.qualified(self.events_table), self.mapper.to_domain_event)

    def write_keys(self, c: Any, staged: Staged) -> None:
        """The idempotency keys of the batch's events, in its transaction ``c``."""
        self.keys.put_in(c, staged.events)

    def write_resume_points(self, c: Any, staged: Staged) -> None:
        """The resume points the batch's aggregates are due, in its transaction ``c``."""
        gained = Counter(e.originator_id for e in staged.processing.events)
        self.resume.put_in(c, self.resume.due(
            (agg, gained[aid]) for aid, agg in staged.processing.aggregates.items()
            if isinstance(agg, Contact | Address)
        ))  # fmt: skip

    def saved(self, staged: Staged) -> None:
        """``Application.save``'s second half, once the batch is committed."""
        if self.repository.cache and not self.repository.fastforward:
            for aggregate_id, aggregate in staged.processing.aggregates.items():
                self.repository.cache.put(aggregate_id, aggregate)
        self._take_snapshots(staged.processing)

    # -- reading ----------------------------------------------------------------
    def get_aggregate(self, aggregate_id: UUID) -> Contact | Address | None:
        cache = self.repository.cache
        if isinstance(cache, AggregateCache) and aggregate_id not in cache:
            resumed = self._resume(aggregate_id)
            if resumed is not None:
                cache.put(aggregate_id, resumed)
                return resumed
        try:
            agg: Any = self.repository.get(
                aggregate_id, deepcopy_from_cache=False, projector_func=_replay
            )
        except AggregateNotFoundError:
            return None
        assert isinstance(agg, Contact | Address)
        return agg

    def _resume(self, aggregate_id: UUID) -> Contact | Address | None:
        """The aggregate from its last resume point and the events stored after it."""
        agg = self.resume.load(aggregate_id)
        if agg is None:
            return None
        for event in _untyped(self.events.get(aggregate_id, gt=agg.version)):
            try:
                event.mutate(agg)
            except HistoryNotLoaded:  # a late event refolds the past: read it first
                self.restore_history(agg)
                event.mutate(agg)
        return agg

    def events_after(self, agg: Contact) -> list[Contact.Event]:
        """The contact's events stored after the version this copy has."""
        newer = list(self.events.get(agg.id, gt=agg.version))
        assert all(isinstance(e, Contact.Event) for e in newer)
        return newer  # type: ignore[return-value]

    def restore_history(self, agg: Contact | Address) -> None:
        """Give a compacted aggregate (see AggregateCache) its history back: its
        stored events, then its pending ones."""
        pending = list(agg.pending_events)
        stored = self.events.get(agg.id, lte=agg.version - len(pending))
        if isinstance(agg, Contact):
            agg.restore_entries([*stored, *pending])
        else:
            agg.restore_signals([*stored, *pending])

    def evict(self, aggregate_ids: Iterable[UUID]) -> None:
        cache = self.repository.cache
        if not cache:
            return
        for aid in aggregate_ids:
            with contextlib.suppress(KeyError):
                cache.get(aid, evict=True)


def _hex(originator_id: UUID | str) -> str:
    return originator_id.hex if isinstance(originator_id, UUID) else originator_id


def _replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """The library's ``project_aggregate`` without its per-event runtime-protocol
    ``isinstance`` check (most of the cost of a replay); our events all mutate."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


def _untyped(obj: object) -> Any:
    return obj


def insert_tracking(tracking_recorder: Any, c: Any, name: str, position: int) -> None:
    """Record that ``name`` (a view, the notary) has applied the log up to ``position``,
    in the caller's transaction ``c`` (the library's public ``insert_tracking`` opens
    its own)."""
    tracking_recorder._insert_tracking(c, Tracking(name, position))
