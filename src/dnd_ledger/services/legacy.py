"""Importing a row of the legacy single-flag DND system (see :func:`rulings.legacy_import`)."""

from __future__ import annotations

from dnd_ledger import commands as cmd
from dnd_ledger.commands import Outcome
from dnd_ledger.domain import rulings
from dnd_ledger.domain.inputs import check_id
from dnd_ledger.domain.values import Source
from dnd_ledger.idempotency import legacy_key
from dnd_ledger.services.ports import Ledger
from dnd_ledger.services.registration import ensure_contact
from dnd_ledger.services.unit_of_work import Unit

ACTOR = "legacy-import"


def import_legacy(ledger: Ledger, unit: Unit, c: cmd.ImportLegacy) -> Outcome:
    check_id("location_id", c.location_id)
    check_id("contact_id", c.contact_id)
    at = unit.time(c.occurred_at)
    phones, emails = unit.phone_refs(c.phones), unit.email_refs(c.emails)
    contact = unit.contact(c.location_id, c.contact_id)
    key = legacy_key(ledger.keyring, c.dnd, phones, emails, c.occurred_at)
    if contact is not None and contact.has_key(key):  # an identical row: nothing new
        return Outcome("duplicate", contacts=(c.contact_id,))
    reg = ensure_contact(
        ledger, unit, c.location_id, c.contact_id, phones, emails, at, Source.IMPORT, ACTOR, None
    )
    contact = unit.contact(c.location_id, c.contact_id)
    assert contact is not None
    ruling = rulings.legacy_import(c.dnd)
    unit.ready(contact, at)
    contact.record(
        ruling.event, occurred_at=at, source=Source.IMPORT, actor=ACTOR,
        idempotency_key=key, policy_version=ledger.policy.stamp, effect=ruling.effect,
        detail=ruling.detail, timestamp=unit.now,
    )  # fmt: skip
    events = (*(reg.events if reg.result == "appended" else ()), ruling.event)
    return Outcome("appended", events=events, contacts=(c.contact_id,))
