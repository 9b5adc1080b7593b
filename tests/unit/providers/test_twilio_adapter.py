"""Twilio inbound messages and status callbacks become ReceiveInbound / ReportCarrierStatus."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dnd_ledger.commands import ReceiveInbound, ReportCarrierStatus
from dnd_ledger.domain.values import Channel
from dnd_ledger.providers.outcomes import Ignored
from dnd_ledger.providers.payload import PayloadError
from dnd_ledger.providers.twilio import (
    inbound_to_command,
    parse_form,
    parse_inbound,
    status_to_command,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "providers" / "twilio"
LOCATION = "loc-7"


def form(name: str, **changes: str | None) -> dict[str, Any]:
    fields: dict[str, Any] = json.loads((DATA / name).read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            fields.pop(key, None)
        else:
            fields[key] = value
    return fields


# --- inbound ----------------------------------------------------------------------


def test_inbound_sms_becomes_receive_inbound_keyed_by_message_sid() -> None:
    assert inbound_to_command(form("inbound-sms.json"), LOCATION) == ReceiveInbound(
        location_id=LOCATION,
        channel=Channel.SMS,
        from_address="+14155550123",
        body="Please stop texting me",
        message_id="SM1f0e4b7d2c9a48b1a6e3d5c7f9a0b2c4",
        occurred_at=None,
        provider_opt_out_type=None,
    )


def test_inbound_whatsapp_is_the_whatsapp_channel_with_the_prefix_stripped() -> None:
    command = inbound_to_command(form("inbound-whatsapp-start.json"), LOCATION)
    assert command.channel is Channel.WHATSAPP
    assert command.from_address == "+5511988887777"
    assert command.body == "START"


def test_advanced_opt_out_type_is_carried_beside_the_body() -> None:
    command = inbound_to_command(form("inbound-sms-advanced-opt-out-stop.json"), LOCATION)
    assert command.provider_opt_out_type == "STOP"
    assert command.body == "STOP"


@pytest.mark.parametrize(("given", "carried"), [("start", "START"), (" HELP ", "HELP"), ("", None)])
def test_opt_out_type_is_upper_cased_and_blank_means_none(given: str, carried: str | None) -> None:
    command = inbound_to_command(form("inbound-sms.json", OptOutType=given), LOCATION)
    assert command.provider_opt_out_type == carried


def test_an_unknown_opt_out_type_passes_through_rather_than_dropping_the_message() -> None:
    command = inbound_to_command(form("inbound-sms.json", OptOutType="Unsubscribe"), LOCATION)
    assert command.provider_opt_out_type == "UNSUBSCRIBE"


def test_inbound_body_is_passed_untouched_for_the_domain_to_normalise() -> None:
    body = "  Stop!  \n"
    assert inbound_to_command(form("inbound-sms.json", Body=body), LOCATION).body == body


def test_media_only_inbound_has_an_empty_body() -> None:
    command = inbound_to_command(form("inbound-sms.json", Body="", NumMedia="1"), LOCATION)
    assert command.body == ""


def test_whatsapp_on_the_to_side_does_not_change_an_sms_sender() -> None:
    fields = form("inbound-sms.json", To="whatsapp:+14155550199")
    assert inbound_to_command(fields, LOCATION).channel is Channel.SMS


def test_extra_inbound_fields_are_ignored() -> None:
    fields = form("inbound-sms.json", SomethingNew="x", MediaUrl0="https://api.twilio.com/m")
    assert inbound_to_command(fields, LOCATION).message_id.startswith("SM")


def test_optional_inbound_fields_sent_empty_count_as_absent() -> None:
    fields = form("inbound-sms.json", MessagingServiceSid="", NumMedia="", NumSegments="")
    message = parse_inbound(fields)
    assert (message.messaging_service_sid, message.num_media, message.num_segments) == (
        None,
        None,
        None,
    )


def test_optional_status_fields_sent_empty_count_as_absent() -> None:
    fields = form("status-undelivered-30003.json", From="", AccountSid="", RawDlrDoneDate="")
    command = status_to_command(fields, LOCATION)
    assert isinstance(command, ReportCarrierStatus)
    assert command.occurred_at is None


def test_inbound_model_keeps_the_documented_fields() -> None:
    message = parse_inbound(form("inbound-sms.json"))
    assert message.account_sid == "AC3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b"
    assert message.messaging_service_sid == "MG9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a"
    assert message.to_address == "+14155550199"
    assert (message.num_media, message.num_segments) == (0, 1)


# --- status callbacks ------------------------------------------------------------


def test_undelivered_status_with_error_code_becomes_report_carrier_status() -> None:
    assert status_to_command(form("status-undelivered-30003.json"), LOCATION) == (
        ReportCarrierStatus(
            location_id=LOCATION,
            channel=Channel.SMS,
            to_address="+14155550123",
            message_id="SM4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a",
            status="undelivered",
            error_code=30003,
            occurred_at=datetime(2024, 5, 23, 10, 42, tzinfo=UTC),
        )
    )


def test_whatsapp_status_is_the_whatsapp_channel_by_its_to_address() -> None:
    command = status_to_command(form("status-whatsapp-63014.json"), LOCATION)
    assert isinstance(command, ReportCarrierStatus)
    assert (command.channel, command.to_address) == (Channel.WHATSAPP, "+5511988887777")
    assert command.error_code == 63014


def test_status_without_a_done_date_has_no_occurred_at() -> None:
    command = status_to_command(form("status-whatsapp-63014.json"), LOCATION)
    assert isinstance(command, ReportCarrierStatus)
    assert command.occurred_at is None


@pytest.mark.parametrize("code", ["30007", "30034", "30450", "21610", "30004", "12345"])
def test_every_error_code_is_passed_through_for_the_policy_to_judge(code: str) -> None:
    command = status_to_command(form("status-undelivered-30003.json", ErrorCode=code), LOCATION)
    assert isinstance(command, ReportCarrierStatus)
    assert command.error_code == int(code)


def test_status_without_an_error_code_is_ignored_with_a_reason() -> None:
    result = status_to_command(form("status-delivered.json"), LOCATION)
    assert result == Ignored("status callback 'delivered' carries no error code")


@pytest.mark.parametrize("code", ["", "0"])
def test_status_with_an_empty_or_zero_error_code_is_ignored(code: str) -> None:
    result = status_to_command(form("status-delivered.json", ErrorCode=code), LOCATION)
    assert isinstance(result, Ignored)


def test_failed_status_without_an_error_code_is_still_ignored() -> None:
    fields = form("status-undelivered-30003.json", ErrorCode=None, MessageStatus="failed")
    assert isinstance(status_to_command(fields, LOCATION), Ignored)


def test_status_word_is_lower_cased() -> None:
    fields = form("status-undelivered-30003.json", MessageStatus="Undelivered")
    command = status_to_command(fields, LOCATION)
    assert isinstance(command, ReportCarrierStatus)
    assert command.status == "undelivered"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2405231042", datetime(2024, 5, 23, 10, 42, tzinfo=UTC)),
        ("0001010000", datetime(2000, 1, 1, 0, 0, tzinfo=UTC)),
        ("9912312359", datetime(2099, 12, 31, 23, 59, tzinfo=UTC)),
    ],
)
def test_raw_dlr_done_date_is_read_as_yymmddhhmm_utc(raw: str, expected: datetime) -> None:
    command = status_to_command(form("status-undelivered-30003.json", RawDlrDoneDate=raw), LOCATION)
    assert isinstance(command, ReportCarrierStatus)
    assert command.occurred_at == expected


# --- form bodies --------------------------------------------------------------------


def test_a_form_body_decodes_to_ordered_pairs_with_repeats_kept() -> None:
    pairs = parse_form(b"Digits=1234&Body=Stop+it+%F0%9F%99%8F&Digits=5678&Empty=")
    assert pairs == [
        ("Digits", "1234"),
        ("Body", "Stop it \U0001f64f"),
        ("Digits", "5678"),
        ("Empty", ""),
    ]


def test_a_parsed_form_feeds_the_inbound_parser() -> None:
    body = "&".join(f"{k}={v}" for k, v in form("inbound-sms.json").items()).replace("+", "%2B")
    command = inbound_to_command(dict(parse_form(body.replace(" ", "+").encode())), LOCATION)
    assert command.from_address == "+14155550123"
    assert command.body == "Please stop texting me"


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"Body=%FF%FE", "percent-encoded value that is not UTF-8"),
        (b"Body=\xff", "not valid UTF-8"),
        (b"a=1&" * 1001, "more than 1000 form fields"),
        (b"Body=" + b"x" * 70_000, "over the 65536-byte limit"),
    ],
)
def test_a_bad_form_body_is_a_payload_error(raw: bytes, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        parse_form(raw)
