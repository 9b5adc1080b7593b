"""Erasing a contact's personal data (DESIGN §2.4) while the ledger stays intact.

The events hold keyed references; the values live in the vault. Erasing a
contact removes from the vault every value its events refer to: its phone
numbers and email addresses, the bodies of the messages it sent and the opt-in
evidence recorded for it. The events, their hashes and the opt-outs they carry
stay as they are.

An address is shared when another contact of the location has it too. While
that contact is not erased, the address (and the bodies of the messages that
came from it, which reached both contacts) stays in the vault for it, and the
result says so. Erasures are recorded (``dnd_erasures``), so the last of the
contacts sharing an address to be erased takes it with them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dnd_ledger.domain.address import Address, address_uuid
from dnd_ledger.domain.contact import Contact
from dnd_ledger.services.ports import Ledger
from dnd_ledger.services.queries import load_contact

TABLE = "dnd_erasures"


@dataclass(frozen=True)
class Kept:
    """A value left in the vault because other contacts, not erased, still have it."""

    ref: str
    kind: str  # phone, email or text
    for_contacts: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "kind": self.kind, "kept_for": list(self.for_contacts)}


@dataclass(frozen=True)
class Erasure:
    """What erasing one contact did."""

    location_id: str
    contact_id: str
    erased: int  # values removed from the vault
    erased_refs: tuple[str, ...]
    kept: tuple[Kept, ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        return {
            "location_id": self.location_id,
            "contact_id": self.contact_id,
            "erased": self.erased,
            "erased_refs": list(self.erased_refs),
            "kept": [k.to_json() for k in self.kept],
        }


def create_table(ledger: Ledger) -> None:
    ledger.sql.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} (location_id TEXT NOT NULL, "
        "contact_id TEXT NOT NULL, erased_at TEXT NOT NULL, PRIMARY KEY (location_id, contact_id))"
    )


def erased_contacts(ledger: Ledger, location_id: str) -> set[str]:
    rows = ledger.sql.fetchall(
        f"SELECT contact_id FROM {TABLE} WHERE location_id = ?", (location_id,)
    )
    return {str(r[0]) for r in rows}


def erase_personal_data(ledger: Ledger, location_id: str, contact_id: str) -> Erasure:
    """Erase the contact's personal values from the vault (see the module's notes)."""
    with ledger.write_lock:
        return carry_out(ledger, plan_erasure(ledger, location_id, contact_id))


def plan_erasure(ledger: Ledger, location_id: str, contact_id: str) -> Erasure:
    """What erasing the contact would remove and keep (``erased`` is 0: nothing done yet)."""
    create_table(ledger)
    with ledger.write_lock:
        contact = load_contact(ledger, location_id, contact_id)
        events = list(ledger.events.get(contact.id))
        erased = erased_contacts(ledger, location_id) | {contact_id}
        addresses = _addresses(events)
        kept_for = {ref: _sharing(ledger, location_id, ref, erased) for ref in addresses}
        refs: list[str] = []
        kept: list[Kept] = []
        for ref, kind in addresses.items():
            if kept_for[ref]:
                kept.append(Kept(ref, kind, kept_for[ref]))
            else:
                refs.append(ref)
        for ref, origin in _texts(events).items():
            others = kept_for.get(origin, ()) if origin is not None else ()
            if others:
                kept.append(Kept(ref, "text", others))
            else:
                refs.append(ref)
    return Erasure(location_id, contact_id, 0, tuple(refs), tuple(kept))


def carry_out(ledger: Ledger, plan: Erasure) -> Erasure:
    """Remove the planned values from the vault and remember the contact as erased."""
    create_table(ledger)
    ledger.sql.execute(
        f"INSERT INTO {TABLE} (location_id, contact_id, erased_at) VALUES (?, ?, ?) "
        "ON CONFLICT (location_id, contact_id) DO NOTHING",
        (plan.location_id, plan.contact_id, _iso(ledger.clock())),
    )
    count = ledger.vault.erase(list(plan.erased_refs))
    return Erasure(plan.location_id, plan.contact_id, count, plan.erased_refs, plan.kept)


def _addresses(events: list[Any]) -> dict[str, str]:
    """Every address the contact has had (removed ones too), with its kind."""
    found: dict[str, str] = {}
    for event in events:
        if isinstance(event, Contact.Registered | Contact.AddressesAdded):
            found.update(dict.fromkeys(event.phones, "phone"))
            found.update(dict.fromkeys(event.emails, "email"))
    return found


def _sharing(ledger: Ledger, location_id: str, ref: str, erased: set[str]) -> tuple[str, ...]:
    """The contacts, not erased, that have the address ``ref`` too."""
    found = ledger.get_aggregate(address_uuid(location_id, ref))
    if not isinstance(found, Address):
        return ()
    return tuple(sorted(c for c in found.claimants if c not in erased))


def _texts(events: list[Any]) -> dict[str, str | None]:
    """Every text reference in the contact's events, with the address it came from."""
    texts: dict[str, str | None] = {}
    for event in events:
        if not isinstance(event, Contact.DndEvent):
            continue
        detail = event.detail
        origin = detail.get("address_ref")
        for key, value in detail.items():
            if key.endswith("_ref") and key != "address_ref" and isinstance(value, str):
                texts[value] = origin if isinstance(origin, str) else None
    return texts


def _iso(t: datetime) -> str:
    return t.isoformat()
