"""Opening a ledger whose status view has an earlier layout: it is rebuilt from the log.

The views are derived from the log, so a layout change never converts rows: the
old tables are dropped, the new ones created empty, and the tracking positions of
the views derived from contact state (status, audit and stats, which advance
together) are deleted, so that the next catch-up projects the whole log into
them again. Until it has, every query waits for it or fails closed, as for any
view behind the log (:mod:`dnd_ledger.projections.freshness`).

All of it runs in one transaction, which on SQLite first takes the write lock
(so two processes opening the same file cannot both upgrade it), and on
PostgreSQL inside the advisory lock every table creation runs under
(``EventStore.create_tables``). The layout is recorded in ``dnd_meta``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from dnd_ledger.projections.schema import CLEAR, OLD_TABLES, TRACKING_PREFIX
from dnd_ledger.projections.status_row import LAYOUT, META_NAME
from dnd_ledger.storage.persistence import Sql

META_TABLE = "CREATE TABLE IF NOT EXISTS dnd_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"


def stale_layout(sql: Sql, c: Any) -> bool:
    """Whether the status view's tables need rebuilding: their layout is not recorded
    as the current one. Call first in the transaction (after :data:`META_TABLE` ran
    in one of its own): it takes the write lock."""
    # A write before any read: on SQLite the transaction holds the write lock from
    # here, so what it reads next cannot change before it commits.
    c.execute(sql.q("UPDATE dnd_meta SET value = value WHERE name = ?"), (META_NAME,))
    rows = sql.fetchall_in(c, "SELECT value FROM dnd_meta WHERE name = ?", (META_NAME,))
    return not rows or rows[0][0] != LAYOUT


def drop_old(c: Any) -> None:
    """Drop the status and audit views' tables (old and current), before they are
    created anew (an earlier audit table had other columns)."""
    for table in (*OLD_TABLES, "dnd_status_contacts", "dnd_audit"):
        c.execute(f"DROP TABLE IF EXISTS {table}")


def reset(sql: Sql, c: Any, tracking_table: str, views: Iterable[str]) -> None:
    """Empty ``views`` and delete their positions, then record the current layout."""
    for view in views:
        for statement in CLEAR[view]:
            c.execute(statement)
        c.execute(
            sql.q(f"DELETE FROM {tracking_table} WHERE application_name = ?"),
            (TRACKING_PREFIX + view,),
        )
    c.execute(
        sql.q(
            "INSERT INTO dnd_meta (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value"
        ),
        (META_NAME, LAYOUT),
    )
