"""The projector: catches the views up with the notification log, in batches.

Each batch of notifications is decoded once, turned into view rows, and
written in ONE transaction together with each view's tracking position (an
eventsourcing tracking recorder), so every event is applied exactly once, also
after a crash: a batch is either all there, rows and position, or not at all.
If another process applied the same batch first, the tracking insert fails,
the transaction rolls back, and the next round starts from the new position.
"""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from eventsourcing.persistence import IntegrityError, Notification, Tracking

from dnd_ledger.domain.address import Address
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.errors import LedgerUnavailable
from dnd_ledger.domain.state import DndState, Effect, Entry
from dnd_ledger.domain.values import ALL_CHANNELS
from dnd_ledger.projections.queries import ENTRY_COLUMNS, entry_from_row
from dnd_ledger.projections.rows import (
    NAME,
    ContactView,
    changed,
    effect_words,
    evidence_of,
    stats_keys,
)
from dnd_ledger.projections.schema import CLEAR, ERRORS_TABLE, TABLES, TRACKING_PREFIX, VIEWS

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger

#: Views derived from contact state advance together; rebuilding one rebuilds all.
STATE_VIEWS = ("status", "audit", "stats")
BATCH_SIZE = 1000
#: A rebuild reads the whole log: bigger batches mean fewer commits and fewer
#: rewrites of the same contact's status rows (1,000 -> 10,000: 1.5x faster).
REBUILD_BATCH_SIZE = 10_000
#: Contacts and addresses remembered between batches (bounded memory).
CACHE_CONTACTS = 10_000
CACHE_ADDRESSES = 20_000
#: Another process moved the views by at most this many events: forget only the
#: contacts those events touched (read from the audit view); further, forget all.
FOLLOW_LIMIT = 5_000
#: The name of the projector's row in ``dnd_projection_errors``.
ERROR_NAME = "views"


def iso(t: datetime) -> str:
    if t.tzinfo is not UTC:
        t = t.astimezone(UTC)
    return t.isoformat(timespec="microseconds")


