"""The confirmation-text rule as pure functions (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dnd_ledger.domain.address import Signal
from dnd_ledger.domain.confirmation import (
    ConfirmationRule,
    confirmation_of,
    judge,
    latest_opt_out,
)
from dnd_ledger.domain.values import Channel, Source

T = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
RULE = ConfirmationRule()


def signal(event: str, at: datetime, eid: str, channels=("sms",), **detail) -> Signal:
    return Signal(event, eid, at, Source.PROVIDER, None, f"k-{eid}", "p", {"channels": list(channels)},
                  detail)  # fmt: skip


STOP = signal("OptOutKeyword", T, "a:1", ("sms", "call"))


def test_the_default_window_is_five_minutes_on_sms() -> None:
    assert (RULE.window_seconds, RULE.channels) == (300, (Channel.SMS,))


def test_judge_by_the_delay_and_the_confirmation() -> None:
    assert judge(RULE, STOP, None, T + timedelta(minutes=4)).allowed
    assert judge(RULE, STOP, None, T + timedelta(seconds=300)).allowed
    late = judge(RULE, STOP, None, T + timedelta(seconds=301))
    assert (late.allowed, late.rule) == (False, "confirmation.window-passed")
    sent = signal("OptOutConfirmationSent", T, "a:2", (), opt_out="a:1", message_sid="SM9")
    again = judge(RULE, STOP, sent, T + timedelta(minutes=1))
    assert (again.allowed, again.rule) == (False, "confirmation.already-sent")
    assert "SM9" in again.reason


def test_the_latest_opt_out_that_came_on_the_channel() -> None:
    wa = signal("OptOutKeyword", T + timedelta(minutes=2), "a:3", ("whatsapp",))
    later = signal("OptOutKeyword", T + timedelta(hours=1), "a:4")
    signals = [STOP, wa, later]
    assert latest_opt_out(signals, Channel.SMS) is later
    assert latest_opt_out(signals, Channel.SMS, by=T + timedelta(minutes=5)) is STOP
    assert latest_opt_out(signals, Channel.WHATSAPP) is wa
    assert latest_opt_out(signals, Channel.CALL) is None  # widened to call, not from it


def test_confirmation_of_matches_its_opt_out() -> None:
    sent = signal("OptOutConfirmationSent", T, "a:2", (), opt_out="a:1")
    assert confirmation_of([STOP, sent], STOP) is sent
    assert confirmation_of([STOP], STOP) is None
    other = signal("OptOutKeyword", T, "a:9")
    assert confirmation_of([sent], other) is None
