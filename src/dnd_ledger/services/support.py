"""Support approves an opt-in, with a ticket and the evidence (see :func:`rulings.support_opt_in`)."""

from __future__ import annotations

from dnd_ledger import commands as cmd
from dnd_ledger.commands import Outcome
from dnd_ledger.domain import inputs, rulings
from dnd_ledger.domain.values import Source
from dnd_ledger.idempotency import request_key
from dnd_ledger.services.ports import Ledger
from dnd_ledger.services.unit_of_work import Unit


def approve_opt_in(ledger: Ledger, unit: Unit, c: cmd.ApproveOptIn) -> Outcome:
    contact = unit.known_contact(c.location_id, c.contact_id)
    channels = inputs.channels(c.channels)
    approver = inputs.required("approver", c.approver)
    ticket = inputs.required("ticket", c.ticket)
    evidence = inputs.required("evidence", c.evidence, inputs.MAX_TEXT)
    at = unit.time(c.occurred_at)
    key = request_key(ledger.keyring, c.request_id, "approve opt-in", channels=set(channels),
                      approver=approver, ticket=ticket, evidence=evidence,
                      at=c.occurred_at)  # fmt: skip
    if contact.has_key(key):
        return Outcome("duplicate", contacts=(c.contact_id,))
    unit.ready(contact, at)
    ruling = rulings.support_opt_in(channels, approver, ticket, unit.ref("text", evidence))
    contact.record(
        ruling.event, occurred_at=at, source=Source.SUPPORT, actor=approver,
        idempotency_key=key, policy_version=ledger.policy.stamp, effect=ruling.effect,
        detail=ruling.detail, timestamp=unit.now,
    )  # fmt: skip
    return Outcome("appended", events=(ruling.event,), contacts=(c.contact_id,))
