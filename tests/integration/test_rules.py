"""DESIGN §2, rule by rule, through the application on every backend.

Each test narrates one rule and fails when the rule breaks. The class runs on
memory, SQLite and PostgreSQL (see the ``ledger`` fixture).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from tests.conftest import Clock

from dnd_ledger import commands as c
from dnd_ledger.application import DndLedger
from dnd_ledger.domain.errors import (
    AttestationRequired,
    InvalidInput,
    PermanentDnd,
    UnknownContact,
)
from dnd_ledger.domain.keys import contact_uuid
from dnd_ledger.domain.policy import Policy
from dnd_ledger.domain.values import (
    ALL_CHANNELS,
    Channel,
    Direction,
    DndKind,
    EmailSignal,
    Mode,
    Overall,
    Source,
)

L = "loc-1"
ADA = "ada"
PHONE = "+14155550100"
PHONE2 = "+14155550111"
EMAIL = "ada@example.com"
SMS, EMAIL_CH, WA, CALL = Channel.SMS, Channel.EMAIL, Channel.WHATSAPP, Channel.CALL


def register(ledger: DndLedger, contact: str = ADA, phones=(PHONE,), emails=(EMAIL,)) -> None:
    ledger.execute(c.RegisterContact(L, contact, tuple(phones), tuple(emails)))


def inbound(ledger: DndLedger, body: str, sid: str, channel=SMS, phone=PHONE, **kw) -> c.Outcome:
    return ledger.execute(c.ReceiveInbound(L, channel, phone, body, sid, **kw))


def carrier(ledger: DndLedger, code: int | None, sid: str = "SM-c", channel=SMS, **kw) -> c.Outcome:
    return ledger.execute(c.ReportCarrierStatus(L, channel, PHONE, sid, "undelivered", code, **kw))


def mail(
    ledger: DndLedger, signal: EmailSignal, reason: str | None = None, token: str = "tok-1", **kw
) -> c.Outcome:
    return ledger.execute(c.ReportEmailEvent(L, EMAIL, signal, token, reason, **kw))


def status_of(ledger: DndLedger, channel: Channel, contact: str = ADA, **kw) -> DndKind:
    return ledger.status(L, contact, **kw).channels[channel].status


def event_count(ledger: DndLedger) -> int:
    return len(ledger.recorder.select_notifications(start=1, limit=1_000_000))


class TestOutboundGate:
    def test_dnd_blocks_manual_and_automated_outbound_alike(self, ledger: DndLedger) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, (SMS,), "alice"))
        for mode in Mode:
            d = ledger.can_send(L, ADA, SMS, mode=mode)
            assert not d.allowed, mode
            assert d.rule == "outbound.dnd-blocks-all"
            assert d.event == "DndSetByUser"

    def test_channel_without_dnd_permits_outbound(self, ledger: DndLedger) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, (SMS,), "alice"))
        d = ledger.can_send(L, ADA, EMAIL_CH, mode=Mode.MANUAL)
        assert d.allowed
        assert d.rule == "outbound.no-dnd"

    def test_decision_names_the_causing_event_and_code(self, ledger: DndLedger) -> None:
        register(ledger)
        inbound(ledger, "STOP", "SM1")
        d = ledger.can_send(L, ADA, SMS)
        assert (d.allowed, d.status, d.code, d.event) == (
            False,
            DndKind.PERMANENT,
            "STOP",
            "OptOutKeyword",
        )


class TestInboundGate:
    def test_inbound_call_is_rejected_when_dnd_is_on_for_all_channels(
        self, ledger: DndLedger
    ) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, ALL_CHANNELS, "alice"))
        d = ledger.can_send(L, ADA, CALL, direction=Direction.INBOUND)
        assert not d.allowed
        assert d.rule == "inbound.call-rejected"

    def test_inbound_sms_is_blocked_at_system_level_when_dnd_is_on(self, ledger: DndLedger) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, ALL_CHANNELS, "alice"))
        d = ledger.can_send(L, ADA, SMS, direction=Direction.INBOUND)
        assert not d.allowed
        assert d.rule == "inbound.blocked-at-system-level"
        assert "accepted by the carrier" in d.reason

    def test_inbound_is_accepted_when_dnd_is_only_partial(self, ledger: DndLedger) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, (SMS, CALL), "alice"))
        assert ledger.status(L, ADA).dnd is Overall.PARTIAL
        assert ledger.can_send(L, ADA, CALL, direction=Direction.INBOUND).allowed
        assert ledger.can_send(L, ADA, SMS, direction=Direction.INBOUND).allowed

    def test_keywords_are_processed_even_when_inbound_is_blocked(self, ledger: DndLedger) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, ALL_CHANNELS, "alice"))
        assert inbound(ledger, "STOP", "SM1").result == "appended"
        assert status_of(ledger, SMS) is DndKind.PERMANENT
        assert inbound(ledger, "START", "SM2").result == "appended"
        assert status_of(ledger, SMS) is DndKind.INACTIVE


class TestAutomaticDnd:
    @pytest.mark.parametrize("channel", [SMS, WA])
    def test_opt_out_keyword_sets_permanent_dnd_on_that_channel(
        self, ledger: DndLedger, channel: Channel
    ) -> None:
        register(ledger)
        out = inbound(ledger, "  stop. ", "SM1", channel=channel)
        assert out.events == ("OptOutKeyword",)
        view = ledger.status(L, ADA)
        assert view.channels[channel].status is DndKind.PERMANENT
        assert [ch for ch, s in view.channels.items() if s.status is not DndKind.INACTIVE] == [
            channel
        ]

    @pytest.mark.parametrize("channel", [SMS, WA])
    def test_start_clears_temporary_and_permanent_on_that_channel(
        self, ledger: DndLedger, channel: Channel
    ) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, (channel,), "alice"))
        inbound(ledger, "STOP", "SM1", channel=channel)
        assert inbound(ledger, "Start", "SM2", channel=channel).events == ("StartReceived",)
        assert status_of(ledger, channel) is DndKind.INACTIVE

    def test_longer_message_with_an_opt_out_word_is_temporary_and_flagged_for_review(
        self, ledger: DndLedger
    ) -> None:
        register(ledger)
        out = inbound(ledger, "please stop texting me", "SM1")
        assert out.events == ("RevocationSuspected",)
        assert status_of(ledger, SMS) is DndKind.ACTIVE
        assert ledger.history(L, ADA)[-1].detail["review"] == "required"

    def test_ordinary_message_changes_nothing_and_appends_nothing(self, ledger: DndLedger) -> None:
        register(ledger)
        before = event_count(ledger)
        assert inbound(ledger, "see you at 5", "SM1").result == "ignored"
        assert event_count(ledger) == before

    @pytest.mark.parametrize("code", [30003, 30005, 30006])
    def test_temporary_carrier_errors_set_temporary_sms_dnd(
        self, ledger: DndLedger, code: int
    ) -> None:
        register(ledger)
        assert carrier(ledger, code).events == ("CarrierErrorTemporary",)
        assert status_of(ledger, SMS) is DndKind.ACTIVE
        assert ledger.status(L, ADA).channels[SMS].code == str(code)

    @pytest.mark.parametrize(
        ("code", "event"), [(30004, "CarrierError30004"), (21610, "CarrierError21610")]
    )
    def test_blocking_carrier_errors_set_permanent_sms_dnd(
        self, ledger: DndLedger, code: int, event: str
    ) -> None:
        register(ledger)
        assert carrier(ledger, code).events == (event,)
        assert status_of(ledger, SMS) is DndKind.PERMANENT

    def test_whatsapp_63014_sets_permanent_whatsapp_dnd(self, ledger: DndLedger) -> None:
        register(ledger)
        assert carrier(ledger, 63014, channel=WA).events == ("WhatsAppBlocked63014",)
        assert status_of(ledger, WA) is DndKind.PERMANENT
        assert status_of(ledger, SMS) is DndKind.INACTIVE

    @pytest.mark.parametrize("code", [30007, 30032, 30034, 30035, 30450, None, 0])
    def test_sender_side_codes_and_no_code_do_nothing_to_the_contact(
        self, ledger: DndLedger, code: int | None
    ) -> None:
        register(ledger)
        before = event_count(ledger)
        assert carrier(ledger, code).result == "ignored"
        assert event_count(ledger) == before
        assert ledger.status(L, ADA).dnd is Overall.OFF

    @pytest.mark.parametrize("reason", ["bounce", "generic", "suppress-bounce"])
    def test_mailgun_bounces_set_temporary_email_dnd(self, ledger: DndLedger, reason: str) -> None:
        register(ledger)
        assert mail(ledger, EmailSignal.FAILED_PERMANENT, reason).events == (
            "MailgunPermanentFailure",
        )
        assert status_of(ledger, EMAIL_CH) is DndKind.ACTIVE

    @pytest.mark.parametrize("reason", ["suppress-complaint", "suppress-unsubscribe"])
    def test_mailgun_suppressed_complaints_and_unsubscribes_set_permanent_email_dnd(
        self, ledger: DndLedger, reason: str
    ) -> None:
        register(ledger)
        mail(ledger, EmailSignal.FAILED_PERMANENT, reason)
        assert status_of(ledger, EMAIL_CH) is DndKind.PERMANENT

    @pytest.mark.parametrize(("signal", "event"), [
        (EmailSignal.COMPLAINED, "MailgunComplaint"), (EmailSignal.UNSUBSCRIBED, "MailgunUnsubscribed")])  # fmt: skip
    def test_mailgun_complaint_and_unsubscribe_set_permanent_email_dnd(
        self, ledger: DndLedger, signal: EmailSignal, event: str
    ) -> None:
        register(ledger)
        assert mail(ledger, signal).events == (event,)
        assert status_of(ledger, EMAIL_CH) is DndKind.PERMANENT

    def test_mailgun_temporary_failure_does_nothing(self, ledger: DndLedger) -> None:
        register(ledger)
        before = event_count(ledger)
        assert mail(ledger, EmailSignal.FAILED_TEMPORARY, "bounce").result == "ignored"
        assert event_count(ledger) == before


class TestClearing:
    def test_user_clears_temporary_dnd(self, ledger: DndLedger) -> None:
        register(ledger)
        carrier(ledger, 30003)
        ledger.execute(c.ClearDnd(L, ADA, (SMS,), "alice"))
        assert status_of(ledger, SMS) is DndKind.INACTIVE

    def test_user_may_set_dnd_on_any_or_all_channels(self, ledger: DndLedger) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, (Channel.FB, Channel.GMB), "alice"))
        assert ledger.status(L, ADA).dnd is Overall.PARTIAL
        ledger.execute(c.SetDnd(L, ADA, ALL_CHANNELS, "alice"))
        view = ledger.status(L, ADA)
        assert view.dnd is Overall.ON
        assert all(s.status is DndKind.ACTIVE for s in view.channels.values())

    def test_bounce_email_dnd_clears_only_with_the_suppression_removed_attestation(
        self, ledger: DndLedger
    ) -> None:
        register(ledger)
        mail(ledger, EmailSignal.FAILED_PERMANENT, "suppress-bounce")
        before = event_count(ledger)
        with pytest.raises(AttestationRequired, match="suppression list"):
            ledger.execute(c.ClearDnd(L, ADA, (EMAIL_CH,), "alice"))
        assert event_count(ledger) == before
        ledger.execute(c.ClearDnd(L, ADA, (EMAIL_CH,), "alice", suppression_removed=True))
        assert status_of(ledger, EMAIL_CH) is DndKind.INACTIVE

    def test_user_set_email_dnd_needs_no_attestation(self, ledger: DndLedger) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, (EMAIL_CH,), "alice"))
        ledger.execute(c.ClearDnd(L, ADA, (EMAIL_CH,), "alice"))
        assert status_of(ledger, EMAIL_CH) is DndKind.INACTIVE

    def test_permanent_dnd_cannot_be_cleared_from_contact_record(self, ledger: DndLedger) -> None:
        register(ledger)
        inbound(ledger, "STOP", "SM1")
        before = event_count(ledger)
        with pytest.raises(PermanentDnd, match=r"sms has permanent DND .*OptOutKeyword code STOP"):
            ledger.execute(c.ClearDnd(L, ADA, (SMS,), "alice"))
        assert event_count(ledger) == before
        assert status_of(ledger, SMS) is DndKind.PERMANENT

    def test_clearing_all_channels_is_refused_whole_when_one_is_permanent(
        self, ledger: DndLedger
    ) -> None:
        register(ledger)
        ledger.execute(c.SetDnd(L, ADA, ALL_CHANNELS, "alice"))
        mail(ledger, EmailSignal.COMPLAINED)
        with pytest.raises(PermanentDnd, match=r"email has permanent DND .*MailgunComplaint"):
            ledger.execute(c.ClearDnd(L, ADA, ALL_CHANNELS, "alice"))
        assert ledger.status(L, ADA).dnd is Overall.ON

    def test_start_from_another_address_does_not_lift_a_permanent_opt_out(
        self, ledger: DndLedger
    ) -> None:
        register(ledger, phones=(PHONE, PHONE2))
        inbound(ledger, "STOP", "SM1", phone=PHONE)
        inbound(ledger, "START", "SM2", phone=PHONE2)
        assert status_of(ledger, SMS) is DndKind.PERMANENT
        inbound(ledger, "START", "SM3", phone=PHONE)
        assert status_of(ledger, SMS) is DndKind.INACTIVE

    def test_start_on_another_channel_does_not_lift_a_permanent_opt_out(
        self, ledger: DndLedger
    ) -> None:
        register(ledger)
        inbound(ledger, "STOP", "SM1", channel=SMS)
        inbound(ledger, "START", "SM2", channel=WA)
        assert status_of(ledger, SMS) is DndKind.PERMANENT

    def test_support_approved_opt_in_with_evidence_lifts_permanent_dnd(
        self, ledger: DndLedger
    ) -> None:
        register(ledger)
        inbound(ledger, "STOP", "SM1")
        carrier(ledger, 30004, sid="SM9")
        out = ledger.execute(
            c.ApproveOptIn(L, ADA, (SMS,), "sam", "SUP-1", "signed form 2026-10-01")
        )
        assert out.events == ("SupportOptInApproved",)
        assert status_of(ledger, SMS) is DndKind.INACTIVE
        last = ledger.history(L, ADA)[-1]
        assert last.actor == "sam"
        assert last.detail["ticket"] == "SUP-1"
        assert ledger.reveal(last.detail["evidence_ref"]) == "signed form 2026-10-01"

    @pytest.mark.parametrize("missing", ["approver", "ticket", "evidence"])
    def test_support_opt_in_without_approver_ticket_or_evidence_is_refused(
        self, ledger: DndLedger, missing: str
    ) -> None:
        register(ledger)
        inbound(ledger, "STOP", "SM1")
        fields = {"approver": "sam", "ticket": "SUP-1", "evidence": "form"} | {missing: "  "}
        with pytest.raises(InvalidInput, match=missing):
            ledger.execute(c.ApproveOptIn(L, ADA, (SMS,), **fields))
        assert status_of(ledger, SMS) is DndKind.PERMANENT


class TestMigrationAndAddresses:
    def test_legacy_dnd_on_keeps_dnd_on_every_channel(self, ledger: DndLedger) -> None:
        out = ledger.execute(c.ImportLegacy(L, "old-1", True, (PHONE,), (EMAIL,)))
        assert "LegacyDndImported" in out.events
        view = ledger.status(L, "old-1")
        assert view.dnd is Overall.ON

    def test_legacy_dnd_off_continues_as_before(self, ledger: DndLedger) -> None:
        ledger.execute(c.ImportLegacy(L, "old-2", False, (PHONE,), ()))
        assert ledger.status(L, "old-2").dnd is Overall.OFF

    def test_legacy_import_is_idempotent(self, ledger: DndLedger) -> None:
        row = c.ImportLegacy(L, "old-1", True, (PHONE,), (EMAIL,))
        ledger.execute(row)
        before = event_count(ledger)
        assert ledger.execute(row).result == "duplicate"
        assert event_count(ledger) == before

    def test_event_for_an_unknown_address_is_kept_and_applies_on_registration(
        self, ledger: DndLedger
    ) -> None:
        held = inbound(ledger, "STOP", "SM1")
        assert held.result == "appended"
        assert held.contacts == ()
        register(ledger)
        assert status_of(ledger, SMS) is DndKind.PERMANENT

    def test_held_event_applies_only_in_the_same_location(self, ledger: DndLedger) -> None:
        inbound(ledger, "STOP", "SM1")
        ledger.execute(c.RegisterContact("loc-2", ADA, (PHONE,)))
        assert ledger.status("loc-2", ADA).dnd is Overall.OFF

    def test_opt_out_for_a_shared_address_applies_to_both_contacts(self, ledger: DndLedger) -> None:
        register(ledger, ADA)
        register(ledger, "bob", emails=())
        out = inbound(ledger, "STOP", "SM1")
        assert set(out.contacts) == {ADA, "bob"}
        assert status_of(ledger, SMS, ADA) is DndKind.PERMANENT
        assert status_of(ledger, SMS, "bob") is DndKind.PERMANENT

    def test_contact_that_later_adds_a_shared_address_adopts_its_history(
        self, ledger: DndLedger
    ) -> None:
        register(ledger, ADA)
        inbound(ledger, "STOP", "SM1")
        register(ledger, "bob", phones=(), emails=())
        ledger.execute(c.RegisterContact(L, "bob", (PHONE,)))
        assert status_of(ledger, SMS, "bob") is DndKind.PERMANENT

    def test_phone_numbers_are_parsed_to_e164(self, ledger: DndLedger) -> None:
        register(ledger, phones=("+1 (415) 555-0100",))
        inbound(ledger, "STOP", "SM1", phone="+14155550100")
        assert status_of(ledger, SMS) is DndKind.PERMANENT

    def test_bad_phone_number_is_refused_and_appends_nothing(self, ledger: DndLedger) -> None:
        with pytest.raises(InvalidInput, match=r"E\.164"):
            ledger.execute(c.RegisterContact(L, ADA, ("4155550100",)))
        assert event_count(ledger) == 0

    def test_email_addresses_are_trimmed_and_lower_cased(self, ledger: DndLedger) -> None:
        register(ledger, emails=("  Ada@Example.COM ",))
        mail(ledger, EmailSignal.COMPLAINED)
        assert status_of(ledger, EMAIL_CH) is DndKind.PERMANENT


class TestTimelinesAndIdempotency:
    def test_state_is_the_fold_by_occurred_at_not_arrival(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        register(ledger)
        t = clock.now
        # Arrives first but happened later: the user cleared at t+10.
        carrier(ledger, 30003, sid="SM1", occurred_at=t + timedelta(minutes=1))
        clock.advance(minutes=20)
        ledger.execute(c.ClearDnd(L, ADA, (SMS,), "alice", occurred_at=t + timedelta(minutes=10)))
        # A STOP that happened at t+5 arrives late: the clear at t+10 cannot lift it.
        inbound(ledger, "STOP", "SM2", occurred_at=t + timedelta(minutes=5))
        assert status_of(ledger, SMS) is DndKind.PERMANENT

    def test_late_temporary_error_before_a_clear_is_cleared_by_it(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        register(ledger)
        t = clock.now
        clock.advance(minutes=20)
        ledger.execute(c.ClearDnd(L, ADA, (SMS,), "alice", occurred_at=t + timedelta(minutes=10)))
        carrier(ledger, 30003, occurred_at=t + timedelta(minutes=5))
        assert status_of(ledger, SMS) is DndKind.INACTIVE

    def test_ties_in_occurred_at_go_by_recording_order(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        register(ledger)
        t = clock.now
        inbound(ledger, "STOP", "SM1", occurred_at=t)
        inbound(ledger, "START", "SM2", occurred_at=t)
        assert status_of(ledger, SMS) is DndKind.INACTIVE

    def test_as_of_and_known_at_answer_both_questions(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        register(ledger)
        t = clock.now
        clock.advance(hours=2)
        # Recorded at t+2h, it happened at t+1h.
        inbound(ledger, "STOP", "SM1", occurred_at=t + timedelta(hours=1))
        clock.advance(hours=1)
        in_hindsight = status_of(ledger, SMS, as_of=t + timedelta(minutes=90))
        as_known_then = status_of(
            ledger, SMS, as_of=t + timedelta(minutes=90), known_at=t + timedelta(minutes=90)
        )
        assert in_hindsight is DndKind.PERMANENT
        assert as_known_then is DndKind.INACTIVE
        assert status_of(ledger, SMS, as_of=t + timedelta(minutes=30)) is DndKind.INACTIVE

    def test_occurred_at_more_than_five_minutes_ahead_is_refused(
        self, ledger: DndLedger, clock: Clock
    ) -> None:
        register(ledger)
        before = event_count(ledger)
        with pytest.raises(InvalidInput, match="ahead of the ledger clock"):
            inbound(ledger, "STOP", "SM1", occurred_at=clock.now + timedelta(minutes=5, seconds=1))
        assert event_count(ledger) == before
        inbound(ledger, "STOP", "SM2", occurred_at=clock.now + timedelta(minutes=4))

    def test_repeated_idempotency_key_appends_nothing_and_says_duplicate(
        self, ledger: DndLedger
    ) -> None:
        register(ledger)
        assert inbound(ledger, "STOP", "SM1").result == "appended"
        before = event_count(ledger)
        assert inbound(ledger, "STOP", "SM1").result == "duplicate"
        assert carrier(ledger, 30003, sid="SM7").result == "appended"
        assert carrier(ledger, 30003, sid="SM7").result == "duplicate"
        assert mail(ledger, EmailSignal.COMPLAINED, token="t1").result == "appended"
        assert mail(ledger, EmailSignal.COMPLAINED, token="t1").result == "duplicate"
        assert event_count(ledger) == before + 4  # one address and one contact event each

    def test_user_command_request_id_is_an_idempotency_key(self, ledger: DndLedger) -> None:
        register(ledger)
        cmd_ = c.SetDnd(L, ADA, (SMS,), "alice", request_id="req-1")
        assert ledger.execute(cmd_).result == "appended"
        assert ledger.execute(cmd_).result == "duplicate"
        assert len(ledger.history(L, ADA)) == 2

    def test_policy_version_is_recorded_on_each_event(self, db_url: str, clock: Clock) -> None:
        policy = Policy(
            version="ops-7", opt_out_keywords=("STOP",), opt_in_keywords=("START", "UNSTOP")
        )
        app = DndLedger(db_url, policy=policy, pii_key=b"k" * 32, clock=clock)
        try:
            register(app)
            inbound(app, "unstop", "SM1")  # moved to opt-in by this policy
            history = app.history(L, ADA)
            assert [h.event for h in history] == ["Registered", "StartReceived"]
            assert {h.policy_version for h in history} == {policy.stamp}
            assert policy.stamp.startswith("ops-7+")
        finally:
            app.close()


class TestQueriesAndPersonalData:
    def test_unknown_contact_is_an_error_not_no_dnd(self, ledger: DndLedger) -> None:
        for query in (ledger.status, ledger.history):
            with pytest.raises(UnknownContact):
                query(L, "nobody")
        with pytest.raises(UnknownContact):
            ledger.can_send(L, "nobody", SMS)

    def test_stored_events_hold_no_raw_phone_email_or_body(self, ledger: DndLedger) -> None:
        register(ledger)
        inbound(ledger, "please stop texting me now", "SM1")
        mail(ledger, EmailSignal.COMPLAINED)
        ledger.execute(c.ApproveOptIn(L, ADA, (SMS,), "sam", "SUP-1", "consent recorded by phone"))
        stored = b"".join(
            n.state for n in ledger.recorder.select_notifications(start=1, limit=10_000)
        )
        for raw in (b"4155550100", b"ada@example.com", b"texting me", b"consent recorded"):
            assert raw not in stored

    def test_erasing_personal_data_keeps_the_ledger_and_its_opt_outs(
        self, ledger: DndLedger
    ) -> None:
        register(ledger)
        inbound(ledger, "STOP", "SM1")
        refs = ledger.contact_addresses(L, ADA)
        assert ledger.reveal(refs["phones"][0]) == PHONE
        assert ledger.erase_personal_data(L, ADA).erased == 3  # phone, email, the STOP's body
        assert ledger.reveal(refs["phones"][0]) is None
        assert status_of(ledger, SMS) is DndKind.PERMANENT

    def test_events_come_back_from_storage_with_their_own_types(self, ledger: DndLedger) -> None:
        register(ledger)
        inbound(ledger, "STOP", "SM1")
        ledger.repository.cache = None  # force a read from storage
        events = list(ledger.events.get(contact_uuid(L, ADA)))
        assert isinstance(events[1].source, Source)
        assert events[1].source is Source.PROVIDER