class Projector:
    def __init__(self, app: DndLedger) -> None:
        self.app = app
        self.sql = app.sql
        self.datastore: Any = app.sql.datastore
        self.tracking: Any = app.factory.tracking_recorder()
        # What this process last wrote, kept between batches. Valid only while
        # nobody else moved the views: checked against the position each batch.
        self.contacts: OrderedDict[str, ContactView] = OrderedDict()
        self.addresses: dict[str, tuple[str, str, str]] = {}
        self._cached_at: int | None = None
        #: Told which contacts each written batch changed, and when to forget all.
        self.readers: list[Any] = []

    def create_tables(self) -> None:
        self.tracking.create_table()
        with self.sql.transaction() as c:
            for statements in TABLES.values():
                for s in statements:
                    c.execute(s)
            c.execute(ERRORS_TABLE)

    # -- positions ------------------------------------------------------------------
    def positions(self, c: Any = None) -> dict[str, int]:
        """Each view's tracking position, read in one query (in ``c``'s transaction if given)."""
        table = self.tracking_table()
        names = [TRACKING_PREFIX + v for v in VIEWS]
        statement = (
            f"SELECT application_name, MAX(notification_id) FROM {table}"
            f" WHERE application_name IN ({', '.join('?' * len(names))}) GROUP BY application_name"
        )
        rows = (
            self.sql.fetchall_in(c, statement, names) if c else self.sql.fetchall(statement, names)
        )
        found = {str(name): int(pos or 0) for name, pos in rows}
        return {v: found.get(TRACKING_PREFIX + v, 0) for v in VIEWS}

    def head(self) -> int:
        return int(self.app.recorder.max_notification_id() or 0)

    # -- catch-up -------------------------------------------------------------------
    def catch_up(
        self,
        *,
        batch_size: int = BATCH_SIZE,
        progress: Callable[[int], None] | None = None,
        deadline: float | None = None,
    ) -> int:
        """Apply everything not yet applied; returns how many notifications were applied.

        A failure to apply an event is recorded where every process sees it
        (:meth:`error`) and raised as :class:`LedgerUnavailable`: the event is never
        skipped, so the views stay behind it until it can be applied. With a
        ``deadline`` (``time.monotonic()``), views still behind then raise too.
        """
        done = 0
        while True:
            positions = self.positions()
            start = min(positions.values())
            self.follow(start)
            batch = self.app.recorder.select_notifications(start=start + 1, limit=batch_size)
            if not batch:
                if done:
                    self._clear_error(start)
                return done
            if deadline is not None and time.monotonic() > deadline:
                lag = self.head() - start
                raise LedgerUnavailable(
                    f"the views are {lag} events behind the log (still catching up)", lag=lag
                )
            try:
                self._apply(batch, positions)
            except IntegrityError:
                continue  # another process applied it first: re-read positions
            except _Failed as failed:
                lag = self.head() - start
                self._record_error(failed.position, failed.cause)
                raise LedgerUnavailable(
                    f"the views are stuck {lag} events behind the log: the event at position"
                    f" {failed.position} could not be applied"
                    f" ({type(failed.cause).__name__}: {failed.cause})",
                    lag=lag,
                ) from failed.cause
            done += len(batch)
            if progress:
                progress(len(batch))

    def follow(self, start: int) -> None:
        """The views are at ``start``: drop what this process remembers of contacts that
        other processes changed since it last looked (all of it after a rebuild or a
        long absence)."""
        since = self._cached_at
        if since == start:
            return
        if since is None or start < since or start - since > FOLLOW_LIMIT:
            self.forget()
        else:
            rows = self.sql.fetchall(
                "SELECT DISTINCT aggregate_id, location_id, contact_id FROM dnd_audit"
                " WHERE position > ? AND position <= ? AND contact_id IS NOT NULL",
                (since, start),
            )
            for aggregate_id, _loc, _cid in rows:
                self.contacts.pop(str(aggregate_id), None)
            touched = [(str(loc), str(cid)) for _aid, loc, cid in rows]
            for reader in self.readers:
                reader.changed(touched)
        self._cached_at = start

    # -- failures, for every process to see ----------------------------------------------
    def error(self) -> tuple[int, str, str] | None:
        """The recorded failure, if the views are stuck: (position, error, when)."""
        row = self.sql.fetchone(
            "SELECT position, error, at FROM dnd_projection_errors WHERE name = ?", (ERROR_NAME,)
        )
        return None if row is None else (int(row[0]), str(row[1]), str(row[2]))

    def _record_error(self, position: int, cause: BaseException) -> None:
        text = f"{type(cause).__name__}: {cause}"[:2000]
        try:
            self.sql.execute(
                "INSERT INTO dnd_projection_errors (name, position, error, at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET position = excluded.position,"
                " error = excluded.error, at = excluded.at",
                (ERROR_NAME, position, text, iso(datetime.now(UTC))),
            )
        except Exception:  # the database itself failed: the caller fails closed anyway
            return

    def _clear_error(self, position: int) -> None:
        self.sql.execute(
            "DELETE FROM dnd_projection_errors WHERE name = ? AND position <= ?",
            (ERROR_NAME, position),
        )

    def rebuild(
        self,
        names: Iterable[str],
        progress: Callable[[int], None] | None = None,
        *,
        batch_size: int = REBUILD_BATCH_SIZE,
    ) -> int:
        """Empty the named views (see :meth:`clear`) and project the whole log again."""
        self.clear(names)
        return self.catch_up(batch_size=batch_size, progress=progress)

    def clear(self, names: Iterable[str]) -> None:
        """Empty the named views and their positions, in one transaction; views that
        advance together (status, audit, stats) are emptied together."""
        chosen = set(names)
        unknown = chosen - set(VIEWS)
        if unknown:
            raise ValueError(f"unknown view {sorted(unknown)[0]!r}; views are {', '.join(VIEWS)}")
        if chosen & set(STATE_VIEWS):
            chosen |= set(STATE_VIEWS)
        table = self.tracking_table()
        with self.sql.transaction() as c:
            for name in sorted(chosen):
                for s in CLEAR[name]:
                    c.execute(s)
                c.execute(
                    self.sql.q(f"DELETE FROM {table} WHERE application_name = ?"),
                    (TRACKING_PREFIX + name,),
                )
        self.forget()

    def _pg_tracking_table(self) -> str:
        return self.qualified(str(self.tracking.tracking_table_name))

    def qualified(self, table: str) -> str:
        """A table's name, with its schema on PostgreSQL."""
        if self.sql.dialect != "postgres":
            return table
        schema = getattr(self.datastore, "schema", "") or ""
        return f"{schema}.{table}" if schema else table

    def tracking_table(self) -> str:
        return "tracking" if self.sql.dialect == "sqlite" else self._pg_tracking_table()

    @staticmethod
    def tracking_name(view: str) -> str:
        return TRACKING_PREFIX + view

    @property
    def cached_at(self) -> int | None:
        """The views' position this process's caches agree with (None: not known)."""
        return self._cached_at

    # -- the writer's own events, in its transaction -----------------------------------
    def apply_own(self, c: Any, events: Sequence[tuple[int, Any]]) -> _Batch | None:
        """Project events the caller has just inserted, in its open transaction ``c``.

        Only when every view is at the position just before these events (nothing
        else waits to be projected): then the views commit with the events, and
        no query ever sees the log ahead of them. Otherwise returns None and
        :meth:`catch_up` applies them later, in order. After the transaction
        commits, pass the result to :meth:`committed`; if it fails, call :meth:`forget`.
        """
        first = events[0][0]
        positions = self.positions(c)
        start = min(positions.values())
        if start != max(positions.values()) or start >= first:
            return None
        if start < first - 1 and self._log_has_between(c, start, first):
            return None  # another writer's events are not projected yet
        self.follow(start)
        self._set_timeouts(c)
        work = _Batch(self, positions, c)
        work.prefetch({str(e.originator_id) for _, e in events})
        for position, event in events:
            work.take(position, event)
        self._write(c, work, positions, events[-1][0])
        return work

    def _log_has_between(self, c: Any, after: int, before: int) -> bool:
        table = self.app.recorder.events_table_name  # type: ignore[attr-defined]
        if self.sql.dialect == "sqlite":
            statement = f"SELECT 1 FROM {table} WHERE rowid > ? AND rowid < ? LIMIT 1"
        else:
            statement = (
                f"SELECT 1 FROM {self.qualified(table)}"
                " WHERE notification_id > ? AND notification_id < ? LIMIT 1"
            )
        return bool(self.sql.fetchall_in(c, statement, (after, before)))

    # -- one batch --------------------------------------------------------------------
    def _apply(self, batch: Sequence[Notification], positions: dict[str, int]) -> None:
        start = min(positions.values())
        if self._cached_at != start:
            self.forget()
        work = _Batch(self, positions)
        work.prefetch({str(n.originator_id) for n in batch})
        last = batch[-1].id
        position = batch[0].id
        try:
            for n in batch:
                position = n.id
                work.take(n.id, self.app.mapper.to_domain_event(n))
            position = batch[0].id
            with self.sql.transaction() as c:
                self._set_timeouts(c)
                self._write(c, work, positions, last)
        except IntegrityError:
            self.forget()
            raise
        except Exception as e:
            self.forget()
            raise _Failed(position, e) from e
        except BaseException:
            self.forget()
            raise
        self.committed(work)

    def _set_timeouts(self, c: Any) -> None:
        """On PostgreSQL, a view table locked by someone else fails the batch after a
        bounded wait instead of hanging every query behind it."""
        if self.sql.dialect == "postgres":
            c.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")

    def _write(self, c: Any, work: _Batch, positions: dict[str, int], last: int) -> None:
        work.last = last
        work.write(c)
        for view, pos in positions.items():
            if pos < last:
                self.tracking._insert_tracking(c, Tracking(TRACKING_PREFIX + view, last))

    def committed(self, work: _Batch) -> None:
        """The transaction that wrote ``work`` committed (from :meth:`_apply`, or from
        the writer after :meth:`apply_own`): remember its contacts, tell the readers."""
        for cv in work.contacts.values():
            cv.batch_entries.clear()
            cv.dirty.clear()
            cv.new = False
            self.contacts[cv.aggregate_id] = cv
            self.contacts.move_to_end(cv.aggregate_id)
        while len(self.contacts) > CACHE_CONTACTS:
            self.contacts.popitem(last=False)
        touched = [(cv.location_id, cv.contact_id) for cv in work.contacts.values()]
        for reader in self.readers:
            reader.changed(touched)
        # Only now: a check that finds the views at this position may trust the caches.
        self._cached_at = work.last
        if len(self.addresses) > CACHE_ADDRESSES:
            self.addresses.clear()

    def forget(self) -> None:
        """Drop what this process remembers of the views (someone else moved them)."""
        self.contacts.clear()
        self.addresses.clear()
        self._cached_at = None
        for reader in self.readers:
            reader.clear()


