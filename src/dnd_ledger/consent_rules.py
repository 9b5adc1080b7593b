"""Purpose-dependent decisions and the commands of the 2025-2027 consent rules.

``can-send --purpose`` starts from the DND decision of :meth:`DndLedger.can_send`
and applies the rules that depend on why the message goes out: the one
confirmation text after an opt-out (:mod:`dnd_ledger.domain.confirmation`).
``confirmation record`` appends ``OptOutConfirmationSent`` on the address and
on every contact that has it, like any provider event.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

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
from dnd_ledger.domain.state import NO_EFFECT, fold
from dnd_ledger.domain.timecheck import check_query_time
from dnd_ledger.domain.values import AddressKind, Channel, Direction, Mode, Purpose

if TYPE_CHECKING:
    from dnd_ledger.application import DndLedger, _Unit


class ConsentRules:
    """The purpose-dependent rules of one ledger."""

    def __init__(self, app: DndLedger) -> None:
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
        """:meth:`DndLedger.can_send`, then the rules for ``purpose`` at ``at`` (default now)."""
        at = check_query_time("at", at)
        d = self.app.can_send(location_id, contact_id, channel, direction=direction, mode=mode,
                              as_of=as_of, known_at=known_at, checked=checked)  # fmt: skip
        if direction is not Direction.OUTBOUND or as_of is not None or known_at is not None:
            return d
        if purpose is Purpose.OPT_OUT_CONFIRMATION and not d.allowed:
            return self._confirmation(location_id, contact_id, channel, d, at)
        return d

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


def record_confirmation(app: DndLedger, unit: _Unit, c: cmd.RecordConfirmation) -> Outcome:
    from dnd_ledger.application import _check_id, _required

    _check_id("location_id", c.location_id)
    rule = app.policy.confirmation
    if c.channel not in rule.channels:
        raise InvalidInput(
            f"the opt-out confirmation goes by {', '.join(rule.channels)}, not {c.channel}"
        )
    sid = _required("message_sid", c.message_sid)
    ref = app._phone_refs([c.to_address])[0]
    at = app._time(unit, c.occurred_at)
    address = unit.address(c.location_id, AddressKind.PHONE, ref)
    key = f"confirmation:{sid}"
    if key in address.keys:
        return Outcome("duplicate", events=(CONFIRMATION_EVENT,), contacts=tuple(address.claimants))
    signals = app._signals(address)
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
    return app._signal(
        unit, c.location_id, AddressKind.PHONE, ref, CONFIRMATION_EVENT, at, key, NO_EFFECT, detail
    )
