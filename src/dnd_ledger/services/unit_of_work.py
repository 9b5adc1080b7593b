"""The unit of work: the aggregates one batch touches, loaded once and saved together.

A batch's commands mutate the aggregates the :class:`Unit` holds; :func:`save` then
stores their events, the personal data they refer to and (when the views are
current) their view rows in one transaction: one commit, one fsync.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dnd_ledger.domain.address import Address, Signal, address_uuid
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.errors import UnknownContact
from dnd_ledger.domain.inputs import check_id
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.timecheck import check_occurred_at
from dnd_ledger.domain.values import AddressKind
from dnd_ledger.services.ports import Store, ViewWriter, Writer
from dnd_ledger.storage.pii import Keyring, normalise_email, normalise_phone


@dataclass
class Unit:
    """The aggregates one batch touches, and the personal values its events refer to."""

    store: Store
    keyring: Keyring
    now: datetime
    contacts: dict[Any, Contact | None] = field(default_factory=dict)
    addresses: dict[Any, Address | None] = field(default_factory=dict)
    #: Aggregates created in this batch, in order: a refused command's are dropped.
    created: list[Contact | Address] = field(default_factory=list)
    #: (ref, kind, value) for the vault, stored with the batch's events.
    pii: list[tuple[str, str, str]] = field(default_factory=list)

    # -- loading ----------------------------------------------------------------
    def contact(self, location_id: str, contact_id: str) -> Contact | None:
        cid = contact_uuid(location_id, contact_id)
        if cid not in self.contacts:
            self.contacts[cid] = self.store.get_aggregate(cid)  # type: ignore[assignment]
        return self.contacts[cid]

    def known_contact(self, location_id: str, contact_id: str) -> Contact:
        """The contact, which must be registered."""
        check_id("location_id", location_id)
        check_id("contact_id", contact_id)
        contact = self.contact(location_id, contact_id)
        if contact is None:
            raise UnknownContact.of(location_id, contact_id)
        return contact

    def add_contact(self, contact: Contact) -> None:
        self.contacts[contact.id] = contact
        self.created.append(contact)

    def address(self, location_id: str, kind: AddressKind, ref: str) -> Address:
        aid = address_uuid(location_id, ref)
        if aid not in self.addresses:
            self.addresses[aid] = self.store.get_aggregate(aid)  # type: ignore[assignment]
        found = self.addresses[aid]
        if found is None:
            found = Address.open(location_id, kind, ref, timestamp=self.now)
            self.addresses[aid] = found
            self.created.append(found)
        return found

    def touched(self) -> list[Contact | Address]:
        # Addresses first: the log then reads "the address said X, so the contact got X".
        return [a for a in (*self.addresses.values(), *self.contacts.values()) if a is not None]

    # -- a refused command leaves no trace ----------------------------------------
    def mark(self) -> tuple[int, int]:
        return len(self.created), len(self.pii)

    def drop_since(self, mark: tuple[int, int]) -> None:
        """Forget what was created, and the personal values taken, since ``mark``."""
        created, pii = mark
        for agg in self.created[created:]:
            agg.collect_events()  # discard its pending events
            if isinstance(agg, Contact):
                self.contacts[agg.id] = None
            else:
                self.addresses[agg.id] = None
        del self.created[created:]
        del self.pii[pii:]

    # -- what commands share ------------------------------------------------------
    def time(self, occurred_at: datetime | None) -> datetime:
        """When it happened; a time slightly ahead (clock skew) counts as now.

        Effective time cannot run ahead of what the ledger knows, so "now" reads
        the same from the status view and from the history.
        """
        if occurred_at is None:
            return self.now
        return min(check_occurred_at(occurred_at, self.now), self.now)

    def ref(self, kind: AddressKind | str, value: str) -> str:
        """The keyed reference of a personal value, which the vault gets with the batch."""
        ref = self.keyring.ref(kind, value)
        self.pii.append((ref, str(kind), value))
        return ref

    def phone_refs(self, phones: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(self.ref(AddressKind.PHONE, normalise_phone(p)) for p in phones))

    def email_refs(self, emails: Iterable[str]) -> list[str]:
        return list(dict.fromkeys(self.ref(AddressKind.EMAIL, normalise_email(e)) for e in emails))

    # -- compacted aggregates (see AggregateCache) ------------------------------------
    def ready(self, contact: Contact, at: datetime) -> None:
        """Before an event or guard at ``at`` that would refold a compacted contact's past."""
        if contact.needs_history(at):
            self.store.restore_history(contact)

    def signals(self, address: Address) -> list[Signal]:
        if address.signals is None:
            self.store.restore_history(address)
        assert address.signals is not None
        return address.signals

    def fast_forward(self, contact: Contact) -> bool:
        """Apply events stored since the cached copy was read; True if there were any."""
        if contact.pending_events:
            return False  # changed in this batch: already as fresh as the batch
        newer = self.store.events_after(contact)
        if newer and contact.entries is None:
            self.store.restore_history(contact)  # a newer event may be late: it refolds the past
        for event in newer:
            event.mutate(contact)
        return bool(newer)


def save(ledger: Writer, unit: Unit) -> None:
    """Store the unit's new events with the personal data they refer to and, when the
    views are current, their view rows: one transaction.

    Writing the views with the events costs one commit (one fsync) instead of three,
    and spares reading back and decoding what was just written.
    """
    staged = ledger.stage(a for a in unit.touched() if a.pending_events)
    if not staged.stored:
        return  # personal data is kept only for the events that refer to it
    projected = None
    with ledger.views_lock:
        try:
            with ledger.sql.transaction() as c:
                # Events first: on PostgreSQL their insert locks the events table,
                # so writers queue there before they touch any other row (no
                # deadlock over a personal-data row two batches both write).
                ids = ledger.insert_events(c, staged.stored)
                ledger.write_keys(c, staged)  # a compacted aggregate looks its keys up there
                ledger.write_resume_points(c, staged)
                written = ledger.vault.put_in(c, unit.pii)
                events = list(zip(ids, staged.events, strict=True))
                projected = _project_own(ledger.projector, c, events, staged.processing.aggregates)
        except BaseException:
            ledger.projector.forget()
            raise
        if projected is not None:
            ledger.projector.committed(projected)
    ledger.vault.known(written)
    ledger.saved(staged)


def _project_own(
    projector: ViewWriter, c: Any, events: list[tuple[int, Any]], aggregates: Any
) -> Any:
    """The views for the batch's events, in its transaction, under a savepoint: if
    they cannot be written now (a view table locked, any failure), the events are
    stored all the same and catch-up applies them (or records why it cannot, and
    queries fail closed meanwhile). An accepted event is never lost to a view."""
    c.execute("SAVEPOINT dnd_views")
    try:
        projected = projector.apply_own(c, events, aggregates)
    except Exception:
        c.execute("ROLLBACK TO SAVEPOINT dnd_views")
        projector.forget()
        return None
    c.execute("RELEASE SAVEPOINT dnd_views")
    return projected
