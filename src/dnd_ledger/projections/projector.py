"""The projector: catches the views up with the notification log, in batches.

Each batch of notifications is decoded once, turned into view rows, and
written in ONE transaction together with each view's tracking position (an
eventsourcing tracking recorder), so every event is applied exactly once, also
after a crash: a batch is either all there, rows and position, or not at all.
If another process applied the same batch first, the tracking insert fails,
the transaction rolls back, and the next round starts from the new position.

This module is the loop (positions, catch-up, rebuild, the writer's own events,
the caches kept between batches); the rows of one batch are built and written by
:mod:`dnd_ledger.projections.batch`, a batch that cannot be applied is recorded by
:mod:`dnd_ledger.projections.failures`.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import IntegrityError, Notification

from dnd_ledger.domain.errors import LedgerUnavailable
from dnd_ledger.projections import own, upgrade
from dnd_ledger.projections.audit_trail import AuditTrail
from dnd_ledger.projections.batch import Batch
from dnd_ledger.projections.failures import ErrorRecord, Failed
from dnd_ledger.projections.rows import ContactView
from dnd_ledger.projections.schema import (
    CLEAR,
    ERRORS_TABLE,
    TRACKING_PREFIX,
    VIEWS,
    statements,
)
from dnd_ledger.storage.eventstore import insert_tracking

if TYPE_CHECKING:
    from dnd_ledger.storage.ports import EventLog

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
#: How long a batch waits for a lock on a view table (PostgreSQL), in milliseconds.
LOCK_TIMEOUT_MS = 2000


class Projector:
    def __init__(self, app: EventLog) -> None:
        self.app = app
        self.sql = app.sql
        self.tracking: Any = app.factory.tracking_recorder()
        # What this process last wrote, kept between batches. Valid only while
        # nobody else moved the views: checked against the position each batch.
        self.contacts: OrderedDict[str, ContactView] = OrderedDict()
        self.addresses: dict[str, tuple[str, str, str]] = {}
        self._cached_at: int | None = None
        self.errors = ErrorRecord(app.sql)
        self.trail = AuditTrail.of(app)
        #: Told which contacts each written batch changed, and when to forget all.
        self.readers: list[Any] = []

    def create_tables(self) -> None:
        """The views' tables; a status view of an earlier layout is dropped and its
        views' positions reset, so catch-up rebuilds them (:mod:`.upgrade`)."""
        self.tracking.create_table()
        self.sql.execute(upgrade.META_TABLE)
        with self.sql.transaction() as c:
            stale = upgrade.stale_layout(self.sql, c)
            if stale:
                upgrade.drop_old(c)
            for s in statements(self.sql.dialect):
                c.execute(s)
            c.execute(ERRORS_TABLE)
            if stale:
                upgrade.reset(self.sql, c, self.tracking_table(), STATE_VIEWS)
        if stale:
            self.forget()

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
                    self.errors.clear(start)
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
            except Failed as failed:
                lag = self.head() - start
                self.errors.record(failed.position, failed.cause)
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
        return self.errors.read()

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
        """A table's name, with its schema on PostgreSQL (see EventLog.qualified)."""
        return self.app.qualified(table)

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
    def apply_own(
        self,
        c: Any,
        events: Sequence[tuple[int, Any]],
        aggregates: Mapping[Any, Any],
    ) -> Batch | None:
        """Project events the caller has just inserted, in its open transaction ``c``,
        from the ``aggregates`` (by id) that triggered them (:mod:`.own`; the events
        are folded as catch-up folds them when an aggregate's notes are missing).

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
        work = Batch(self.sql, self.contacts, self.addresses, positions, c, trail=self.trail)
        if not own.fill(work, events, aggregates):
            work.prefetch({str(e.originator_id) for _, e in events})
            for position, event in events:
                work.take(position, event)
        self._write(c, work, positions, events[-1][0])
        return work

    def _log_has_between(self, c: Any, after: int, before: int) -> bool:
        table = self.app.events_table
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
        last = batch[-1].id
        position = batch[0].id
        try:
            # What the batch reads of the views, in one read transaction bounded like
            # the write: a view table locked by someone else fails the batch.
            with self.sql.transaction(commit=False) as r:
                self._set_timeouts(r)
                work = Batch(
                    self.sql, self.contacts, self.addresses, positions, r, trail=self.trail
                )
                work.prefetch({str(n.originator_id) for n in batch})
                for n in batch:
                    position = n.id
                    work.take(n.id, self.app.mapper.to_domain_event(n))
            work.c = None  # that transaction has ended
            position = batch[0].id
            with self.sql.transaction() as c:
                self._set_timeouts(c)
                self._write(c, work, positions, last)
        except IntegrityError:
            self.forget()
            raise
        except Exception as e:
            self.forget()
            raise Failed(position, e) from e
        except BaseException:
            self.forget()
            raise
        self.committed(work)

    def _set_timeouts(self, c: Any) -> None:
        """On PostgreSQL, a view table locked by someone else fails the batch after a
        bounded wait instead of hanging every query behind it."""
        if self.sql.dialect == "postgres":
            c.execute(f"SET LOCAL lock_timeout = {LOCK_TIMEOUT_MS}")

    def _write(self, c: Any, work: Batch, positions: dict[str, int], last: int) -> None:
        work.last = last
        work.write(c)
        for view, pos in positions.items():
            if pos < last:
                insert_tracking(self.tracking, c, TRACKING_PREFIX + view, last)

    def committed(self, work: Batch) -> None:
        """The transaction that wrote ``work`` committed (from :meth:`_apply`, or from
        the writer after :meth:`apply_own`): remember its contacts, tell the readers."""
        for cv in work.contacts.values():
            if cv.aggregate_id in work.borrowed:
                self.contacts.pop(cv.aggregate_id, None)  # its state is an aggregate's
                continue
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


__all__ = ["BATCH_SIZE", "REBUILD_BATCH_SIZE", "Projector"]
