"""A user sets or clears DND from the contact record (see :mod:`dnd_ledger.domain.rulings`)."""

from __future__ import annotations

from datetime import datetime

from dnd_ledger import commands as cmd
from dnd_ledger.commands import Outcome
from dnd_ledger.domain import inputs, rulings
from dnd_ledger.domain.contact import Contact
from dnd_ledger.domain.errors import LedgerError
from dnd_ledger.domain.rulings import Ruling
from dnd_ledger.domain.values import Channel, Source
from dnd_ledger.idempotency import request_key
from dnd_ledger.services.ports import Ledger
from dnd_ledger.services.unit_of_work import Unit


def set_dnd(ledger: Ledger, unit: Unit, c: cmd.SetDnd) -> Outcome:
    contact, channels, actor, at, reason = _given(unit, c)
    key = request_key(ledger.keyring, c.request_id, "dnd set", channels=set(channels),
                      actor=actor, reason=reason, at=c.occurred_at)  # fmt: skip
    if contact.has_key(key):
        return Outcome("duplicate", contacts=(c.contact_id,))
    ruling = rulings.dnd_set_by_user(channels, actor, reason)
    unit.ready(contact, at)
    return _record(ledger, unit, contact, ruling, at, actor, key)


def clear_dnd(ledger: Ledger, unit: Unit, c: cmd.ClearDnd) -> Outcome:
    contact, channels, actor, at, reason = _given(unit, c)
    key = request_key(ledger.keyring, c.request_id, "dnd clear", channels=set(channels),
                      actor=actor, reason=reason, suppression_removed=c.suppression_removed,
                      at=c.occurred_at)  # fmt: skip
    unit.ready(contact, at)  # the guard folds the state at ``at``
    while True:
        if contact.has_key(key):
            return Outcome("duplicate", contacts=(c.contact_id,))
        try:
            contact.check_can_clear(channels, at, c.suppression_removed)
            break
        except LedgerError:
            # The cached copy may lag another process's writes. An accepted
            # clear would meet them as a version conflict on save (and be
            # judged again); a refusal never reaches save, so judge it again
            # on the latest events before refusing.
            if not unit.fast_forward(contact):
                raise
    ruling = rulings.dnd_cleared_by_user(channels, actor, reason, c.suppression_removed)
    return _record(ledger, unit, contact, ruling, at, actor, key)


def _given(
    unit: Unit, c: cmd.SetDnd | cmd.ClearDnd
) -> tuple[Contact, tuple[Channel, ...], str, datetime, str | None]:
    """The contact and the checked inputs of a user's set or clear."""
    contact = unit.known_contact(c.location_id, c.contact_id)
    channels = inputs.channels(c.channels)
    actor = inputs.required("actor", c.actor)
    return (
        contact,
        channels,
        actor,
        unit.time(c.occurred_at),
        inputs.optional_text("reason", c.reason),
    )


def _record(
    ledger: Ledger, unit: Unit, contact: Contact, ruling: Ruling, at: datetime, actor: str,
    key: str | None,
) -> Outcome:  # fmt: skip
    contact.record(
        ruling.event, occurred_at=at, source=Source.USER, actor=actor, idempotency_key=key,
        policy_version=ledger.policy.stamp, effect=ruling.effect, detail=ruling.detail,
        timestamp=unit.now,
    )  # fmt: skip
    return Outcome("appended", events=(ruling.event,), contacts=(contact.contact_id,))
