"""Registering a contact, or adding addresses to one it already is.

A new address is claimed on the contact's behalf; what the address said before
(a STOP that came first, a bounce) applies to the contact from then on.
"""

from __future__ import annotations

from datetime import datetime

from dnd_ledger import commands as cmd
from dnd_ledger.commands import Outcome
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.inputs import check_id
from dnd_ledger.domain.state import Effect
from dnd_ledger.domain.values import AddressKind, Source
from dnd_ledger.idempotency import request_key
from dnd_ledger.services.ports import Ledger
from dnd_ledger.services.unit_of_work import Unit


def register(ledger: Ledger, unit: Unit, c: cmd.RegisterContact) -> Outcome:
    check_id("location_id", c.location_id)
    check_id("contact_id", c.contact_id)
    at = unit.time(c.occurred_at)
    phones, emails = unit.phone_refs(c.phones), unit.email_refs(c.emails)
    key = request_key(ledger.keyring, c.request_id, "register", phones=set(phones),
                      emails=set(emails), actor=c.actor, at=c.occurred_at)  # fmt: skip
    return ensure_contact(
        ledger, unit, c.location_id, c.contact_id, phones, emails, at, Source.USER, c.actor, key
    )


def ensure_contact(
    ledger: Ledger, unit: Unit, location_id: str, contact_id: str, phones: list[str],
    emails: list[str], at: datetime, source: Source, actor: str | None, key: str | None,
) -> Outcome:  # fmt: skip
    """Register the contact with these addresses, or add those it does not have yet."""
    contact = unit.contact(location_id, contact_id)
    if contact is not None and contact.has_key(key):
        return Outcome("duplicate", contacts=(contact_id,))
    stamp = ledger.policy.stamp
    if contact is None:
        contact = Contact.register(
            location_id, contact_id, at, phones, emails, source, actor, key, stamp,
            timestamp=unit.now,
        )  # fmt: skip
        unit.add_contact(contact)
        new_phones, new_emails = phones, emails
        events = ["Registered"]
    else:
        new_phones = [p for p in phones if p not in contact.phones]
        new_emails = [e for e in emails if e not in contact.emails]
        if not new_phones and not new_emails:
            return Outcome("duplicate", contacts=(contact_id,))
        contact.add_addresses(
            new_phones, new_emails, at, source, actor, key, stamp, timestamp=unit.now
        )
        events = ["AddressesAdded"]
    for kind, refs in ((AddressKind.PHONE, new_phones), (AddressKind.EMAIL, new_emails)):
        for ref in refs:
            address = unit.address(location_id, kind, ref)
            address.claim(contact_id, at, timestamp=unit.now)
            # What the address said before this contact had it applies now.
            for s in unit.signals(address):
                if contact.has_key(s.idempotency_key):
                    continue
                unit.ready(contact, s.occurred_at)
                contact.record(
                    s.event,
                    occurred_at=s.occurred_at,
                    source=s.source,
                    actor=s.actor,
                    idempotency_key=s.idempotency_key,
                    policy_version=s.policy_version,
                    effect=Effect.from_dict(s.effect),
                    detail={**s.detail, "via": s.event_id},
                    timestamp=unit.now,
                )
                events.append(s.event)
    return Outcome("appended", events=tuple(events), contacts=(contact_id,))
