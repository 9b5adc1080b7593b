"""How far the change feed and its consumers are behind, for ``GET /metrics``.

Read from the database at scrape time, so every worker reports the same figures:

- ``dnd_ledger_change_feed_lag_events{name="feed"}``: audit-view events not yet turned
  into change records;
- ``dnd_ledger_subscriber_backlog_changes{name=SUBSCRIBER}``: changes a webhook
  subscriber has not received yet, and ``{name="nats:STREAM"}`` for a NATS publisher.

A consumer that never ran has no row yet and is not listed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from dnd_ledger.projections.changes import feed_of

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger


def feed_lag(ledger: DndLedger) -> dict[str, int]:
    feed = feed_of(ledger)
    return {"feed": max(0, ledger.projector.positions()["audit"] - feed.position())}


def consumer_backlog(ledger: DndLedger) -> dict[str, int]:
    head = feed_of(ledger).head()
    found: dict[str, int] = {}
    for table, prefix, column in (
        ("dnd_subscriber_positions", "", "subscriber"),
        ("dnd_publisher_positions", "nats:", "name"),
    ):
        if not ledger.sql.table_exists(table):
            continue
        for name, position in ledger.sql.fetchall(f"SELECT {column}, position FROM {table}"):
            found[f"{prefix}{name}"] = max(0, head - int(position))
    return found


#: For :data:`dnd_ledger.web.metrics.BACKLOGS`.
READERS: dict[str, tuple[str, Callable[[DndLedger], dict[str, int]]]] = {
    "dnd_ledger_change_feed_lag_events": (
        "Audit-view events not yet turned into change records.", feed_lag,
    ),
    "dnd_ledger_subscriber_backlog_changes": (
        "Change records a subscriber or publisher has not taken yet.", consumer_backlog,
    ),
}  # fmt: skip
