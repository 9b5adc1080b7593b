"""Looking after contacts: removing an address, erasing personal data, revealing a value.

Removing an address records ``AddressRemoved`` on the contact and ``Released`` on
the address: later provider events for that address no longer reach the contact.
DND the address brought stays on the contact, on the safe side (an opt-out is the
person's, whichever number it came from); a user or support clears it the usual way.

Erasing records ``PersonalDataErased`` (references and counts, no values), then
deletes from the vault every value only this contact refers to (see
:mod:`dnd_ledger.services.erasure`). The events, their hashes, the DND state and the
proofs stay as they were: the contact stays suppressed.
"""

from __future__ import annotations

from dnd_ledger import commands as cmd
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.inputs import optional_text, required
from dnd_ledger.domain.values import AddressKind, Source
from dnd_ledger.idempotency import request_key
from dnd_ledger.services.erasure import Erasure, carry_out, plan_erasure
from dnd_ledger.services.ports import Ledger
from dnd_ledger.services.unit_of_work import Unit
from dnd_ledger.storage.pii import normalise_email, normalise_phone


def remove_address(ledger: Ledger, unit: Unit, c: cmd.RemoveAddress) -> cmd.Outcome:
    contact = unit.known_contact(c.location_id, c.contact_id)
    actor = required("actor", c.actor)
    reason = optional_text("reason", c.reason)
    if not c.phones and not c.emails:
        raise InvalidInput("name the address to remove: a phone number or an email address")
    # Keyed references only: the values are not stored again (they may have been erased).
    phones = list(dict.fromkeys(ledger.keyring.ref(AddressKind.PHONE, normalise_phone(p))
                                for p in c.phones))  # fmt: skip
    emails = list(dict.fromkeys(ledger.keyring.ref(AddressKind.EMAIL, normalise_email(e))
                                for e in c.emails))  # fmt: skip
    at = unit.time(c.occurred_at)
    key = request_key(ledger.keyring, c.request_id, "remove address", phones=set(phones),
                      emails=set(emails), actor=actor, reason=reason, at=c.occurred_at)  # fmt: skip
    if contact.has_key(key):
        return cmd.Outcome("duplicate", contacts=(c.contact_id,))
    for ref in phones + emails:
        if ref not in contact.phones and ref not in contact.emails:
            raise InvalidInput(
                f"contact {c.contact_id!r} has no address with reference {ref}; nothing was "
                "recorded (see `dnd-ledger contacts show` for its addresses)"
            )
    contact.trigger_event(
        Contact.AddressRemoved, timestamp=unit.now, occurred_at=at, phones=phones, emails=emails,
        source=Source.USER, actor=actor, idempotency_key=key, policy_version=ledger.policy.stamp,
        detail={"reason": reason} if reason else {},
    )  # fmt: skip
    for kind, refs in ((AddressKind.PHONE, phones), (AddressKind.EMAIL, emails)):
        for ref in refs:
            unit.address(c.location_id, kind, ref).release(c.contact_id, at, timestamp=unit.now)
    return cmd.Outcome(
        "appended", events=("AddressRemoved",), contacts=(c.contact_id,),
        detail={"removed": phones + emails},
    )  # fmt: skip


def record_erasure(ledger: Ledger, unit: Unit, c: cmd.RecordErasure) -> cmd.Outcome:
    contact = unit.known_contact(c.location_id, c.contact_id)
    actor = required("actor", c.actor)
    reason = required("reason", c.reason)
    contact.trigger_event(
        Contact.PersonalDataErased, timestamp=unit.now, occurred_at=unit.now,
        source=Source.SUPPORT, actor=actor, idempotency_key=None,
        policy_version=ledger.policy.stamp,
        detail={"reason": reason, "erased_refs": list(c.erased), "kept_refs": list(c.kept)},
    )  # fmt: skip
    return cmd.Outcome("appended", events=("PersonalDataErased",), contacts=(c.contact_id,))


def erase(ledger: Ledger, location_id: str, contact_id: str, actor: str, reason: str) -> Erasure:
    """Record the erasure, then delete the values (a rerun finishes an interrupted one)."""
    with ledger.write_lock:
        plan = plan_erasure(ledger, location_id, contact_id)
        ledger.execute(
            cmd.RecordErasure(
                location_id,
                contact_id,
                actor,
                reason,
                plan.erased_refs,
                tuple(k.ref for k in plan.kept),
            )
        )
        return carry_out(ledger, plan)


def belongs_to(ledger: Ledger, location_id: str, ref: str) -> bool:
    """Whether the location's events refer to ``ref`` (a token for one location reveals
    only that location's values)."""
    if ref.startswith(("ph_", "em_")):
        rows = ledger.sql.fetchall(
            "SELECT 1 FROM dnd_addresses WHERE location_id = ? AND ref = ?", (location_id, ref)
        )
        return bool(rows)
    # A text's reference is in some event's detail (an Address.Seen has none). The
    # database finds the stored events whose bytes hold it (a reference is letters and
    # digits: JSON writes it as it is); only those are decoded, to look in the detail.
    quoted = f'"{ref}"'
    holds = (
        "instr(e.state, ?) > 0" if ledger.sql.dialect == "sqlite" else "position(? in e.state) > 0"
    )
    found = ledger.views.trail.scan(
        f"a.location_id = ? AND a.event <> 'Address.Seen' AND {holds}",
        (location_id, ref.encode()),
    )
    return any(quoted in r.fields.detail for r in found)


def reveal(ledger: Ledger, ref: str) -> str | None:
    """The value behind a reference, or None when it was erased (or never existed)."""
    if not ref.startswith(("ph_", "em_", "tx_")) or not ref[3:].isalnum():
        raise InvalidInput("not a reference: one starts with ph_, em_ or tx_")
    return ledger.vault.get(ref)