#: How long a batch waits for a lock on a view table (PostgreSQL), in milliseconds.
LOCK_TIMEOUT_MS = 2000


class _Failed(Exception):
    """Applying the batch failed at the event at ``position``."""

    def __init__(self, position: int, cause: BaseException) -> None:
        super().__init__(position, cause)
        self.position = position
        self.cause = cause


class _Batch:
    """Rows one batch produces, accumulated in memory, written in one go."""

    def __init__(self, projector: Projector, positions: dict[str, int], c: Any = None) -> None:
        self.p = projector
        self.sql = projector.sql
        self.c = c  # the writer's open transaction, when projecting its own events
        self.last = 0
        self.positions = positions
        self.contacts: dict[str, ContactView] = {}
        self.stats_before: dict[str, Counter[tuple[str, str]]] = {}
        self.addresses = projector.addresses  # id -> (location, ref, kind)
        self.audit: list[tuple[Any, ...]] = []
        self.new_addresses: list[tuple[str, str, str, str]] = []
        self.index: list[tuple[str, str, str, str, str]] = []
        self.unindex: set[tuple[str, str, str]] = set()  # (location, ref, contact) released

    def _fetchall(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self.c is not None:
            return self.sql.fetchall_in(self.c, statement, params)
        return self.sql.fetchall(statement, params)

    def wants(self, view: str, position: int) -> bool:
        return self.positions[view] < position

    # -- reading what earlier batches left ---------------------------------------------
    def prefetch(self, ids: set[str]) -> None:
        """Load, in a few queries, the rows of every aggregate the batch touches."""
        cached = self.p.contacts
        missing = [i for i in ids if i not in cached and i not in self.addresses]
        for chunk in _chunks(missing, 500):
            marks = ", ".join("?" * len(chunk))
            for row in self._fetchall(
                "SELECT aggregate_id, location_id, contact_id, version, last_occurred, state"
                f" FROM dnd_status_contacts WHERE aggregate_id IN ({marks})",
                chunk,
            ):
                cached[row[0]] = ContactView(
                    aggregate_id=row[0],
                    location_id=row[1],
                    contact_id=row[2],
                    version=int(row[3]),
                    last_occurred=datetime.fromisoformat(row[4]) if row[4] else None,
                    state=DndState.from_list(orjson.loads(row[5])),
                )
            for row in self._fetchall(
                "SELECT aggregate_id, location_id, ref, kind"
                f" FROM dnd_addresses WHERE aggregate_id IN ({marks})",
                chunk,
            ):
                self.addresses[row[0]] = (str(row[1]), str(row[2]), str(row[3]))

    def contact(self, aggregate_id: str) -> ContactView | None:
        cv = self.contacts.get(aggregate_id)
        if cv is not None:
            return cv
        cv = self.p.contacts.get(aggregate_id)
        if cv is None:
            return None
        self.contacts[aggregate_id] = cv
        self.stats_before[aggregate_id] = stats_keys(cv)
        return cv

    def address(self, aggregate_id: str) -> tuple[str, str, str]:
        found = self.addresses.get(aggregate_id)
        if found is None:
            rows = self._fetchall(
                "SELECT location_id, ref, kind FROM dnd_addresses WHERE aggregate_id = ?",
                (aggregate_id,),
            )
            row = rows[0] if rows else None
            if row is None:
                raise RuntimeError(f"address {aggregate_id} has no Seen event before its others")
            found = (str(row[0]), str(row[1]), str(row[2]))
            self.addresses[aggregate_id] = found
        return found

    def history(self, cv: ContactView) -> list[Entry]:
        rows = self._fetchall(
            f"SELECT {ENTRY_COLUMNS} FROM dnd_audit WHERE location_id = ? AND contact_id = ?"
            " AND effect_data != '{}' ORDER BY position",
            (cv.location_id, cv.contact_id),
        )
        stored = [entry_from_row(r) for r in rows]
        return [*stored, *cv.batch_entries]

    # -- taking events -----------------------------------------------------------------
    def take(self, position: int, event: Any) -> None:
        if isinstance(event, Contact.Event):
            self._contact_event(position, event)
        elif isinstance(event, Address.Event):
            self._address_event(position, event)

    def _contact_event(self, position: int, e: Any) -> None:
        aid = str(e.originator_id)
        if not self.wants("status", position):
            return
        if isinstance(e, Contact.Registered):
            cv = ContactView(
                aid, e.location_id, e.contact_id, version=e.originator_version, new=True
            )
            self.contacts[aid] = cv
            self.stats_before[aid] = Counter()
            cv.dirty.update(ALL_CHANNELS)
        else:
            found = self.contact(aid)
            if found is None:
                raise RuntimeError(f"contact {aid} has events before its registration")
            cv = found
        before = cv.statuses()
        detail: dict[str, Any]
        if isinstance(e, Contact.DndEvent):
            effect = Effect.from_dict(e.effect)
            entry = Entry(
                occurred_at=e.occurred_at, recorded_at=e.timestamp, seq=e.originator_version,
                event=type(e).__name__, event_id=f"{aid}:{e.originator_version}", effect=effect,
            )  # fmt: skip
            late = cv.last_occurred is not None and entry.occurred_at < cv.last_occurred
            cv.take(entry, self.history(cv) if late else None)
            channels, words, effect_data = effect.touched, effect_words(effect), e.effect
            detail = e.detail
        else:
            cv.version = e.originator_version
            channels, words, effect_data = (), "none", {}
            detail = {k: list(getattr(e, k)) for k in ("phones", "emails") if hasattr(e, k)}
            detail.update(getattr(e, "detail", {}))
        before_s, after_s = changed(before, cv.statuses(), channels)
        self.audit.append((
            position, aid, e.originator_version, cv.location_id, cv.contact_id, None,
            iso(getattr(e, "occurred_at", e.timestamp)), iso(e.timestamp), type(e).__name__,
            _str(getattr(e, "source", None)), getattr(e, "actor", None),
            ",".join(NAME[c] for c in channels), words, _dumps(effect_data), before_s, after_s,
            getattr(e, "idempotency_key", None), getattr(e, "policy_version", None),
            evidence_of(detail), _dumps(detail),
        ))  # fmt: skip

    def _address_event(self, position: int, e: Any) -> None:
        aid = str(e.originator_id)
        if isinstance(e, Address.Seen):
            self.addresses[aid] = (e.location_id, e.ref, str(e.kind))
            if self.wants("addresses", position):
                self.new_addresses.append((aid, e.location_id, e.ref, str(e.kind)))
        location_id, ref, kind = self.address(aid)
        if isinstance(e, Address.Claimed) and self.wants("addresses", position):
            self.unindex.discard((location_id, ref, e.contact_id))
            self.index.append((location_id, ref, e.contact_id, kind, iso(e.occurred_at)))
        if isinstance(e, Address.Released) and self.wants("addresses", position):
            self.index = [r for r in self.index if r[:3] != (location_id, ref, e.contact_id)]
            self.unindex.add((location_id, ref, e.contact_id))
        if not self.wants("audit", position):
            return
        name, channels, words, effect_data, detail = "Address.Seen", "", "none", "{}", {}
        source = actor = key = policy = None
        if isinstance(e, Address.Claimed | Address.Released):
            name, detail = f"Address.{type(e).__name__}", {"contact_id": e.contact_id}
        elif isinstance(e, Address.SignalRecorded):
            effect = Effect.from_dict(e.effect)
            name, words = f"Address.{e.event}", effect_words(effect)
            channels = ",".join(NAME[c] for c in effect.channels)
            effect_data, detail = _dumps(e.effect), e.detail
            source, actor, key, policy = (
                _str(e.source),
                e.actor,
                e.idempotency_key,
                e.policy_version,
            )
        self.audit.append((
            position, aid, e.originator_version, location_id, None, ref,
            iso(getattr(e, "occurred_at", e.timestamp)), iso(e.timestamp), name, source, actor,
            channels, words, effect_data, "{}", "{}", key, policy, evidence_of(detail),
            _dumps(detail),
        ))  # fmt: skip

    # -- writing ---------------------------------------------------------------------------
    def write(self, c: Any) -> None:
        q = self.sql.q
        if self.new_addresses:
            c.executemany(
                q(
                    "INSERT INTO dnd_addresses (aggregate_id, location_id, ref, kind) VALUES (?, ?, ?, ?)"
                ),
                self.new_addresses,
            )
        if self.unindex:
            c.executemany(
                q(
                    "DELETE FROM dnd_address_index WHERE location_id = ? AND ref = ? AND contact_id = ?"
                ),
                sorted(self.unindex),
            )
        if self.index:
            c.executemany(
                q("INSERT INTO dnd_address_index (location_id, ref, contact_id, kind, since)"
                  " VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"),
                self.index,
            )  # fmt: skip
        if self.audit:
            c.executemany(q(_AUDIT_INSERT), [r for r in self.audit if self.wants("audit", r[0])])
        self._write_status(c)

    def _write_status(self, c: Any) -> None:
        q = self.sql.q
        contacts, channel_rows, stats = [], [], Counter[tuple[str, str, str]]()
        for aid, cv in self.contacts.items():
            contacts.append((
                aid, cv.location_id, cv.contact_id, NAME[cv.overall], cv.version,
                iso(cv.last_occurred) if cv.last_occurred else None, _dumps(cv.state.to_list()),
            ))  # fmt: skip
            # When the overall status moved, every channel row carries the new one.
            before = self.stats_before.get(aid, Counter())
            overall_moved = cv.new or before.get(("overall", NAME[cv.overall]), 0) == 0
            for ch in ALL_CHANNELS if overall_moved else sorted(cv.dirty):
                s = cv.channels[ch]
                channel_rows.append((
                    cv.location_id, cv.contact_id, NAME[ch], NAME[s.status],
                    iso(s.since) if s.since else None, s.code, s.message, s.event, s.event_id,
                    NAME[cv.overall],
                ))  # fmt: skip
            after = stats_keys(cv)
            for key in set(before) | set(after):
                delta = after[key] - before[key]
                if delta:
                    stats[(cv.location_id, *key)] += delta
        if contacts:
            c.executemany(q(_CONTACT_UPSERT), contacts)
        if channel_rows:
            c.executemany(q(_CHANNEL_UPSERT), channel_rows)
        if stats:
            c.executemany(
                q("INSERT INTO dnd_stats (location_id, dimension, value, count) VALUES (?, ?, ?, ?)"
                  " ON CONFLICT (location_id, dimension, value) DO UPDATE"
                  " SET count = dnd_stats.count + excluded.count"),
                [(*k, v) for k, v in stats.items() if v],
            )  # fmt: skip


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _dumps(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_SORT_KEYS).decode()


def _str(v: Any) -> str | None:
    return None if v is None else str(v.value if hasattr(v, "value") else v)


_AUDIT_INSERT = (
    "INSERT INTO dnd_audit (position, aggregate_id, version, location_id, contact_id,"
    " address_ref, occurred_at, recorded_at, event, source, actor, channels, effect, effect_data,"
    " before, after, idempotency_key, policy_version, evidence, detail)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_CONTACT_UPSERT = (
    "INSERT INTO dnd_status_contacts (aggregate_id, location_id, contact_id, overall, version,"
    " last_occurred, state) VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (aggregate_id) DO UPDATE SET overall = excluded.overall,"
    " version = excluded.version, last_occurred = excluded.last_occurred, state = excluded.state"
)
_CHANNEL_UPSERT = (
    "INSERT INTO dnd_status_channels (location_id, contact_id, channel, status, since, code,"
    " message, cause_event, cause_event_id, overall) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (location_id, contact_id, channel) DO UPDATE SET status = excluded.status,"
    " since = excluded.since, code = excluded.code, message = excluded.message,"
    " cause_event = excluded.cause_event, cause_event_id = excluded.cause_event_id,"
    " overall = excluded.overall"
)

__all__ = ["BATCH_SIZE", "REBUILD_BATCH_SIZE", "Projector", "iso"]
