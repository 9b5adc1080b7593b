"""The one confirmation text after an opt-out, on every backend."""

from __future__ import annotations

import pytest
from tests.conftest import SHARED_DATABASES, Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.errors import AlreadyConfirmed, InvalidInput
from dnd_ledger.domain.values import Channel, Purpose

L, ADA, PHONE = "loc-1", "ada", "+14155550100"
SMS, WA, CALL = Channel.SMS, Channel.WHATSAPP, Channel.CALL
CONFIRM = Purpose.OPT_OUT_CONFIRMATION


@pytest.fixture
def stopped(ledger: DndLedger, clock: Clock) -> DndLedger:
    ledger.execute(c.RegisterContact(L, ADA, (PHONE,)))
    ledger.execute(c.ReceiveInbound(L, SMS, PHONE, "STOP", "SM-1"))
    return ledger


def confirm(ledger: DndLedger, sid: str = "SM-conf", **kw) -> c.Outcome:
    return ledger.execute(c.RecordConfirmation(L, SMS, PHONE, sid, **kw))


def ask(ledger: DndLedger, channel: Channel = SMS, purpose: Purpose | None = CONFIRM):
    return ledger.rules.can_send(L, ADA, channel, purpose=purpose)


def test_at_four_minutes_the_confirmation_is_allowed(stopped: DndLedger, clock: Clock) -> None:
    clock.advance(minutes=4)
    d = ask(stopped)
    assert d.allowed
    assert d.rule == "confirmation.within-window"
    assert "240 s ago (window 300 s)" in d.reason
    assert not ask(stopped, purpose=None).allowed  # any other message stays blocked
    assert not ask(stopped, purpose=Purpose.MARKETING).allowed


def test_at_six_minutes_the_window_has_passed(stopped: DndLedger, clock: Clock) -> None:
    clock.advance(minutes=6)
    d = ask(stopped)
    assert not d.allowed
    assert d.rule == "confirmation.window-passed"
    assert "360 s ago" in d.reason


def test_one_confirmation_then_the_second_is_refused(stopped: DndLedger, clock: Clock) -> None:
    clock.advance(seconds=30)
    out = confirm(stopped)
    assert out.result == "appended"
    assert out.events == ("OptOutConfirmationSent",)
    d = ask(stopped)
    assert (d.allowed, d.rule) == (False, "confirmation.already-sent")
    assert "SM-conf" in d.reason
    before = len(stopped.history(L, ADA))
    with pytest.raises(AlreadyConfirmed, match="only one is allowed"):
        confirm(stopped, "SM-conf-2")
    assert len(stopped.history(L, ADA)) == before
    assert confirm(stopped).result == "duplicate"  # the same message reported again


def test_the_audit_trail_shows_the_confirmation_and_its_delay(
    stopped: DndLedger, clock: Clock
) -> None:
    clock.advance(seconds=42)
    confirm(stopped)
    last = stopped.history(L, ADA)[-1]
    assert last.event == "OptOutConfirmationSent"
    assert last.detail["delay_seconds"] == 42
    assert last.detail["within_window"] is True
    assert last.detail["message_sid"] == "SM-conf"
    assert stopped.status(L, ADA).channels[SMS].status.value == "permanent"  # no DND change


def test_a_late_confirmation_is_recorded_as_outside_the_window(
    stopped: DndLedger, clock: Clock
) -> None:
    clock.advance(minutes=7)
    confirm(stopped)
    assert stopped.history(L, ADA)[-1].detail["within_window"] is False


def test_a_new_stop_opens_a_new_window(stopped: DndLedger, clock: Clock) -> None:
    confirm(stopped)
    clock.advance(hours=1)
    stopped.execute(c.ReceiveInbound(L, SMS, PHONE, "STOP", "SM-2"))
    clock.advance(minutes=1)
    assert ask(stopped).allowed
    assert confirm(stopped, "SM-conf-2").result == "appended"


def test_no_confirmation_without_an_opt_out(ledger: DndLedger) -> None:
    ledger.execute(c.RegisterContact(L, ADA, (PHONE,)))
    with pytest.raises(InvalidInput, match="nothing to confirm"):
        confirm(ledger)
    ledger.execute(c.SetDnd(L, ADA, (SMS,), "alice"))
    d = ask(ledger)
    assert (d.allowed, d.rule) == (False, "confirmation.other-dnd")


def test_another_dnd_on_the_channel_keeps_it_closed(stopped: DndLedger, clock: Clock) -> None:
    stopped.execute(c.SetDnd(L, ADA, (SMS,), "alice"))
    d = ask(stopped)
    assert (d.allowed, d.rule) == (False, "confirmation.other-dnd")


def test_the_confirmation_is_a_text_not_a_call(ledger: DndLedger, clock: Clock) -> None:
    ledger.execute(c.RegisterContact(L, ADA, (PHONE,)))
    ledger.execute(c.SetDnd(L, ADA, (CALL,), "alice"))
    assert ask(ledger, CALL).rule == "confirmation.not-this-channel"
    with pytest.raises(InvalidInput, match="goes by sms"):
        ledger.execute(c.RecordConfirmation(L, CALL, PHONE, "CA-1"))


@SHARED_DATABASES
def test_a_confirmation_recorded_by_another_ledger_is_seen(two_ledgers, clock: Clock) -> None:
    first, second = two_ledgers
    first.execute(c.RegisterContact(L, ADA, (PHONE,)))
    first.execute(c.ReceiveInbound(L, SMS, PHONE, "STOP", "SM-1"))
    assert second.rules.can_send(L, ADA, SMS, purpose=CONFIRM).allowed
    first.execute(c.RecordConfirmation(L, SMS, PHONE, "SM-conf"))
    d = second.rules.can_send(L, ADA, SMS, purpose=CONFIRM)
    assert (d.allowed, d.rule) == (False, "confirmation.already-sent")
    with pytest.raises(AlreadyConfirmed):
        second.execute(c.RecordConfirmation(L, SMS, PHONE, "SM-conf-2"))
