"""Signed webhooks to subscribers: at-least-once, in order per contact.

Per subscriber, the database keeps its position in the change feed
(``dnd_subscriber_positions``) and the changes that wait for a retry
(``dnd_subscriber_pending``): a change that fails is retried with exponential
backoff until ``give_up_hours``; the same contact's later changes queue behind
it (order per contact), while other contacts' changes keep flowing. A change
given up is kept in ``dnd_subscriber_failures``. The position advances only
after a change is sent (or queued): a crash re-sends at most the one in flight,
which the receiver recognises by its ``X-Dnd-Ledger-Delivery`` id.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dnd_ledger.delivery.subscriber import DELIVERY_HEADER, SIGNATURE_HEADER, Subscriber, sign
from dnd_ledger.projections.changes import Change, feed_of

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger

TABLES = [
    "CREATE TABLE IF NOT EXISTS dnd_subscriber_positions ("
    " subscriber TEXT PRIMARY KEY, position BIGINT NOT NULL, delivered BIGINT NOT NULL,"
    " last_error TEXT, last_error_at TEXT)",
    "CREATE TABLE IF NOT EXISTS dnd_subscriber_pending ("
    " subscriber TEXT NOT NULL, change_id BIGINT NOT NULL, location_id TEXT NOT NULL,"
    " contact_id TEXT NOT NULL, attempts INTEGER NOT NULL, next_at DOUBLE PRECISION NOT NULL,"
    " first_failed DOUBLE PRECISION, last_error TEXT, PRIMARY KEY (subscriber, change_id))",
    "CREATE TABLE IF NOT EXISTS dnd_subscriber_failures ("
    " subscriber TEXT NOT NULL, change_id BIGINT NOT NULL, attempts INTEGER NOT NULL,"
    " error TEXT NOT NULL, at TEXT NOT NULL, PRIMARY KEY (subscriber, change_id))",
]
PAGE = 200


def post(sub: Subscriber, change: Change, now: float) -> str | None:
    """Send one change; None when the subscriber answered 2xx, else why not."""
    body = change.body()
    # The URL is the operator's and was checked to be http(s) (Subscriber._url).
    request = urllib.request.Request(  # noqa: S310
        sub.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "dnd-ledger",
            DELIVERY_HEADER: str(change.id),
            SIGNATURE_HEADER: sign(sub.secret.get_secret_value(), int(now), body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=sub.timeout_seconds) as response:  # noqa: S310
            response.read()
            return None
    except urllib.error.HTTPError as e:
        return f"HTTP {e.code}"
    except (OSError, ValueError) as e:
        return f"{type(e).__name__}: {e}"[:500]


Sender = Callable[[Subscriber, Change, float], "str | None"]


@dataclass
class Round:
    sent: int = 0
    failed: int = 0
    queued: int = 0
    given_up: int = 0


class Deliverer:
    def __init__(
        self,
        ledger: DndLedger,
        subscribers: Sequence[Subscriber],
        *,
        send: Sender = post,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.sql = ledger.sql
        self.feed = feed_of(ledger)
        self.subscribers = list(subscribers)
        self.send = send
        self.clock = clock
        with self.sql.transaction() as c:
            for s in TABLES:
                c.execute(s)
            for sub in self.subscribers:
                c.execute(
                    self.sql.q(
                        "INSERT INTO dnd_subscriber_positions (subscriber, position, delivered)"
                        " VALUES (?, 0, 0) ON CONFLICT (subscriber) DO NOTHING"
                    ),
                    (sub.name,),
                )

    # -- one round over every subscriber ----------------------------------------------
    def run_once(self) -> Round:
        """Catch the feed up, retry what is due, send what is new; returns the counts."""
        self.feed.current()
        total = Round()
        for sub in self.subscribers:
            self._retry(sub, total)
            self._new(sub, total)
        return total

    def _position(self, sub: Subscriber) -> int:
        row = self.sql.fetchone(
            "SELECT position FROM dnd_subscriber_positions WHERE subscriber = ?", (sub.name,)
        )
        return int(row[0]) if row else 0

    def _new(self, sub: Subscriber, total: Round) -> None:
        while True:
            position = self._position(sub)
            page = self.feed.page(None, position, PAGE)
            if not page:
                return
            blocked = self._blocked(sub)
            for change in page:
                key = (change.location_id, change.contact_id)
                if not sub.wants(change.location_id, change.channel):
                    self._advance(sub, change.id)
                elif key in blocked:
                    self._queue(sub, change, attempts=0, error=None)
                    total.queued += 1
                else:
                    now = self.clock()
                    error = self.send(sub, change, now)
                    if error is None:
                        self._advance(sub, change.id, delivered=1)
                        total.sent += 1
                    else:
                        self._queue(sub, change, attempts=1, error=error)
                        blocked.add(key)
                        total.failed += 1

    def _blocked(self, sub: Subscriber) -> set[tuple[str, str]]:
        rows = self.sql.fetchall(
            "SELECT DISTINCT location_id, contact_id FROM dnd_subscriber_pending"
            " WHERE subscriber = ?",
            (sub.name,),
        )
        return {(str(r[0]), str(r[1])) for r in rows}

    def _advance(self, sub: Subscriber, change_id: int, delivered: int = 0) -> None:
        self.sql.execute(
            "UPDATE dnd_subscriber_positions SET position = ?, delivered = delivered + ?"
            " WHERE subscriber = ? AND position < ?",
            (change_id, delivered, sub.name, change_id),
        )

    def _queue(self, sub: Subscriber, change: Change, *, attempts: int, error: str | None) -> None:
        """Keep ``change`` for a retry and move past it, in one transaction."""
        now = self.clock()
        q = self.sql.q
        with self.sql.transaction() as c:
            c.execute(
                q(
                    "INSERT INTO dnd_subscriber_pending (subscriber, change_id, location_id,"
                    " contact_id, attempts, next_at, first_failed, last_error)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                ),
                (
                    sub.name, change.id, change.location_id, change.contact_id, attempts,
                    now + (sub.retry_delay(attempts) if attempts else 0),
                    now if attempts else None, error,
                ),
            )  # fmt: skip
            c.execute(
                q(
                    "UPDATE dnd_subscriber_positions SET position = ?"
                    + (", last_error = ?, last_error_at = ?" if error else "")
                    + " WHERE subscriber = ? AND position < ?"
                ),
                (change.id, *((error, _iso(now)) if error else ()), sub.name, change.id),
            )

    def _retry(self, sub: Subscriber, total: Round) -> None:
        """Each blocked contact's oldest change, when due; on success the next right away."""
        rows = self.sql.fetchall(
            "SELECT MIN(change_id) FROM dnd_subscriber_pending WHERE subscriber = ?"
            " GROUP BY location_id, contact_id",
            (sub.name,),
        )
        for (head,) in sorted(rows):
            change_id: int | None = int(head)
            while change_id is not None:
                change_id = self._retry_one(sub, change_id, total)

    def _retry_one(self, sub: Subscriber, change_id: int, total: Round) -> int | None:
        """Try one pending change if due; returns the contact's next one to try now."""
        row = self.sql.fetchone(
            "SELECT attempts, next_at, first_failed, location_id, contact_id"
            " FROM dnd_subscriber_pending WHERE subscriber = ? AND change_id = ?",
            (sub.name, change_id),
        )
        if row is None:
            return None
        attempts, next_at, first_failed = int(row[0]), float(row[1]), row[2]
        now = self.clock()
        if next_at > now:
            return None
        found = self.feed.page(None, change_id - 1, 1)
        if not found or found[0].id != change_id:
            self._drop(sub, change_id)  # cannot happen: the feed is never emptied
            return None
        error = self.send(sub, found[0], now)
        attempts += 1
        if error is None:
            with self.sql.transaction() as c:
                self._delete(c, sub, change_id)
                c.execute(
                    self.sql.q(
                        "UPDATE dnd_subscriber_positions SET delivered = delivered + 1"
                        " WHERE subscriber = ?"
                    ),
                    (sub.name,),
                )
            total.sent += 1
            return self._next_of(sub, str(row[3]), str(row[4]))
        total.failed += 1
        first = float(first_failed) if first_failed is not None else now
        if now - first >= sub.give_up_hours * 3600:
            with self.sql.transaction() as c:
                self._delete(c, sub, change_id)
                c.execute(
                    self.sql.q(
                        "INSERT INTO dnd_subscriber_failures (subscriber, change_id, attempts,"
                        " error, at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
                    ),
                    (sub.name, change_id, attempts, error, _iso(now)),
                )
            total.given_up += 1
            return self._next_of(sub, str(row[3]), str(row[4]))
        with self.sql.transaction() as c:
            c.execute(
                self.sql.q(
                    "UPDATE dnd_subscriber_pending SET attempts = ?, next_at = ?,"
                    " first_failed = ?, last_error = ? WHERE subscriber = ? AND change_id = ?"
                ),
                (attempts, now + sub.retry_delay(attempts), first, error, sub.name, change_id),
            )
            c.execute(
                self.sql.q(
                    "UPDATE dnd_subscriber_positions SET last_error = ?, last_error_at = ?"
                    " WHERE subscriber = ?"
                ),
                (error, _iso(now), sub.name),
            )
        return None

    def _next_of(self, sub: Subscriber, location_id: str, contact_id: str) -> int | None:
        row = self.sql.fetchone(
            "SELECT MIN(change_id) FROM dnd_subscriber_pending"
            " WHERE subscriber = ? AND location_id = ? AND contact_id = ?",
            (sub.name, location_id, contact_id),
        )
        return int(row[0]) if row and row[0] is not None else None

    def _delete(self, c: Any, sub: Subscriber, change_id: int) -> None:
        c.execute(
            self.sql.q("DELETE FROM dnd_subscriber_pending WHERE subscriber = ? AND change_id = ?"),
            (sub.name, change_id),
        )

    def _drop(self, sub: Subscriber, change_id: int) -> None:
        with self.sql.transaction() as c:
            self._delete(c, sub, change_id)

    # -- status ------------------------------------------------------------------------
    def status(self) -> list[dict[str, Any]]:
        """Per subscriber: position, backlog, pending retries, failures given up."""
        head = self.feed.head()
        out = []
        for sub in self.subscribers:
            row = self.sql.fetchone(
                "SELECT position, delivered, last_error, last_error_at"
                " FROM dnd_subscriber_positions WHERE subscriber = ?",
                (sub.name,),
            )
            pending = self.sql.fetchone(
                "SELECT COUNT(*), MIN(first_failed) FROM dnd_subscriber_pending"
                " WHERE subscriber = ?",
                (sub.name,),
            )
            failed = self.sql.fetchone(
                "SELECT COUNT(*) FROM dnd_subscriber_failures WHERE subscriber = ?", (sub.name,)
            )
            position = int(row[0]) if row else 0
            out.append({
                "name": sub.name,
                "url": sub.url,
                "position": position,
                "feed_head": head,
                "behind": max(head - position, 0),
                "delivered": int(row[1]) if row else 0,
                "pending": int(pending[0]) if pending else 0,
                "failing_since": _iso(float(pending[1])) if pending and pending[1] else None,
                "given_up": int(failed[0]) if failed else 0,
                "last_error": row[2] if row else None,
                "last_error_at": row[3] if row else None,
            })  # fmt: skip
        return out


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds")
