"""Provider events: inbound messages, carrier statuses, email events.

The rules of :mod:`dnd_ledger.domain.provider_rules` decide the event and its effect;
:func:`record_signal` records it on the address, then on every contact that has it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dnd_ledger import commands as cmd
from dnd_ledger import textcheck
from dnd_ledger.commands import Outcome
from dnd_ledger.domain import provider_rules
from dnd_ledger.domain.errors import InvalidInput
from dnd_ledger.domain.inputs import MAX_TEXT, check_id, drop_none, required
from dnd_ledger.domain.rulings import Ignored
from dnd_ledger.domain.state import Effect
from dnd_ledger.domain.values import AddressKind, Source
from dnd_ledger.idempotency import email_key
from dnd_ledger.services.ports import Ledger
from dnd_ledger.services.unit_of_work import Unit
from dnd_ledger.storage.pii import normalise_email


def receive_inbound(ledger: Ledger, unit: Unit, c: cmd.ReceiveInbound) -> Outcome:
    check_id("location_id", c.location_id)
    if c.channel not in provider_rules.MESSAGE_CHANNELS:
        raise InvalidInput(f"inbound messages arrive on sms or whatsapp, not {c.channel}")
    message_id = required("message_id", c.message_id)
    if len(c.body) > MAX_TEXT:
        raise InvalidInput(f"message body is longer than {MAX_TEXT} characters")
    ref = unit.phone_refs([c.from_address])[0]
    at = unit.time(c.occurred_at)
    body = textcheck.clean_body(c.body)  # always classified and recorded, never refused
    theirs = textcheck.clean_body(c.provider_opt_out_type or "").strip().upper() or None
    body_ref = unit.ref("text", body)
    received = ledger.keyring.ref("text", textcheck.exact(c.body)) if body != c.body else None
    ruling = provider_rules.inbound(
        ledger.policy, c.channel, body, theirs, at,
        ref=ref, body_ref=body_ref, received_ref=received, message_id=message_id,
    )  # fmt: skip
    if isinstance(ruling, Ignored):
        return Outcome("ignored", detail=ruling.detail)
    return record_signal(
        ledger, unit, c.location_id, AddressKind.PHONE, ref, ruling.event, at,
        f"inbound:{message_id}", ruling.effect, ruling.detail,
    )  # fmt: skip


def report_carrier_status(ledger: Ledger, unit: Unit, c: cmd.ReportCarrierStatus) -> Outcome:
    check_id("location_id", c.location_id)
    message_id = required("message_id", c.message_id)
    ignored = provider_rules.carrier_ignored(ledger.policy, c.error_code)
    if ignored is not None or c.error_code is None:
        return Outcome("ignored", detail=ignored.detail if ignored else {})
    ref = unit.phone_refs([c.to_address])[0]
    at = unit.time(c.occurred_at)
    ruling = provider_rules.carrier(
        ledger.policy, c.error_code, c.status, c.channel, at, ref=ref, message_id=message_id
    )
    key = f"status:{message_id}:{c.status}:{c.error_code}"
    return record_signal(
        ledger, unit, c.location_id, AddressKind.PHONE, ref, ruling.event, at, key,
        ruling.effect, ruling.detail,
    )  # fmt: skip


def report_email_event(ledger: Ledger, unit: Unit, c: cmd.ReportEmailEvent) -> Outcome:
    check_id("location_id", c.location_id)
    token = required("idempotency_key", c.idempotency_key)
    ignored = provider_rules.email_ignored(ledger.policy, c.signal, c.reason)
    if ignored is not None:
        return Outcome("ignored", detail=ignored.detail)
    ref = unit.email_refs([c.recipient])[0]
    at = unit.time(c.occurred_at)
    ruling = provider_rules.email(ledger.policy, c.signal, c.reason, ref=ref, event_id=c.event_id)
    key = email_key(token, normalise_email(c.recipient), ref, c.key_per_recipient)
    return record_signal(
        ledger, unit, c.location_id, AddressKind.EMAIL, ref, ruling.event, at, key,
        ruling.effect, ruling.detail,
    )  # fmt: skip


def record_signal(
    ledger: Ledger, unit: Unit, location_id: str, kind: AddressKind, ref: str, event: str,
    at: datetime, key: str, effect: Effect, detail: dict[str, Any],
    source: Source = Source.PROVIDER, actor: str | None = None,
) -> Outcome:  # fmt: skip
    """Record a provider event on its address, then on every contact that has it."""
    address = unit.address(location_id, kind, ref)
    if address.has_key(key):
        return Outcome("duplicate", events=(event,), contacts=tuple(address.claimants))
    stamp = ledger.policy.stamp
    signal = address.record_signal(
        event, occurred_at=at, source=source, actor=actor, idempotency_key=key,
        policy_version=stamp, effect=effect.to_dict(), detail=detail, timestamp=unit.now,
    )  # fmt: skip
    for contact_id in address.claimants:
        contact = unit.contact(location_id, contact_id)
        assert contact is not None
        if contact.has_key(key):
            continue
        unit.ready(contact, at)
        contact.record(
            event, occurred_at=at, source=source, actor=actor, idempotency_key=key,
            policy_version=stamp, effect=effect,
            detail={**detail, "via": signal.event_id}, timestamp=unit.now,
        )  # fmt: skip
    state = "held until a contact registers the address" if not address.claimants else None
    return Outcome(
        "appended", events=(event,), contacts=tuple(address.claimants),
        detail=drop_none(address=state),
    )  # fmt: skip
