"""What an inbound message, a carrier status or an email event records (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime

from dnd_ledger.domain import provider_rules as rules
from dnd_ledger.domain.policy import DEFAULT_POLICY
from dnd_ledger.domain.rulings import Ignored, Ruling
from dnd_ledger.domain.state import NO_EFFECT, Op
from dnd_ledger.domain.values import Channel, DndKind, EmailSignal

BEFORE_2027 = datetime(2026, 6, 1, tzinfo=UTC)  # the narrow revocation scope
FROM_2027 = datetime(2027, 6, 1, tzinfo=UTC)  # revoke-all


def inbound(body: str, theirs: str | None = None, at: datetime = BEFORE_2027) -> Ruling | Ignored:
    return rules.inbound(DEFAULT_POLICY, Channel.SMS, body, theirs, at, ref="ph_1",
                         body_ref="tx_1", received_ref=None, message_id="SM1")  # fmt: skip


def test_stop_is_a_permanent_opt_out_on_its_channel_with_its_word_as_code() -> None:
    ruling = inbound("stop")
    assert isinstance(ruling, Ruling)
    assert ruling.event == "OptOutKeyword"
    assert ruling.effect.op is Op.BLOCK
    assert ruling.effect.level is DndKind.PERMANENT
    assert ruling.effect.channels == (Channel.SMS,)
    assert (ruling.effect.code, ruling.effect.origin) == ("STOP", "ph_1")
    assert ruling.detail == {"address_ref": "ph_1", "body_ref": "tx_1",
                             "classification": "opt-out", "message_id": "SM1"}  # fmt: skip


def test_from_2027_a_stop_revokes_consent_on_every_channel() -> None:
    ruling = inbound("STOP", at=FROM_2027)
    assert isinstance(ruling, Ruling)
    assert Channel.CALL in ruling.effect.channels


def test_start_opts_in_on_its_channel() -> None:
    ruling = inbound("START")
    assert isinstance(ruling, Ruling)
    assert (ruling.event, ruling.effect.op, ruling.effect.code) == ("StartReceived", Op.OPT_IN,
                                                                    "START")  # fmt: skip


def test_an_opt_out_word_inside_a_sentence_opens_a_review_with_temporary_dnd() -> None:
    ruling = inbound("please stop texting me about this")
    assert isinstance(ruling, Ruling)
    assert ruling.event == "RevocationSuspected"
    assert ruling.effect.level is DndKind.ACTIVE
    assert ruling.effect.code == "review"
    assert ruling.detail["review"] == "required"
    assert "review_deadline" in ruling.detail


def test_a_review_without_effect_when_the_policy_says_none() -> None:
    policy = DEFAULT_POLICY.model_copy(
        update={"review": DEFAULT_POLICY.review.model_copy(update={"effect": "none"})}
    )
    ruling = rules.inbound(policy, Channel.SMS, "please stop texting me", None, BEFORE_2027,
                           ref="ph_1", body_ref="tx_1", received_ref=None,
                           message_id="SM1")  # fmt: skip
    assert isinstance(ruling, Ruling)
    assert ruling.effect == NO_EFFECT


def test_other_messages_are_ignored_with_their_classification() -> None:
    assert inbound("see you at five") == Ignored({"classification": "message"})


def test_a_provider_stop_counts_as_an_opt_out_and_the_disagreement_is_recorded() -> None:
    ruling = inbound("see you at five", theirs="STOP")
    assert isinstance(ruling, Ruling)
    assert ruling.event == "OptOutKeyword"
    assert ruling.detail["provider_opt_out_type"] == "STOP"
    assert ruling.detail["disagreement"] is True
    agreed = inbound("STOP", theirs="STOP")
    assert isinstance(agreed, Ruling)
    assert agreed.detail["disagreement"] is False


def test_the_text_as_received_is_referenced_when_cleaning_changed_it() -> None:
    ruling = rules.inbound(DEFAULT_POLICY, Channel.SMS, "STOP", None, BEFORE_2027, ref="ph_1",
                           body_ref="tx_1", received_ref="tx_raw", message_id="SM1")  # fmt: skip
    assert isinstance(ruling, Ruling)
    assert ruling.detail["received_ref"] == "tx_raw"


def test_carrier_statuses_without_a_contact_side_error_are_ignored() -> None:
    assert rules.carrier_ignored(DEFAULT_POLICY, None) == Ignored({"reason": "no error code"})
    assert rules.carrier_ignored(DEFAULT_POLICY, 0) == Ignored({"reason": "no error code"})
    ignored = rules.carrier_ignored(DEFAULT_POLICY, 30007)
    assert ignored is not None
    assert "sender side" in ignored.detail["reason"]
    assert rules.carrier_ignored(DEFAULT_POLICY, 30004) is None


def carrier(code: int, channel: Channel = Channel.SMS, at: datetime = BEFORE_2027) -> Ruling:
    return rules.carrier(DEFAULT_POLICY, code, "undelivered", channel, at, ref="ph_1",
                         message_id="SM9")  # fmt: skip


def test_carrier_codes_name_their_events_and_levels() -> None:
    assert (carrier(30004).event, carrier(30004).effect.level) == ("CarrierError30004",
                                                                    DndKind.PERMANENT)  # fmt: skip
    assert (carrier(30003).event, carrier(30003).effect.level) == ("CarrierErrorTemporary",
                                                                    DndKind.ACTIVE)  # fmt: skip
    assert carrier(30004).detail == {"address_ref": "ph_1", "message_id": "SM9",
                                     "status": "undelivered", "error_code": 30004}  # fmt: skip


def test_whatsapp_63014_blocks_whatsapp_whatever_channel_the_message_used() -> None:
    ruling = carrier(63014, channel=Channel.SMS)
    assert ruling.event == "WhatsAppBlocked63014"
    assert ruling.effect.channels == (Channel.WHATSAPP,)


def test_carrier_21610_is_an_opt_out_with_the_scope_of_a_stop() -> None:
    assert carrier(21610).effect.channels == (Channel.SMS,)
    assert Channel.CALL in carrier(21610, at=FROM_2027).effect.channels


def test_email_events_without_effect_are_ignored() -> None:
    ignored = rules.email_ignored(DEFAULT_POLICY, EmailSignal.FAILED_TEMPORARY, None)
    assert ignored == Ignored({"reason": "failed-temporary (no reason) has no DND effect"})
    assert rules.email_ignored(DEFAULT_POLICY, EmailSignal.COMPLAINED, None) is None


def test_a_bounce_is_temporary_and_needs_the_suppression_removed_to_clear() -> None:
    ruling = rules.email(DEFAULT_POLICY, EmailSignal.FAILED_PERMANENT, " Bounce ", ref="em_1",
                         event_id="ev1")  # fmt: skip
    assert ruling.event == "MailgunPermanentFailure"
    assert ruling.effect.level is DndKind.ACTIVE
    assert ruling.effect.suppression
    assert (ruling.effect.code, ruling.effect.message) == (
        "bounce",
        "email failed-permanent: bounce",
    )
    assert ruling.detail == {"address_ref": "em_1", "reason": "bounce", "provider_event_id": "ev1"}


def test_a_complaint_is_permanent_on_email() -> None:
    ruling = rules.email(DEFAULT_POLICY, EmailSignal.COMPLAINED, None, ref="em_1", event_id=None)
    assert ruling.event == "MailgunComplaint"
    assert (ruling.effect.channels, ruling.effect.level) == ((Channel.EMAIL,), DndKind.PERMANENT)
    assert ruling.detail == {"address_ref": "em_1"}
