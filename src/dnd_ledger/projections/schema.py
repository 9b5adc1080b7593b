"""The views' tables. Written only by the projector, with its tracking position."""

from __future__ import annotations

from dnd_ledger.projections.status_row import CHANNEL_DDL

#: View names, each with its own tracking position (``projections status``).
VIEWS = ("status", "addresses", "audit", "stats")
TRACKING_PREFIX = "dnd_ledger.view."

TABLES: dict[str, list[str]] = {
    "status": [
        "CREATE TABLE IF NOT EXISTS dnd_status_contacts ("
        " aggregate_id TEXT PRIMARY KEY, location_id TEXT NOT NULL, contact_id TEXT NOT NULL,"
        " overall TEXT NOT NULL, version INTEGER NOT NULL, last_occurred TEXT,"
        f" state TEXT NOT NULL,{CHANNEL_DDL} UNIQUE (location_id, contact_id))",
    ],
    "addresses": [
        "CREATE TABLE IF NOT EXISTS dnd_addresses ("
        " aggregate_id TEXT PRIMARY KEY, location_id TEXT NOT NULL, ref TEXT NOT NULL,"
        " kind TEXT NOT NULL)",
        "CREATE TABLE IF NOT EXISTS dnd_address_index ("
        " location_id TEXT NOT NULL, ref TEXT NOT NULL, contact_id TEXT NOT NULL,"
        " kind TEXT NOT NULL, since TEXT NOT NULL,"
        " PRIMARY KEY (location_id, ref, contact_id))",
        "CREATE INDEX IF NOT EXISTS dnd_address_index_contact"
        " ON dnd_address_index (location_id, contact_id)",
    ],
    "audit": [
        # One row per stored event, at its notification id: what the event does not
        # hold itself (whom it concerns, its name, what it changed). The rest is read
        # from the event (projections/audit_trail.py). On SQLite the position is an
        # INTEGER PRIMARY KEY, the table's rowid; BIGINT on PostgreSQL.
        "CREATE TABLE IF NOT EXISTS dnd_audit ("
        " position {position} PRIMARY KEY, aggregate_id TEXT NOT NULL, version INTEGER NOT NULL,"
        " location_id TEXT NOT NULL, contact_id TEXT, address_ref TEXT, event TEXT NOT NULL,"
        " before TEXT NOT NULL, after TEXT NOT NULL)",
        # A location's rows in log order (the audit export, reviews, reference scans).
        "CREATE INDEX IF NOT EXISTS dnd_audit_location ON dnd_audit (location_id, position)",
        # Gone: one contact's or address's rows are read through the events table's
        # index on their aggregate (AuditTrail.of_aggregate); an index of the view on
        # contact or address put each stored event's row on a random page of its own.
        "DROP INDEX IF EXISTS dnd_audit_aggregate",
        "DROP INDEX IF EXISTS dnd_audit_contact",
        "DROP INDEX IF EXISTS dnd_audit_address",
    ],
    "stats": [
        "CREATE TABLE IF NOT EXISTS dnd_stats ("
        " location_id TEXT NOT NULL, dimension TEXT NOT NULL, value TEXT NOT NULL,"
        " count BIGINT NOT NULL, PRIMARY KEY (location_id, dimension, value))",
    ],
}

#: The projector's failures, seen by every process: one row while the views are
#: stuck (the position of the event they could not apply, and why).
ERRORS_TABLE = (
    "CREATE TABLE IF NOT EXISTS dnd_projection_errors ("
    " name TEXT PRIMARY KEY, position BIGINT NOT NULL, error TEXT NOT NULL, at TEXT NOT NULL)"
)

#: Tables of earlier layouts of the views, dropped when a ledger made with one is
#: opened (:mod:`dnd_ledger.projections.upgrade`): the status view used to keep one
#: row per contact and channel in ``dnd_status_channels``.
OLD_TABLES = ("dnd_status_channels",)

#: The type of ``dnd_audit.position`` in each dialect (see :func:`statements`).
POSITION_TYPE = {"sqlite": "INTEGER", "postgres": "BIGINT"}


def statements(dialect: str) -> list[str]:
    """Every view's CREATE statements, for ``dialect`` (``sqlite`` or ``postgres``)."""
    position = POSITION_TYPE[dialect]
    return [s.replace("{position}", position) for group in TABLES.values() for s in group]


CLEAR: dict[str, list[str]] = {
    "status": ["DELETE FROM dnd_status_contacts"],
    "addresses": ["DELETE FROM dnd_addresses", "DELETE FROM dnd_address_index"],
    "audit": ["DELETE FROM dnd_audit"],
    "stats": ["DELETE FROM dnd_stats"],
}
