"""Purpose-dependent decisions and the commands of the 2025-2027 consent rules.

``can-send --purpose`` starts from the DND decision of ``can_send``
and applies the rules that depend on why the message goes out: the one
confirmation text after an opt-out (:mod:`dnd_ledger.domain.confirmation`) and
quiet hours (:mod:`dnd_ledger.domain.quiet_hours`).
``confirmation record`` appends ``OptOutConfirmationSent`` on the address and
on every contact that has it, like any provider event.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from typing import Any

from dnd_ledger import commands as cmd
from dnd_ledger.commands import Outcome
from dnd_ledger.domain.address import Address, Signal, address_uuid
from dnd_ledger.domain.confirmation import (
    CONFIRMATION_EVENT,
    OPT_OUT_EVENT,
    confirmation_of,
    delay_seconds,
    judge,
    latest_opt_out,
)
from dnd_ledger.domain.decide import Decision
from dnd_ledger.domain.errors import AlreadyConfirmed, InvalidInput, LedgerUnavailable
from dnd_ledger.domain.inputs import check_id, required
from dnd_ledger.domain.quiet_hours import (
    Place,
    check_zone,
    merge_places,
    quiet,
    region_from_description,
)
from dnd_ledger.domain.state import NO_EFFECT, fold
from dnd_ledger.domain.timecheck import check_query_time
from dnd_ledger.domain.values import AddressKind, Channel, Direction, Mode, Purpose, Source
from dnd_ledger.services import queries
from dnd_ledger.services.ports import Ledger
from dnd_ledger.services.provider_signals import record_signal
from dnd_ledger.services.unit_of_work import Unit
from dnd_ledger.storage.pii import normalise_phone


class ConsentRules:
    """The purpose-dependent rules of one ledger."""

    def __init__(self, app: Ledger) -> None:
        self.app = app

    def can_send(
        self,
        location_id: str,
        contact_id: str,
        channel: Channel,
        *,
        purpose: Purpose | None = None,
        at: datetime | None = None,
        direction: Direction = Direction.OUTBOUND,
        mode: Mode = Mode.AUTOMATED,
        as_of: datetime | None = None,
        known_at: datetime | None = None,
        checked: bool = False,
    ) -> Decision:
        """``can_send``, then the rules for ``purpose`` at ``at`` (default now)."""
        at = check_query_time("at", at)
        d = queries.can_send(self.app, location_id, contact_id, channel, direction=direction,
                             mode=mode, as_of=as_of, known_at=known_at,
                             checked=checked)  # fmt: skip
        if direction is not Direction.OUTBOUND or as_of is not None or known_at is not None:
            return d
        if purpose is Purpose.OPT_OUT_CONFIRMATION and not d.allowed:
            return self._confirmation(location_id, contact_id, channel, d, at)
        if purpose is not None and d.allowed:
            return self._quiet_hours(location_id, contact_id, channel, purpose, d, at)
        return d

    def _quiet_hours(
        self, location_id: str, contact_id: str, channel: Channel, purpose: Purpose,
        d: Decision, at: datetime | None,
    ) -> Decision:  # fmt: skip
        rules = self.app.policy.quiet_hours
        if not any(channel in r.channels and purpose in r.purposes for r in rules):
            return d
        found = quiet(rules, channel, purpose, at or self.app.clock(),
                      self.place(location_id, contact_id))  # fmt: skip
        if found is None:
            return d
        return replace(d, allowed=False, rule=found.rule.name, reason=found.reason())

    def place(self, location_id: str, contact_id: str) -> Place:
        """Where the contact may be: what was recorded for it, else its phone numbers'
        regions and zones (phonenumbers' data); nothing known: anywhere in the US."""
        app = self.app
        try:
            said = [
                r.fields.detail
                for r in app.views.trail.of_contact(
                    location_id,
                    contact_id,
                    "a.event = 'ContactLocated'",
                    tail=" ORDER BY a.position DESC LIMIT 1",
                )
            ]
            refs = app.sql.fetchall(
                "SELECT ref FROM dnd_address_index WHERE location_id = ? AND contact_id = ?"
                " AND kind = ?",
                [location_id, contact_id, AddressKind.PHONE.value],
            )
        except Exception as e:  # no answer, no decision: fail closed
            raise LedgerUnavailable(f"cannot read where the contact is: {e}") from e
        located = json.loads(said[0]) if said else {}
        from_numbers = merge_places(_place_of_number(app.vault.get(str(r[0]))) for r in refs)
        regions = (located["region"],) if located.get("region") else from_numbers.regions
        zones = (located["time_zone"],) if located.get("time_zone") else from_numbers.zones
        return Place(regions or ("US",), zones)

    def _confirmation(
        self, location_id: str, contact_id: str, channel: Channel, d: Decision, at: datetime | None
    ) -> Decision:
        rule = self.app.policy.confirmation
        if channel not in rule.channels:
            return replace(d, rule="confirmation.not-this-channel",
                           reason=f"{d.reason}; the opt-out confirmation goes by "
                           f"{', '.join(rule.channels)} only")  # fmt: skip
        blocks = fold(self.app.views.entries(location_id, contact_id, None, None)).blocks[channel]
        others = [b for b in blocks if b.event != OPT_OUT_EVENT]
        if others:
            return replace(d, rule="confirmation.other-dnd",
                           reason=f"{d.reason}; no confirmation text: {channel.value} is DND for "
                           f"a reason other than an opt-out keyword ({others[0].event})")  # fmt: skip
        when = at or self.app.clock()
        verdicts = []
        for origin in dict.fromkeys(b.origin for b in blocks):
            signals = self._address_signals(location_id, origin)
            opt_out = latest_opt_out(signals, channel, when)
            if opt_out is not None:
                verdicts.append(judge(rule, opt_out, confirmation_of(signals, opt_out), when))
        if not verdicts:
            return d
        v = max(verdicts, key=lambda v: v.allowed)
        return replace(d, allowed=v.allowed, rule=v.rule, reason=v.reason)

    def _address_signals(self, location_id: str, ref: str) -> list[Signal]:
        """Read from the event store itself, not a cache: another process may have
        recorded the confirmation a moment ago."""
        try:
            events = self.app.events.get(address_uuid(location_id, ref))
            return [e.signal() for e in events if isinstance(e, Address.SignalRecorded)]
        except Exception as e:  # no answer, no decision: fail closed
            raise LedgerUnavailable(f"cannot read the opt-out's address stream: {e}") from e


def record_confirmation(app: Ledger, unit: Unit, c: cmd.RecordConfirmation) -> Outcome:
    check_id("location_id", c.location_id)
    rule = app.policy.confirmation
    if c.channel not in rule.channels:
        raise InvalidInput(
            f"the opt-out confirmation goes by {', '.join(rule.channels)}, not {c.channel}"
        )
    sid = required("message_sid", c.message_sid)
    ref = unit.phone_refs([c.to_address])[0]
    at = unit.time(c.occurred_at)
    address = unit.address(c.location_id, AddressKind.PHONE, ref)
    key = f"confirmation:{sid}"
    if address.has_key(key):
        return Outcome("duplicate", events=(CONFIRMATION_EVENT,), contacts=tuple(address.claimants))
    signals = unit.signals(address)
    opt_out = latest_opt_out(signals, c.channel, at)
    if opt_out is None:
        raise InvalidInput(
            f"no opt-out keyword on {c.channel.value} from this address by {at.isoformat()}: "
            "there is nothing to confirm"
        )
    confirmed = confirmation_of(signals, opt_out)
    if confirmed is not None:
        raise AlreadyConfirmed(
            f"a confirmation (message {confirmed.detail.get('message_sid')}) was already recorded "
            f"for the opt-out at {opt_out.occurred_at.isoformat()}; only one is allowed"
        )
    delay = delay_seconds(opt_out, at)
    detail: dict[str, Any] = {
        "address_ref": ref,
        "message_sid": sid,
        "opt_out": opt_out.event_id,
        "opt_out_at": opt_out.occurred_at.isoformat(),
        "delay_seconds": delay,
        "within_window": delay <= rule.window_seconds,
    }
    return record_signal(
        app,
        unit,
        c.location_id,
        AddressKind.PHONE,
        ref,
        CONFIRMATION_EVENT,
        at,
        key,
        NO_EFFECT,
        detail,
    )


def _place_of_number(number: str | None) -> Place:
    import phonenumbers
    from phonenumbers import geocoder, timezone

    if number is None:  # erased: where it was is unknown
        return Place(("US",), ())
    try:
        parsed = phonenumbers.parse(normalise_phone(number))
    except Exception:
        return Place(("US",), ())
    country = phonenumbers.region_code_for_number(parsed) or "US"
    region = region_from_description(geocoder.description_for_number(parsed, "en"), country)
    zones = tuple(z for z in timezone.time_zones_for_number(parsed) if z != "Etc/Unknown")
    return Place((region,), zones)


_REGION = re.compile(r"^[A-Z]{2}(-[A-Z]{2})?$")


def locate_contact(app: Ledger, unit: Unit, c: cmd.LocateContact) -> Outcome:
    check_id("location_id", c.location_id)
    contact = unit.known_contact(c.location_id, c.contact_id)
    detail: dict[str, Any] = {}
    if c.region is not None:
        if not _REGION.fullmatch(c.region):
            raise InvalidInput(f"region {c.region!r} is not like US or US-FL")
        detail["region"] = c.region
    if c.time_zone is not None:
        try:
            detail["time_zone"] = check_zone(c.time_zone)
        except ValueError as e:
            raise InvalidInput(str(e)) from None
    if not detail:
        raise InvalidInput("give a region, a time zone or both")
    at = unit.time(c.occurred_at)
    unit.ready(contact, at)
    contact.record(
        "ContactLocated", occurred_at=at, source=Source.USER, actor=c.actor, idempotency_key=None,
        policy_version=app.policy.stamp, effect=NO_EFFECT, detail=detail, timestamp=unit.now,
    )  # fmt: skip
    return Outcome("appended", events=("ContactLocated",), contacts=(c.contact_id,))
