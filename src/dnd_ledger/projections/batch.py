"""One batch of events turned into view rows, per view, and written in one go.

The projector hands a batch its events in log order (:meth:`Batch.take`); the batch
reads what earlier batches left (a contact's status row, an address), builds the
rows of each view still behind the event, and :meth:`Batch.write` writes them in the
projector's transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson

from dnd_ledger.domain.address import Address
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.state import DndState, Effect, Entry
from dnd_ledger.domain.values import ALL_CHANNELS
from dnd_ledger.projections.audit_trail import AuditTrail
from dnd_ledger.projections.rows import (
    NAME,
    ContactView,
    address_audit_row,
    changed,
    contact_audit_row,
    dumps,
    entry_of,
    iso,
    stats_keys,
)
from dnd_ledger.projections.status_row import CHANNEL_COLUMNS, COLUMNS, channel_values
from dnd_ledger.storage.persistence import Sql


class Batch:
    """Rows one batch produces, accumulated in memory, written in one go."""

    def __init__(
        self,
        sql: Sql,
        cached: dict[str, ContactView],
        addresses: dict[str, tuple[str, str, str]],
        positions: dict[str, int],
        c: Any = None,
        *,
        trail: AuditTrail,
    ) -> None:
        self.sql = sql
        self.trail = trail  # a contact's earlier entries, for a late event's refold
        self.cached = cached  # contacts earlier batches left, kept by the projector
        self.c = c  # the transaction its reads run in (the writer's, or catch-up's read one)
        self.last = 0
        self.positions = positions
        self.contacts: dict[str, ContactView] = {}
        self.stats_before: dict[str, Counter[tuple[str, str]]] = {}
        self.addresses = addresses  # id -> (location, ref, kind), kept by the projector
        self.audit: list[tuple[Any, ...]] = []
        self.new_addresses: list[tuple[str, str, str, str]] = []
        self.index: list[tuple[str, str, str, str, str]] = []
        self.unindex: set[tuple[str, str, str]] = set()  # (location, ref, contact) released
        #: Contacts whose state is an aggregate's (:mod:`.own`): not kept after the batch.
        self.borrowed: set[str] = set()

    def _fetchall(self, statement: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        if self.c is not None:
            return self.sql.fetchall_in(self.c, statement, params)
        return self.sql.fetchall(statement, params)

    def wants(self, view: str, position: int) -> bool:
        return self.positions[view] < position

    # -- reading what earlier batches left ---------------------------------------------
    def prefetch(self, ids: set[str]) -> None:
        """Load, in a few queries, the rows of every aggregate the batch touches."""
        cached = self.cached
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
        cv = self.cached.get(aggregate_id)
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
        stored = self.trail.entries(cv.location_id, cv.contact_id, fetch=self._fetchall)
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
        before = dict(cv.channels)  # take() changes them in place
        effect: Effect | None = None
        if isinstance(e, Contact.DndEvent):
            effect = Effect.from_dict(e.effect)
            entry = entry_of(e, effect)
            late = cv.last_occurred is not None and entry.occurred_at < cv.last_occurred
            cv.take(entry, self.history(cv) if late else None)
        else:
            cv.version = e.originator_version
        before_s, after_s = changed(before, cv.channels, effect.touched if effect else ())
        self.audit.append(
            contact_audit_row(position, e, cv.location_id, cv.contact_id, before_s, after_s)
        )

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
        if self.wants("audit", position):
            self.audit.append(address_audit_row(position, e, location_id, ref))

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
        contacts, stats = [], Counter[tuple[str, str, str]]()
        for aid, cv in self.contacts.items():
            # One row per contact: its six channels' state is in it.
            contacts.append((
                aid, cv.location_id, cv.contact_id, NAME[cv.overall], cv.version,
                iso(cv.last_occurred) if cv.last_occurred else None, dumps(cv.state.to_list()),
                *channel_values(cv.channels),
            ))  # fmt: skip
            before = self.stats_before.get(aid, Counter())
            after = stats_keys(cv)
            for key in set(before) | set(after):
                delta = after[key] - before[key]
                if delta:
                    stats[(cv.location_id, *key)] += delta
        if contacts:
            c.executemany(q(_CONTACT_UPSERT), contacts)
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


_AUDIT_INSERT = (
    "INSERT INTO dnd_audit (position, aggregate_id, version, location_id, contact_id,"
    " address_ref, event, before, after) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_CONTACT_UPSERT = (
    "INSERT INTO dnd_status_contacts (aggregate_id, location_id, contact_id, overall, version,"
    f" last_occurred, state, {CHANNEL_COLUMNS}) VALUES ({', '.join('?' * (7 + 2 * len(COLUMNS)))})"
    " ON CONFLICT (aggregate_id) DO UPDATE SET overall = excluded.overall,"
    " version = excluded.version, last_occurred = excluded.last_occurred, state = excluded.state, "
    + ", ".join(f"{s} = excluded.{s}, {k} = excluded.{k}" for s, k in COLUMNS.values())
)
