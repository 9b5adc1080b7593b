"""Reads from the views: the hot path never replays an aggregate."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from dnd_ledger.domain.errors import LedgerUnavailable
from dnd_ledger.domain.state import ChannelState, Entry, overall
from dnd_ledger.domain.timecheck import check_query_time
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, Overall
from dnd_ledger.pg_reads import PgReads
from dnd_ledger.projections.audit_trail import AuditTrail
from dnd_ledger.projections.rows import iso
from dnd_ledger.projections.status_row import CHANNEL_COLUMNS, COLUMNS, state
from dnd_ledger.storage.persistence import Database, Sql, row_values

AUDIT_FIELDS = (
    "position", "location_id", "contact_id", "occurred_at", "recorded_at", "event", "source",
    "actor", "channels", "effect", "reason", "before", "after", "idempotency_key", "policy_version",
    "evidence",
)  # fmt: skip


#: Stored text -> enum member, by dict lookup (an Enum call costs ten times as much).
_OVERALL = {o.value: o for o in Overall}
_KEY = " WHERE location_id = ? AND contact_id = ?"

Found = tuple[ChannelState, Overall]


class Freshness(Protocol):
    """The views' freshness check (:class:`~dnd_ledger.projections.freshness.ViewFreshness`)."""

    @property
    def probe(self) -> tuple[str, str]: ...

    def ensure(self) -> None: ...

    def confirms(self, values: tuple[Any, ...]) -> bool: ...


def _reason(effect: dict[str, Any]) -> str | None:
    code, message = effect.get("code"), effect.get("message")
    if code and message:
        return f"{code}: {message}"
    return message or code or None


#: How long one read of the views may wait (a lock, a slow server) before the
#: query fails closed with :class:`LedgerUnavailable`.
READ_TIMEOUT_MS = 5000

#: Contacts whose current status / whole history a reader keeps in memory.
STATUS_CACHE = 50_000
HISTORY_CACHE = 5_000

ContactKey = tuple[str, str]


