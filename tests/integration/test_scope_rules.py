"""Revocation scope by date (revoke-all, 47 CFR 64.1200(a)(10)) on every backend.

The default rule starts on 2027-01-31, after today: the ledger's clock is moved
there, and one test uses a policy whose date is moved instead.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.conftest import TEST_KEY, Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.policy import Policy
from dnd_ledger.domain.scope import ScopeRule
from dnd_ledger.domain.values import Channel, DndKind
from dnd_ledger.notary.bundle import export_bundle
from dnd_ledger.notary.offline import verify_bundle
from dnd_ledger.notary.signed_note import SigningKey, format_vkey, parse_vkey

L, ADA, PHONE = "loc-1", "ada", "+14155550100"
SMS, CALL, WA = Channel.SMS, Channel.CALL, Channel.WHATSAPP
EVE = datetime(2027, 1, 30, 15, 0, tzinfo=UTC)
DAY = datetime(2027, 1, 31, 15, 0, tzinfo=UTC)


def start_at(ledger: DndLedger, clock: Clock, t: datetime) -> None:
    clock.now = t - timedelta(hours=1)
    ledger.execute(c.RegisterContact(L, ADA, (PHONE,), ("ada@example.com",)))
    clock.now = t


def stop(ledger: DndLedger, sid: str = "SM-1", body: str = "STOP", channel=SMS) -> None:
    ledger.execute(c.ReceiveInbound(L, channel, PHONE, body, sid))


def status(ledger: DndLedger, ch: Channel, **kw) -> DndKind:
    return ledger.status(L, ADA, **kw).channels[ch].status


class TestRevokeAll:
    def test_a_stop_the_day_before_blocks_only_sms(self, ledger: DndLedger, clock: Clock) -> None:
        start_at(ledger, clock, EVE)
        stop(ledger)
        clock.advance(days=3)  # the rule is in force now: the old opt-out keeps its scope
        assert status(ledger, SMS) is DndKind.PERMANENT
        assert status(ledger, CALL) is DndKind.INACTIVE
        assert ledger.can_send(L, ADA, CALL).allowed
        assert ledger.history(L, ADA)[-1].detail.get("scope_rule") is None

    def test_a_stop_on_the_date_blocks_sms_and_call(self, ledger: DndLedger, clock: Clock) -> None:
        start_at(ledger, clock, DAY)
        stop(ledger)
        assert status(ledger, SMS) is DndKind.PERMANENT
        assert status(ledger, CALL) is DndKind.PERMANENT
        assert status(ledger, WA) is DndKind.INACTIVE  # the rule names sms and call only
        d = ledger.can_send(L, ADA, CALL)
        assert not d.allowed
        assert d.event == "OptOutKeyword"
        assert "call blocked too by scope rule revoke-all" in d.reason
        last = ledger.history(L, ADA)[-1]
        assert last.detail["scope_rule"] == "revoke-all"
        assert last.detail["widened_to"] == ["call"]
        assert last.effect["channels"] == ["sms", "call"]

    def test_the_rule_starts_at_midnight_utc(self, ledger: DndLedger, clock: Clock) -> None:
        start_at(ledger, clock, datetime(2027, 1, 31, 0, 0, 1, tzinfo=UTC))
        ledger.execute(c.ReceiveInbound(L, SMS, PHONE, "STOP", "SM-1",
                                        occurred_at=datetime(2027, 1, 30, 23, 59, 59, tzinfo=UTC)))  # fmt: skip
        assert status(ledger, CALL) is DndKind.INACTIVE
        ledger.execute(c.ReceiveInbound(L, SMS, PHONE, "QUIT", "SM-2"))
        assert status(ledger, CALL) is DndKind.PERMANENT

    def test_as_of_before_and_after_the_widened_stop(self, ledger: DndLedger, clock: Clock) -> None:
        start_at(ledger, clock, DAY)
        stop(ledger)
        clock.advance(hours=2)
        before, after = DAY - timedelta(minutes=1), DAY + timedelta(minutes=1)
        assert status(ledger, CALL, as_of=before) is DndKind.INACTIVE
        assert status(ledger, CALL, as_of=after) is DndKind.PERMANENT
        assert not ledger.can_send(L, ADA, CALL, as_of=after).allowed
        assert status(ledger, CALL, as_of=after, known_at=before) is DndKind.INACTIVE

    def test_start_lifts_what_the_revoke_all_stop_set_on_both_channels(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        start_at(ledger, clock, DAY)
        stop(ledger)
        clock.advance(minutes=10)
        ledger.execute(c.ReceiveInbound(L, SMS, PHONE, "START", "SM-2"))
        assert status(ledger, SMS) is DndKind.INACTIVE
        assert status(ledger, CALL) is DndKind.INACTIVE
        assert ledger.history(L, ADA)[-1].effect["also"] == ["call"]

    def test_start_on_sms_keeps_the_call_dnd_a_user_set(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        start_at(ledger, clock, DAY)
        ledger.execute(c.SetDnd(L, ADA, (CALL,), "alice"))
        stop(ledger)
        ledger.execute(c.ReceiveInbound(L, SMS, PHONE, "START", "SM-2"))
        assert status(ledger, SMS) is DndKind.INACTIVE
        call = ledger.status(L, ADA).channels[CALL]
        assert (call.status, call.event) == (DndKind.ACTIVE, "DndSetByUser")

    def test_carrier_21610_gets_the_same_scope(self, ledger: DndLedger, clock: Clock) -> None:
        start_at(ledger, clock, DAY)
        ledger.execute(c.ReportCarrierStatus(L, SMS, PHONE, "SM-9", "undelivered", 21610))
        assert status(ledger, CALL) is DndKind.PERMANENT
        assert ledger.history(L, ADA)[-1].detail["scope_rule"] == "revoke-all"

    def test_a_carrier_30004_is_not_widened(self, ledger: DndLedger, clock: Clock) -> None:
        start_at(ledger, clock, DAY)
        ledger.execute(c.ReportCarrierStatus(L, SMS, PHONE, "SM-9", "undelivered", 30004))
        assert status(ledger, SMS) is DndKind.PERMANENT
        assert status(ledger, CALL) is DndKind.INACTIVE

    def test_a_policy_with_a_moved_date_applies_it_today(self, db_url: str, clock: Clock) -> None:
        rule = ScopeRule(name="revoke-all-early", effective_from=date(2026, 11, 1),
                         opt_out_on=(SMS, CALL), blocks=(SMS, CALL))  # fmt: skip
        app = DndLedger(db_url, pii_key=TEST_KEY, clock=clock,
                        policy=Policy(revocation_scope=(rule,)))  # fmt: skip
        try:
            app.execute(c.RegisterContact(L, ADA, (PHONE,)))
            stop(app)
            assert status(app, CALL) is DndKind.PERMANENT
            assert app.history(L, ADA)[-1].detail["scope_rule"] == "revoke-all-early"
        finally:
            app.close()

    def test_an_empty_scope_policy_keeps_every_opt_out_on_its_channel(
        self, db_url: str, clock: Clock
    ) -> None:
        app = DndLedger(db_url, pii_key=TEST_KEY, clock=clock, policy=Policy(revocation_scope=()))
        try:
            start_at(app, clock, DAY)
            stop(app)
            assert status(app, CALL) is DndKind.INACTIVE
        finally:
            app.close()


KEY = SigningKey("ledger.example/dnd", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def test_the_offline_verifier_replays_a_revoke_all_block(db_url: str, clock: Clock) -> None:
    app = DndLedger(db_url, pii_key=TEST_KEY, clock=clock, signing_key=KEY, checkpoint_every=2)
    try:
        start_at(app, clock, DAY)
        stop(app)
        clock.advance(minutes=1)
        app.notary.catch_up()
        data = export_bundle(app, L, ADA)
    finally:
        app.close()
    vkey = parse_vkey(format_vkey(KEY.name, KEY.private_key.public_key()))
    [contact] = verify_bundle(data, vkey).contacts
    after = contact.status(clock.now, clock.now)["channels"]
    before = contact.status(DAY - timedelta(seconds=1), clock.now)["channels"]
    assert after["call"]["status"] == "permanent"
    assert after["sms"]["status"] == "permanent"
    assert before["call"]["status"] == "inactive"
