"""The tables of the same-pipeline CRUD baseline (see :mod:`dnd_ledger.bench.pipeline`).

One mutable row per contact (its addresses, the blocks of the DND fold as JSON,
the overall status, one status column per channel and the six channels' state
for can-send), the address index (location, ref -> the contacts that have it),
the idempotency keys in a primary-key table (unique per contact or address and,
for a request key, per request id), an audit row per recorded command, and the
personal-data vault (the project's :class:`~dnd_ledger.storage.pii.SqlVault`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from dnd_ledger.bench.baselines import CHANNEL_COLUMNS, RawDb
from dnd_ledger.domain.state import DndState, overall
from dnd_ledger.storage.persistence import Sql
from dnd_ledger.storage.pii import SqlVault

P = "bench_pipe"
SCHEMA = [
    f"CREATE TABLE IF NOT EXISTS {P}_contacts (location_id TEXT NOT NULL,"
    " contact_id TEXT NOT NULL, phones TEXT NOT NULL, emails TEXT NOT NULL,"
    " registered_at TEXT NOT NULL, blocks TEXT NOT NULL, overall TEXT NOT NULL,"
    + "".join(f" st_{c} TEXT NOT NULL," for c in CHANNEL_COLUMNS)
    + " channels TEXT NOT NULL, updated_at TEXT NOT NULL, PRIMARY KEY (location_id, contact_id))",
    f"CREATE TABLE IF NOT EXISTS {P}_addresses (location_id TEXT NOT NULL, ref TEXT NOT NULL,"
    " kind TEXT NOT NULL, claimants TEXT NOT NULL, PRIMARY KEY (location_id, ref))",
    f"CREATE TABLE IF NOT EXISTS {P}_keys (owner TEXT NOT NULL, base TEXT NOT NULL,"
    " key TEXT NOT NULL, PRIMARY KEY (owner, base))",
    f"CREATE TABLE IF NOT EXISTS {P}_audit (id BIGINT PRIMARY KEY, location_id TEXT NOT NULL,"
    " contact_id TEXT, address_ref TEXT, occurred_at TEXT NOT NULL, recorded_at TEXT NOT NULL,"
    " event TEXT NOT NULL, source TEXT, actor TEXT, idempotency_key TEXT, policy_version TEXT,"
    " effect TEXT NOT NULL, detail TEXT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS {P}_audit_contact ON {P}_audit (location_id, contact_id, id)",
    f"CREATE INDEX IF NOT EXISTS {P}_audit_address ON {P}_audit (location_id, address_ref, id)"
    " WHERE address_ref IS NOT NULL",
]
STATUS = ", ".join(f"st_{c}" for c in CHANNEL_COLUMNS)


@dataclass
class ContactRow:
    location_id: str
    contact_id: str
    phones: list[str]
    emails: list[str]
    registered_at: str
    state: DndState
    new: bool = False


@dataclass
class AddressRow:
    location_id: str
    ref: str
    kind: str
    claimants: list[str]
    new: bool = False


@dataclass
class Batch:
    """What one batch read and will write (loaded once, written in one transaction)."""

    cursor: Any
    recorded_at: str
    contacts: dict[tuple[str, str], ContactRow | None] = field(default_factory=dict)
    addresses: dict[tuple[str, str], AddressRow | None] = field(default_factory=dict)
    dirty_contacts: set[tuple[str, str]] = field(default_factory=set)
    dirty_addresses: set[tuple[str, str]] = field(default_factory=set)
    keys: dict[tuple[str, str], str] = field(default_factory=dict)
    audit: list[tuple[Any, ...]] = field(default_factory=list)
    pii: list[tuple[str, str, str]] = field(default_factory=list)


class _Store:
    """:class:`~dnd_ledger.storage.persistence.Sql` needs a datastore: this one is a RawDb."""

    def __init__(self, db: RawDb) -> None:
        self.db = db

    @contextmanager
    def transaction(self, commit: bool = True) -> Iterator[Any]:
        with self.db.transaction() as c:
            yield c


class PipelineTables:
    def __init__(self, db: RawDb) -> None:
        self.db = db
        with db.transaction() as c:
            for statement in SCHEMA:
                c.execute(statement)
        self.vault = SqlVault(Sql(_Store(db), "postgres" if db.engine == "postgres" else "sqlite"))
        self.vault.create_table()
        q = db.q
        self._contact = q(
            f"SELECT phones, emails, registered_at, blocks FROM {P}_contacts"
            " WHERE location_id = ? AND contact_id = ?"
        )
        self._address = q(
            f"SELECT kind, claimants FROM {P}_addresses WHERE location_id = ? AND ref = ?"
        )
        self._key = q(f"SELECT key FROM {P}_keys WHERE owner = ? AND base = ?")
        self._held = q(
            f"SELECT id, event, occurred_at, idempotency_key, effect FROM {P}_audit"
            " WHERE location_id = ? AND address_ref = ? ORDER BY id"
        )
        cols = ", ".join(f"st_{c} = ?" for c in CHANNEL_COLUMNS)
        self._insert_contact = q(
            f"INSERT INTO {P}_contacts (phones, emails, registered_at, blocks, overall, {STATUS},"
            " channels, updated_at, location_id, contact_id) VALUES"
            f" ({', '.join('?' * (9 + len(CHANNEL_COLUMNS)))})"
        )
        self._update_contact = q(
            f"UPDATE {P}_contacts SET phones = ?, emails = ?, registered_at = ?, blocks = ?,"
            f" overall = ?, {cols}, channels = ?, updated_at = ?"
            " WHERE location_id = ? AND contact_id = ?"
        )
        self._insert_address = q(
            f"INSERT INTO {P}_addresses (kind, claimants, location_id, ref) VALUES (?, ?, ?, ?)"
        )
        self._update_address = q(
            f"UPDATE {P}_addresses SET kind = ?, claimants = ? WHERE location_id = ? AND ref = ?"
        )
        self._insert_key = q(f"INSERT INTO {P}_keys (owner, base, key) VALUES (?, ?, ?)")
        self._insert_audit = q(
            f"INSERT INTO {P}_audit (id, location_id, contact_id, address_ref, occurred_at,"
            " recorded_at, event, source, actor, idempotency_key, policy_version, effect, detail)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        row = db.fetchall(f"SELECT MAX(id) FROM {P}_audit")[0]
        self.next_audit = int(row[0] or 0) + 1

    # -- reads, in the batch's transaction ----------------------------------------------
    def contact(self, b: Batch, location_id: str, contact_id: str) -> ContactRow | None:
        k = (location_id, contact_id)
        if k not in b.contacts:
            b.cursor.execute(self._contact, k)
            r = b.cursor.fetchone()
            b.contacts[k] = None if r is None else ContactRow(
                location_id, contact_id, orjson.loads(r[0]), orjson.loads(r[1]), r[2],
                DndState.from_list(orjson.loads(r[3])),
            )  # fmt: skip
        return b.contacts[k]

    def address(self, b: Batch, location_id: str, ref: str) -> AddressRow | None:
        k = (location_id, ref)
        if k not in b.addresses:
            b.cursor.execute(self._address, k)
            r = b.cursor.fetchone()
            b.addresses[k] = (
                None if r is None else AddressRow(location_id, ref, r[0], orjson.loads(r[1]))
            )
        return b.addresses[k]

    def held_key(self, b: Batch, owner: str, base: str) -> str | None:
        found = b.keys.get((owner, base))
        if found is not None:
            return found
        b.cursor.execute(self._key, (owner, base))
        r = b.cursor.fetchone()
        return None if r is None else str(r[0])

    def held_signals(self, b: Batch, location_id: str, ref: str) -> list[tuple[Any, ...]]:
        """What providers said about an address (id, event, occurred_at, key, effect)."""
        b.cursor.execute(self._held, (location_id, ref))
        rows = [tuple(r) for r in b.cursor.fetchall()]
        rows += [(a[0], a[6], a[4], a[9], a[11]) for a in b.audit if a[1:4:2] == (location_id, ref)]
        return rows

    def next_id(self) -> int:
        n = self.next_audit
        self.next_audit += 1
        return n

    # -- the batch's writes ---------------------------------------------------------------
    def flush(self, b: Batch) -> list[str]:
        """Write the batch (in its transaction); returns the vault refs to mark known."""
        c, now = b.cursor, b.recorded_at
        inserts: list[tuple[Any, ...]] = []
        updates: list[tuple[Any, ...]] = []
        for k in b.dirty_contacts:
            row = b.contacts[k]
            assert row is not None
            channels = row.state.channels()
            values = (
                orjson.dumps(row.phones).decode(), orjson.dumps(row.emails).decode(),
                row.registered_at, orjson.dumps(row.state.to_list()).decode(),
                overall(channels).value, *(channels[ch].status.value for ch in channels),
                orjson.dumps({ch.value: s.to_json() for ch, s in channels.items()}).decode(),
                now, row.location_id, row.contact_id,
            )  # fmt: skip
            (inserts if row.new else updates).append(values)
            row.new = False
        if inserts:
            c.executemany(self._insert_contact, inserts)
        if updates:
            c.executemany(self._update_contact, updates)
        inserts, updates = [], []  # the addresses
        for k in b.dirty_addresses:
            a = b.addresses[k]
            assert a is not None
            values = (a.kind, orjson.dumps(a.claimants).decode(), a.location_id, a.ref)
            (inserts if a.new else updates).append(values)
            a.new = False
        if inserts:
            c.executemany(self._insert_address, inserts)
        if updates:
            c.executemany(self._update_address, updates)
        if b.keys:
            c.executemany(self._insert_key, [(o, base, k) for (o, base), k in b.keys.items()])
        if b.audit:
            c.executemany(self._insert_audit, b.audit)
        return self.vault.put_in(c, b.pii)


__all__ = ["AddressRow", "Batch", "ContactRow", "PipelineTables"]
