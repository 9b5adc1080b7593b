"""The audit trail: each row of the audit view with the fields its stored event holds.

The audit view (``dnd_audit``) keeps, per stored event, only what the event does
not hold itself: its log position, its aggregate and version, the location and
the contact or address it concerns, its name, and the before/after the fold gave.
Every other field the trail shows (when the event occurred and was recorded, its
source and actor, channels, effect, idempotency key, policy version, evidence and
detail) is read from the stored event: the row is joined to the events table on
its notification id (its position) and the event is decoded as the event store
decodes an aggregate's events (:meth:`EventStore.decode_stored`: transcoder,
upcasting). The fields are derived by :func:`rows.event_fields`, the one function
that does so; a decision's history by :func:`rows.entry_of`, as the projector does.

Rows are decoded only when a field of the event is asked for, so a reader that
filters on the view's own columns first decodes only what it keeps.

One contact's or one address's rows are read through the events table's own index
on (originator id, version) (:meth:`AuditTrail.of_aggregate`): the aggregate id is
derived from the location and the contact id or the address reference
(``domain/keys.py``, ``domain/address.py``), so the audit view keeps no index of its
own on them (each was one more page written at random per stored event).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dnd_ledger.domain.address import address_uuid
from dnd_ledger.domain.contact import EVENT_CLASSES
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.state import Entry
from dnd_ledger.projections.rows import EventFields, entry_of, event_fields

if TYPE_CHECKING:
    from dnd_ledger.storage.persistence import Sql
    from dnd_ledger.storage.ports import EventLog

#: Runs a statement (placeholders already in the dialect's form) with its params.
Fetch = Callable[[str, tuple[Any, ...]], list[tuple[Any, ...]]]
#: Decodes a row of the events table: originator id, version, topic, state.
Decode = Callable[[Any, int, str, bytes], Any]
#: An aggregate id as the events table stores it (its ``originator_id`` column).
StoredId = Callable[[UUID], Any]

_COLUMNS = (
    "a.position, a.aggregate_id, a.version, a.location_id, a.contact_id, a.address_ref,"
    " a.event, a.before, a.after, e.originator_id, e.originator_version, e.topic, e.state"
)
#: Every field of an audit record, in the order :meth:`AuditRecord.row` gives them
#: (the columns the audit view held before it kept only its own).
RECORD_FIELDS = (
    "position", "aggregate_id", "version", "location_id", "contact_id", "address_ref",
    "occurred_at", "recorded_at", "event", "source", "actor", "channels", "effect",
    "effect_data", "before", "after", "idempotency_key", "policy_version", "evidence", "detail",
)  # fmt: skip
#: The names of the events that may change DND (the fold's input).
DND_EVENTS = tuple(sorted(EVENT_CLASSES))
BY_POSITION = " ORDER BY a.position"
#: Fold entries kept decoded, by (position, aggregate id, version): a stored event
#: never changes, so a contact's history read again decodes only its new events.
ENTRY_CACHE = 20_000


class AuditRecord:
    """One audit row: the view's columns, and its event's fields on first use."""

    __slots__ = (
        "_decode", "_event", "_fields", "_stored", "address_ref", "after", "aggregate_id",
        "before", "contact_id", "event", "location_id", "position", "version",
    )  # fmt: skip

    def __init__(self, row: Sequence[Any], decode: Decode) -> None:
        self.position = int(row[0])
        self.aggregate_id = str(row[1])
        self.version = int(row[2])
        self.location_id = str(row[3])
        self.contact_id: str | None = None if row[4] is None else str(row[4])
        self.address_ref: str | None = None if row[5] is None else str(row[5])
        self.event = str(row[6])
        self.before = str(row[7])
        self.after = str(row[8])
        self._stored = (row[9], int(row[10]), str(row[11]), row[12])
        self._decode = decode
        self._event: Any = None
        self._fields: EventFields | None = None

    @property
    def domain_event(self) -> Any:
        """The stored event, decoded."""
        if self._event is None:
            event = self._decode(*self._stored)
            if (str(event.originator_id), event.originator_version) != (
                self.aggregate_id,
                self.version,
            ):  # the view's row and the log disagree: show neither
                raise RuntimeError(
                    f"the audit row at position {self.position} is of {self.aggregate_id}"
                    f" v{self.version}, its event of {event.originator_id}"
                    f" v{event.originator_version}"
                )
            self._event = event
        return self._event

    @property
    def fields(self) -> EventFields:
        """What the trail shows of the event (see :func:`rows.event_fields`)."""
        if self._fields is None:
            self._fields = event_fields(self.domain_event)
        return self._fields

    def row(self) -> tuple[Any, ...]:
        """Every field, in :data:`RECORD_FIELDS` order."""
        f = self.fields
        return (
            self.position, self.aggregate_id, self.version, self.location_id, self.contact_id,
            self.address_ref, f.occurred_at, f.recorded_at, self.event, f.source, f.actor,
            f.channels, f.effect, f.effect_data, self.before, self.after, f.idempotency_key,
            f.policy_version, f.evidence, f.detail,
        )  # fmt: skip


class AuditTrail:
    """Reads the audit view joined to the events it describes."""

    def __init__(
        self, sql: Sql, decode: Decode, events: tuple[str, str], stored_id: StoredId
    ) -> None:
        self.sql = sql
        self.decode = decode
        self.stored_id = stored_id
        table, column = events
        self._from = f"dnd_audit a JOIN {table} e ON e.{column} = a.position"
        # From one aggregate's events (the events table's index on its originator id)
        # to their rows, one lookup of the view's primary key each: the order is fixed
        # (SQLite's CROSS JOIN; on PostgreSQL a lateral subquery it cannot flatten), so
        # no estimate of the other conditions turns it into a scan of the view.
        if sql.dialect == "postgres":
            self._of_aggregate = (
                f"{table} e CROSS JOIN LATERAL"
                f" (SELECT * FROM dnd_audit WHERE position = e.{column} OFFSET 0) a"
            )
        else:
            self._of_aggregate = f"{table} e CROSS JOIN dnd_audit a ON a.position = e.{column}"
        self._entries: dict[tuple[int, str, int], Entry] = {}

    @classmethod
    def of(cls, app: EventLog) -> AuditTrail:
        return cls(app.sql, app.decode_stored, app.events_by_position, app.stored_id)

    def statement(self, where: str = "", tail: str = BY_POSITION) -> str:
        """A SELECT of the joined rows (``where`` names the view's columns as ``a.*``),
        its placeholders in the dialect's form."""
        clause = f" WHERE {where}" if where else ""
        return self.sql.q(f"SELECT {_COLUMNS} FROM {self._from}{clause}{tail}")

    def read(
        self,
        where: str = "",
        params: Sequence[Any] = (),
        *,
        tail: str = BY_POSITION,
        fetch: Fetch | None = None,
    ) -> list[AuditRecord]:
        """The rows ``where`` selects, in log order unless ``tail`` says otherwise;
        through ``fetch`` (a reading connection, an open transaction) if given."""
        run = fetch or self.sql.fetchall
        rows = run(self.statement(where, tail), tuple(params))
        return [AuditRecord(r, self.decode) for r in rows]

    def of_aggregate(
        self,
        aggregate_id: UUID,
        where: str = "",
        params: Sequence[Any] = (),
        *,
        tail: str = BY_POSITION,
        fetch: Fetch | None = None,
    ) -> list[AuditRecord]:
        """Like :meth:`read`, of the rows of one aggregate's events only: found by the
        events table's index on their originator id, then joined on position."""
        statement = self.sql.q(
            f"SELECT {_COLUMNS} FROM {self._of_aggregate}"
            f" WHERE e.originator_id = ?{_and(where)}{tail}"
        )
        run = fetch or self.sql.fetchall
        found = [
            AuditRecord(r, self.decode)
            for r in run(statement, (self.stored_id(aggregate_id), *params))
        ]
        for r in found:
            if r.aggregate_id != str(aggregate_id):  # the view and the log disagree
                raise RuntimeError(
                    f"the audit row at position {r.position} is of {r.aggregate_id},"
                    f" its event of {aggregate_id}"
                )
        return found

    def of_contact(
        self,
        location_id: str,
        contact_id: str,
        where: str = "",
        params: Sequence[Any] = (),
        *,
        tail: str = BY_POSITION,
        fetch: Fetch | None = None,
    ) -> list[AuditRecord]:
        """The rows ``a.location_id = location_id AND a.contact_id = contact_id``
        selects (and ``where``), read through the contact's aggregate."""
        found = self.of_aggregate(
            contact_uuid(location_id, contact_id), where, params, tail=tail, fetch=fetch
        )
        return _all_of(found, "contact", (location_id, contact_id), lambda r: r.contact_id)

    def of_address(
        self,
        location_id: str,
        ref: str,
        where: str = "",
        params: Sequence[Any] = (),
        *,
        tail: str = BY_POSITION,
        fetch: Fetch | None = None,
    ) -> list[AuditRecord]:
        """The rows ``a.location_id = location_id AND a.address_ref = ref`` selects
        (and ``where``), read through the address's aggregate."""
        found = self.of_aggregate(
            address_uuid(location_id, ref), where, params, tail=tail, fetch=fetch
        )
        return _all_of(found, "address", (location_id, ref), lambda r: r.address_ref)

    def scan(
        self, where: str = "", params: Sequence[Any] = (), *, chunk: int = 1000,
        fetch: Fetch | None = None,
    ) -> Iterator[AuditRecord]:  # fmt: skip
        """Like :meth:`read`, in log order, ``chunk`` rows at a time (bounded memory)."""
        after = 0
        clause = f"({where}) AND a.position > ?" if where else "a.position > ?"
        while True:
            found = self.read(
                clause, (*params, after), tail=f"{BY_POSITION} LIMIT {int(chunk)}", fetch=fetch
            )
            yield from found
            if len(found) < chunk:
                return
            after = found[-1].position

    def entries(self, location_id: str, contact_id: str, fetch: Fetch | None = None) -> list[Entry]:
        """The contact's DND events as the fold's entries, in log order."""
        marks = ", ".join("?" * len(DND_EVENTS))
        found = self.of_contact(
            location_id, contact_id, f"a.event IN ({marks})", DND_EVENTS, fetch=fetch
        )
        cache, out = self._entries, []
        for r in found:
            key = (r.position, r.aggregate_id, r.version)
            entry = cache.get(key)
            if entry is None:
                entry = entry_of(r.domain_event)
                if len(cache) >= ENTRY_CACHE:
                    cache.clear()
                cache[key] = entry
            out.append(entry)
        return out


def _all_of(
    found: list[AuditRecord],
    kind: str,
    expected: tuple[str, str],
    key: Callable[[AuditRecord], str | None],
) -> list[AuditRecord]:
    """``found`` (an aggregate's rows), checked to be all of the contact or address
    whose id the aggregate's is derived from: a row that is not is the view disagreeing
    with the log, an error rather than a row silently left out (the statement has no
    condition on the location and contact or reference for the same reason)."""
    for r in found:
        if (r.location_id, key(r)) != expected:  # the view and the log disagree: show neither
            raise RuntimeError(
                f"the audit row at position {r.position} of aggregate {r.aggregate_id} is"
                f" of {r.location_id}/{key(r)}, not of {kind} {expected[0]}/{expected[1]}"
            )
    return found


def _and(where: str) -> str:
    return f" AND ({where})" if where else ""


__all__ = ["DND_EVENTS", "RECORD_FIELDS", "AuditRecord", "AuditTrail", "Fetch", "StoredId"]