class ViewReader:
    """Reads the views, remembering what it read until the projector says it changed.

    The projector calls :meth:`changed` with the contacts each batch it writes
    touched, and :meth:`clear` when it finds that another process moved the
    views; so a cached answer is never older than the views themselves.
    """

    def __init__(
        self,
        sql: Sql,
        trail: AuditTrail,
        sqlite_path: str | None = None,
        postgres: Database | None = None,
    ) -> None:
        self.sql = sql
        #: The audit view with its events' fields (a history, the audit export).
        self.trail = trail
        # Status reads go through plain connections: for a SQLite file a read-only
        # one per thread, whose bare SELECT is a read snapshot of its own under WAL;
        # for PostgreSQL autocommit ones from one bounded pool (pg_reads), one round
        # trip instead of the datastore's BEGIN, SELECT and ROLLBACK.
        self._sqlite_path = sqlite_path
        self._postgres = postgres
        #: PostgreSQL: one bounded pool of autocommit connections for every thread.
        self._pg = PgReads(postgres, READ_TIMEOUT_MS) if postgres is not None else None
        self._local = threading.local()
        #: Moves when the connections are closed: a data version read on an earlier
        #: connection says nothing of a later one's (see ViewFreshness).
        self.generation = 0
        self._opened: list[Any] = []  # every thread's connection, closed by close()
        self._opened_lock = threading.Lock()
        self._status: dict[ContactKey, dict[Channel, ChannelState]] = {}
        self._overall: dict[ContactKey, Overall] = {}
        self._history: dict[ContactKey, list[Entry]] = {}
        self._one_cache: dict[tuple[str, str, Channel], tuple[ChannelState, Overall]] = {}
        #: Moves on every invalidation: a row read before one is not cached after it
        #: (it may predate the change that invalidated it).
        self._epoch = 0
        # The contact's one status row, by its (location_id, contact_id) key: one
        # channel's two columns and the overall status, or every channel's.
        self._one = {
            ch: sql.q(f"SELECT {st}, {cause}, overall FROM dnd_status_contacts{_KEY}")
            for ch, (st, cause) in COLUMNS.items()
        }
        self._all = sql.q(f"SELECT {CHANNEL_COLUMNS} FROM dnd_status_contacts{_KEY}")
        #: The same columns and what a freshness check reads, in one statement (see
        #: :meth:`current_channel`), made on first use.
        self._probes: dict[Channel, str] = {}

    def _read(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        if self._pg is not None:
            return self._pg.read(statement, params)
        if self._sqlite_path is None:
            return self._read_pooled(statement, params)
        cursor: sqlite3.Cursor | None = getattr(self._local, "cursor", None)
        if cursor is None:
            try:
                uri = Path(self._sqlite_path).resolve().as_uri() + "?mode=ro"
                conn = sqlite3.connect(
                    uri, uri=True, isolation_level=None, check_same_thread=False,
                    cached_statements=64, timeout=READ_TIMEOUT_MS / 1000,
                )  # fmt: skip
                cursor = conn.cursor()
                cursor.execute("SELECT 1")
            except sqlite3.OperationalError:
                # A file this process cannot open read-only this way: the pooled path.
                self._sqlite_path = None
                return self._read(statement, params)
            self._local.conn = conn
            self._local.cursor = cursor
            with self._opened_lock:
                self._opened.append(conn)
        try:
            rows: list[tuple[Any, ...]] = cursor.execute(statement, params).fetchall()
        except sqlite3.OperationalError as e:
            raise LedgerUnavailable(f"the views cannot be read: {e}") from None
        return rows

    def data_version(self) -> int | None:
        """On a SQLite file: this thread's reading connection's ``PRAGMA data_version``,
        which changes whenever any connection commits; None on other engines."""
        if self._postgres is not None or self._sqlite_path is None:
            return None
        rows = self._read("PRAGMA data_version", ())
        return int(rows[0][0]) if self._sqlite_path is not None else None

    def read(self, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """One statement through this thread's reading connection (bounded in time)."""
        return self._read(statement, params)

    def _read_pooled(self, statement: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self.sql.transaction(commit=False) as c:
            c.execute(statement, params)
            return [row_values(r) for r in c.fetchall()]

    def close(self) -> None:
        """Close the connections the reader opened (any thread's)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for conn in opened:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()
        self.generation += 1
        if self._pg is not None:
            self._pg.close()

    # -- cache coherence (called by the projector) ---------------------------------
    def changed(self, keys: Iterable[ContactKey]) -> None:
        self._epoch += 1
        for key in keys:
            self._status.pop(key, None)
            self._overall.pop(key, None)
            self._history.pop(key, None)
            for ch in ALL_CHANNELS:
                self._one_cache.pop((*key, ch), None)

    def clear(self) -> None:
        self._epoch += 1
        self._status.clear()
        self._overall.clear()
        self._history.clear()
        self._one_cache.clear()

    # -- current status --------------------------------------------------------------
    def channel(self, location_id: str, contact_id: str, channel: Channel) -> Found | None:
        """One channel's state and the contact's overall status: the decision's inputs.
        The caller has made sure the views are current (see :meth:`current_channel`)."""
        cached = self._cached_one(location_id, contact_id, channel)
        if cached is not None:
            return cached
        epoch = self._epoch
        rows = self._read(self._one[channel], (location_id, contact_id))
        if not rows:
            return None
        return self._keep_one(location_id, contact_id, channel, rows[0], epoch)

    def current_channel(
        self, location_id: str, contact_id: str, channel: Channel, freshness: Freshness
    ) -> Found | None:
        """:meth:`channel` once ``freshness`` holds. On a SQLite file, a row this reader
        does not hold is read in the statement that reads what a freshness check reads,
        on this thread's read-only connection (the one its checks run on): when that
        shows nobody committed since the thread's last passed check, the row is current
        and the statement was the check; otherwise the full check runs first and the
        row is read again."""
        if self._cached_one(location_id, contact_id, channel) is None:
            epoch = self._epoch
            row = self._probe_row(location_id, contact_id, channel, freshness)
            if row is not None and freshness.confirms(tuple(row[3:])):
                if row[2] is None:
                    return None
                return self._keep_one(location_id, contact_id, channel, row, epoch)
        freshness.ensure()
        return self.channel(location_id, contact_id, channel)

    def _probe_row(
        self, location_id: str, contact_id: str, channel: Channel, freshness: Freshness
    ) -> tuple[Any, ...] | None:
        """The probe's one row (status columns NULL when the contact has none), or None
        where there is none (PostgreSQL, the in-memory backend, a thread not yet
        connected)."""
        cursor: sqlite3.Cursor | None = getattr(self._local, "cursor", None)
        if cursor is None or self._pg is not None:
            return None
        statement = self._probes.get(channel)
        if statement is None:
            source, columns = freshness.probe
            st, cause = COLUMNS[channel]
            statement = self._probes[channel] = (
                f"SELECT s.{st}, s.{cause}, s.overall, {columns} FROM {source}"
                " LEFT JOIN dnd_status_contacts AS s ON s.location_id = ? AND s.contact_id = ?"
            )
        try:
            row: tuple[Any, ...] = cursor.execute(statement, (location_id, contact_id)).fetchone()
        except sqlite3.OperationalError as e:
            raise LedgerUnavailable(f"the views cannot be read: {e}") from None
        return row

    def _cached_one(self, location_id: str, contact_id: str, channel: Channel) -> Found | None:
        channels = self._status.get((location_id, contact_id))
        if channels is not None:
            return channels[channel], self._overall[(location_id, contact_id)]
        return self._one_cache.get((location_id, contact_id, channel))

    def _keep_one(
        self, location_id: str, contact_id: str, channel: Channel, row: Any, epoch: int
    ) -> Found:
        found = (state(row[0], row[1]), _OVERALL[row[2]])
        if len(self._one_cache) >= STATUS_CACHE:
            self._one_cache.clear()
        if epoch == self._epoch:
            self._one_cache[(location_id, contact_id, channel)] = found
        return found

    def channels(self, location_id: str, contact_id: str) -> dict[Channel, ChannelState] | None:
        key = (location_id, contact_id)
        cached = self._status.get(key)
        if cached is not None:
            return cached
        if len(self._status) >= STATUS_CACHE:
            self.clear()
        epoch = self._epoch
        rows = self._read(self._all, (location_id, contact_id))
        if not rows:
            return None
        row = rows[0]
        channels = {ch: state(row[2 * i], row[2 * i + 1]) for i, ch in enumerate(ALL_CHANNELS)}
        if epoch == self._epoch:
            self._overall[key] = overall(channels)
            self._status[key] = channels
        return channels

    def entries(
        self, location_id: str, contact_id: str, as_of: datetime | None, known_at: datetime | None
    ) -> list[Entry]:
        """The contact's effects from the audit trail (its DND events), filtered on both
        timelines."""
        key = (location_id, contact_id)
        every = self._history.get(key)
        if every is None:
            epoch = self._epoch
            every = self.trail.entries(location_id, contact_id, fetch=self._read)
            if len(self._history) >= HISTORY_CACHE:
                self._history.clear()
            if epoch == self._epoch:
                self._history[key] = every
        return [
            e
            for e in every
            if (as_of is None or e.occurred_at <= as_of)
            and (known_at is None or e.recorded_at <= known_at)
        ]

    def audit(
        self,
        location_id: str | None = None,
        contact_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[dict[str, Any]]:
        since = check_query_time("since", since)
        until = check_query_time("until", until)
        where, params = [], []
        if location_id is not None:
            where.append("a.location_id = ?")
            params.append(location_id)
        if contact_id is not None:
            where.append("a.contact_id = ?")
            params.append(contact_id)
        low = iso(since) if since is not None else None
        high = iso(until) if until is not None else None
        if location_id is not None and contact_id is not None:  # through its aggregate
            found = self.trail.of_contact(location_id, contact_id)
        else:
            found = self.trail.read(" AND ".join(where), params)
        out = []
        for r in found:
            f = r.fields
            if (low is not None and f.occurred_at < low) or (
                high is not None and f.occurred_at > high
            ):
                continue
            out.append({
                "position": r.position, "location_id": r.location_id, "contact_id": r.contact_id,
                "occurred_at": f.occurred_at, "recorded_at": f.recorded_at, "event": r.event,
                "source": f.source, "actor": f.actor, "channels": f.channels, "effect": f.effect,
                "reason": _reason(json.loads(f.effect_data)), "before": json.loads(r.before),
                "after": json.loads(r.after), "idempotency_key": f.idempotency_key,
                "policy_version": f.policy_version, "evidence": f.evidence,
            })  # fmt: skip
        return out

    def stats(self, location_id: str | None = None) -> dict[str, dict[str, dict[str, int]]]:
        sql = "SELECT location_id, dimension, value, count FROM dnd_stats"
        params: list[Any] = []
        if location_id is not None:
            sql += " WHERE location_id = ?"
            params.append(location_id)
        out: dict[str, dict[str, dict[str, int]]] = {}
        for loc, dim, value, count in self.sql.fetchall(sql + " ORDER BY 1, 2, 3", params):
            if int(count):
                out.setdefault(loc, {}).setdefault(dim, {})[value] = int(count)
        return out
