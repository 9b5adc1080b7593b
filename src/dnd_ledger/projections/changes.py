"""The change feed: every committed change of a contact's per-channel state, once, in log order.

A tracked projection with its own position (``dnd_feed_positions``), separate
from the views': ``projections rebuild`` empties and re-derives the views but
never touches the feed, so a change is never emitted twice nor renumbered.

The feed reads the audit view's before/after of each event, up to the audit
view's own tracking position (rows up to it are complete: they commit together
with it). Each batch of change records is written in one transaction with the
feed's new position, guarded by a compare-and-set on the old one: two
processes catching up at once cannot both write the same batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from eventsourcing.persistence import IntegrityError

from dnd_ledger.domain.reviews import CONFIRMED, DISMISSED, SUSPECTED

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger
    from dnd_ledger.projections.audit_trail import AuditRecord

FEED = "changes"
BATCH = 1000
#: The longest a reader may long-poll for new changes, in seconds.
MAX_WAIT = 30.0
MAX_PAGE = 1000
#: The same advisory lock the ledger creates its tables under (PostgreSQL).
_CREATE_LOCK = 74201

TABLES = [
    "CREATE TABLE IF NOT EXISTS dnd_changes ("
    " id BIGINT PRIMARY KEY, position BIGINT NOT NULL, location_id TEXT NOT NULL,"
    " contact_id TEXT NOT NULL, channel TEXT NOT NULL, before TEXT NOT NULL,"
    " after TEXT NOT NULL, cause_event TEXT NOT NULL, cause_event_id TEXT NOT NULL,"
    " occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS dnd_changes_location ON dnd_changes (location_id, id)",
    "CREATE TABLE IF NOT EXISTS dnd_feed_positions ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL)",
]


@dataclass(frozen=True)
class Change:
    id: int
    position: int
    location_id: str
    contact_id: str
    channel: str
    before: str
    after: str
    cause_event: str
    cause_event_id: str
    occurred_at: str
    recorded_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "position": self.position,
            "location_id": self.location_id,
            "contact_id": self.contact_id,
            "channel": self.channel,
            "before": self.before,
            "after": self.after,
            "cause_event": self.cause_event,
            "cause_event_id": self.cause_event_id,
            "occurred_at": self.occurred_at,
            "recorded_at": self.recorded_at,
        }

    def body(self) -> bytes:
        """The change as compact JSON (keys sorted): a webhook's or a message's body."""
        return orjson.dumps(self.to_json(), option=orjson.OPT_SORT_KEYS)


_COLUMNS = (
    "id, position, location_id, contact_id, channel, before, after, cause_event,"
    " cause_event_id, occurred_at, recorded_at"
)


#: A review item's own changes (its channel's "before"/"after" are the item's states).
REVIEW_STATES = {
    SUSPECTED: ("none", "review-open"),
    CONFIRMED: ("review-open", "review-confirmed"),
    DISMISSED: ("review-open", "review-dismissed"),
}


def changes_of(
    event: str, channels: str, before_json: str, after_json: str
) -> list[tuple[str, str, str]]:
    """(channel, before, after) of each channel an audit row's event changed, then of
    the review item it opened or resolved, if any."""
    before, after = orjson.loads(before_json or "{}"), orjson.loads(after_json or "{}")
    found = [
        (str(ch), str(before.get(ch, "inactive")), str(a))
        for ch, a in after.items()
        if before.get(ch, "inactive") != a
    ]
    review = REVIEW_STATES.get(event)
    if review is not None:
        found += [(ch, *review) for ch in channels.split(",") if ch]
    return found


class ChangeFeed:
    def __init__(self, ledger: DndLedger) -> None:
        self.ledger = ledger
        self.sql = ledger.sql
        self.create_tables()

    def create_tables(self) -> None:
        if self.sql.dialect == "postgres":
            with self.sql.datastore.get_connection() as conn:
                conn.execute(f"SELECT pg_advisory_lock({_CREATE_LOCK})")
                try:
                    self._create()
                finally:
                    conn.execute(f"SELECT pg_advisory_unlock({_CREATE_LOCK})")
        else:
            self._create()

    def _create(self) -> None:
        with self.sql.transaction() as c:
            for s in TABLES:
                c.execute(s)
            c.execute(
                self.sql.q(
                    "INSERT INTO dnd_feed_positions (name, position) VALUES (?, 0)"
                    " ON CONFLICT (name) DO NOTHING"
                ),
                (FEED,),
            )

    # -- positions -----------------------------------------------------------------
    def position(self) -> int:
        row = self.sql.fetchone("SELECT position FROM dnd_feed_positions WHERE name = ?", (FEED,))
        return int(row[0]) if row else 0

    def head(self) -> int:
        row = self.sql.fetchone("SELECT MAX(id) FROM dnd_changes")
        return int(row[0] or 0) if row else 0

    # -- catch-up ------------------------------------------------------------------
    def catch_up(self, *, batch: int = BATCH) -> int:
        """Turn audit rows past the feed's position into change records; returns how many."""
        made = 0
        while True:
            start = self.position()
            upto = self.ledger.projector.positions()["audit"]
            if upto <= start:
                return made
            rows = self.ledger.views.trail.read(
                "a.position > ? AND a.position <= ?",
                (start, upto, batch),
                tail=" ORDER BY a.position LIMIT ?",
            )
            end = rows[-1].position if len(rows) == batch else upto
            try:
                made += self._write(start, end, rows)
            except (IntegrityError, _Moved):
                continue  # another process wrote this batch first: re-read the position

    def _write(self, start: int, end: int, rows: list[AuditRecord]) -> int:
        q = self.sql.q
        with self.sql.transaction() as c:
            moved = self.sql.fetchall_in(
                c,
                "UPDATE dnd_feed_positions SET position = ? WHERE name = ? AND position = ?"
                " RETURNING name",
                (end, FEED, start),
            )
            if len(moved) != 1:
                raise _Moved
            found = self.sql.fetchall_in(c, "SELECT MAX(id) FROM dnd_changes")
            next_id = int(found[0][0] or 0) + 1
            records = []
            for r in rows:
                if r.contact_id is None:
                    continue  # an address's event: no contact state changed
                # The event is decoded only for a review's channels or a change's times.
                channels = r.fields.channels if r.event in REVIEW_STATES else ""
                found = changes_of(r.event, channels, r.before, r.after)
                for channel, before, after in found:
                    records.append((
                        next_id, r.position, r.location_id, r.contact_id, channel, before,
                        after, r.event, f"{r.aggregate_id}:{r.version}", r.fields.occurred_at,
                        r.fields.recorded_at,
                    ))  # fmt: skip
                    next_id += 1
            if records:
                c.executemany(
                    q(
                        f"INSERT INTO dnd_changes ({_COLUMNS})"
                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                    ),
                    records,
                )
            return len(records)

    def current(self) -> None:
        """Make the feed reflect every write acknowledged before this call (or raise
        :class:`LedgerUnavailable`, as every query does)."""
        self.ledger.ensure_current()
        self.catch_up()

    # -- reading -------------------------------------------------------------------
    def page(self, location_id: str | None, after: int = 0, limit: int = 100) -> list[Change]:
        """Changes after the cursor ``after`` (a change id), oldest first, as stored."""
        where = "id > ?"
        params: list[Any] = [after]
        if location_id is not None:
            where += " AND location_id = ?"
            params.append(location_id)
        rows = self.sql.fetchall(
            f"SELECT {_COLUMNS} FROM dnd_changes WHERE {where} ORDER BY id LIMIT ?",
            (*params, limit),
        )
        return [_change(r) for r in rows]

    def wait_page(
        self,
        location_id: str | None,
        after: int = 0,
        limit: int = 100,
        wait: float = 0.0,
        *,
        poll: float = 0.25,
        sleep: Callable[[float], None] = time.sleep,
    ) -> list[Change]:
        """A current page; when empty, checks again until ``wait`` seconds have passed."""
        give_up = time.monotonic() + min(max(wait, 0.0), MAX_WAIT)
        while True:
            self.current()
            found = self.page(location_id, after, limit)
            if found or time.monotonic() >= give_up:
                return found
            sleep(min(poll, max(give_up - time.monotonic(), 0.0)))


class _Moved(Exception):
    """The feed's position moved under this batch."""


def _change(r: tuple[Any, ...]) -> Change:
    return Change(
        int(r[0]), int(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), str(r[6]),
        str(r[7]), str(r[8]), str(r[9]), str(r[10]),
    )  # fmt: skip


def feed_of(ledger: DndLedger) -> ChangeFeed:
    """The ledger's change feed (made, and its tables created, on first use)."""
    found = ledger.__dict__.get("_change_feed")
    if found is None:
        found = ledger.__dict__["_change_feed"] = ChangeFeed(ledger)
    return found


__all__ = ["MAX_PAGE", "MAX_WAIT", "Change", "ChangeFeed", "changes_of", "feed_of"]
