"""Nothing that can be stored can stall the views: random commands and provider
payloads go through ``execute_many``; every event that was stored is then accepted
by the projector and the notary, and the views equal a rebuild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.values import ALL_CHANNELS, Channel, EmailSignal
from dnd_ledger.providers import mailgun, twilio

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LOC = "loc-1"
IDS = st.sampled_from(["ada", "bob", "c-3", "=cmd", "ü-ñ"])
PHONES = st.sampled_from(["+14155550100", "+14155550101", "+447700900123", "(415) 555-0100"])
EMAILS = st.sampled_from(["ada@example.com", " BOB@Example.com ", "x@y.z"])
OFFSETS = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
#: Times from anywhere in the datetime range, in any offset: the door decides.
EDGES = st.sampled_from([
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
    datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
    NOW + timedelta(minutes=4, seconds=59),
    NOW.astimezone(timezone(timedelta(hours=14))),
])  # fmt: skip
TIMES = st.one_of(
    st.none(),
    EDGES,
    st.builds(
        lambda t, tz: t.replace(tzinfo=tz),
        st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
        OFFSETS,
    ),
    st.builds(lambda s: NOW - timedelta(seconds=s), st.integers(-600, 10**9)),
)
CHANNELS = st.lists(st.sampled_from(ALL_CHANNELS), min_size=0, max_size=3).map(tuple)
TEXT = st.text(max_size=40)


def _twilio_inbound(body: str, sid: str, phone: str, channel: str) -> Any:
    sender = f"whatsapp:{phone}" if channel == "whatsapp" else phone
    form = {"MessageSid": sid, "From": sender, "To": "+14155550199", "Body": body}
    try:
        return twilio.inbound_to_command(form, LOC)
    except Exception:
        return None  # refused by the adapter: the webhook answers 4xx


def _mailgun(event: str, severity: str, reason: str, token: str, at: float) -> Any:
    body = {
        "signature": {"timestamp": "1", "token": token, "signature": "0" * 64},
        "event-data": {
            "event": event, "severity": severity, "reason": reason, "recipient": "ada@example.com",
            "timestamp": at, "id": f"ev-{token}",
        },
    }  # fmt: skip
    try:
        return mailgun.webhook_to_command(mailgun.parse_webhook(body), LOC)
    except Exception:
        return None


COMMANDS = st.one_of(
    st.builds(c.RegisterContact, st.just(LOC), IDS, st.lists(PHONES, max_size=2).map(tuple),
              st.lists(EMAILS, max_size=2).map(tuple), TIMES),
    st.builds(c.SetDnd, st.just(LOC), IDS, CHANNELS, st.just("alice"), TEXT, TIMES),
    st.builds(c.ClearDnd, st.just(LOC), IDS, CHANNELS, st.just("alice"), TEXT, st.booleans(),
              TIMES),
    st.builds(c.ApproveOptIn, st.just(LOC), IDS, CHANNELS, st.just("sam"), st.just("T-1"),
              TEXT, TIMES),
    st.builds(c.ReceiveInbound, st.just(LOC), st.sampled_from([Channel.SMS, Channel.WHATSAPP]),
              PHONES, st.sampled_from(["STOP", "START", "please stop texting me", "hi"]) | TEXT,
              st.text(min_size=1, max_size=8), occurred_at=TIMES),
    st.builds(c.ReportCarrierStatus, st.just(LOC), st.sampled_from([Channel.SMS, Channel.WHATSAPP]),
              PHONES, st.text(min_size=1, max_size=8), st.just("undelivered"),
              st.sampled_from([None, 0, 30003, 30004, 21610, 63014, 30007, 99999]), TIMES),
    st.builds(c.ReportEmailEvent, st.just(LOC), EMAILS, st.sampled_from(list(EmailSignal)),
              st.text(min_size=1, max_size=8), st.sampled_from([None, "bounce", "generic",
              "suppress-complaint", "weird"]), occurred_at=TIMES),
    st.builds(c.ImportLegacy, st.just(LOC), IDS, st.booleans(), st.lists(PHONES, max_size=2)
              .map(tuple), occurred_at=TIMES),
    st.builds(_twilio_inbound, TEXT | st.just("STOP"), st.text(min_size=1, max_size=8), PHONES,
              st.sampled_from(["sms", "whatsapp"])),
    st.builds(_mailgun, st.sampled_from(["failed", "complained", "unsubscribed", "delivered"]),
              st.sampled_from(["permanent", "temporary"]), st.sampled_from(["bounce", "x"]),
              st.text(min_size=1, max_size=8),
              st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)),
)  # fmt: skip


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(COMMANDS, min_size=1, max_size=12), min_size=1, max_size=4))
def test_every_stored_event_is_accepted_by_the_projector_and_the_notary(
    batches: list[list[Any]],
) -> None:
    clock_now = NOW
    ledger = DndLedger("memory:", pii_key=b"test-key-0123456789abcdef", clock=lambda: clock_now)
    try:
        for batch in batches:
            ledger.execute_many([command for command in batch if command is not None])
            ledger.ensure_current()  # raises if the views could not take an event
            assert ledger.projector.error() is None
        assert min(ledger.projector.positions().values()) == ledger.projector.head()
        ledger.notary.catch_up()
        assert ledger.notary.state().size == ledger.projector.head()
        before = _rows(ledger)
        ledger.projector.rebuild(["status", "addresses"])
        assert _rows(ledger) == before
    finally:
        ledger.close()


def _rows(ledger: DndLedger) -> dict[str, list[tuple[Any, ...]]]:
    tables = ("dnd_status_contacts", "dnd_audit", "dnd_address_index")
    return {t: ledger.sql.fetchall(f"SELECT * FROM {t} ORDER BY 1, 2, 3") for t in tables}
